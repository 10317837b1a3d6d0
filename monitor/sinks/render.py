"""Shared wording of alerts: every sink explains an alert the same way."""

from __future__ import annotations

from monitor.models import Alert, ScoreTerm

HEADLINES = {"opened": "NEW", "escalated": "ESCALATED"}


def format_term(term: ScoreTerm) -> str:
    if term.op == "x":
        return f"× {term.value:g} {term.label}"
    return f"+{term.value:g} {term.label}"


def breakdown(alert: Alert) -> str:
    return "  ".join(format_term(t) for t in alert.terms) + f"  = {alert.score:g}"


def headline(alert: Alert) -> str:
    change = (
        f" ({alert.previous_level.name} → {alert.level.name})" if alert.kind == "escalated" else ""
    )
    return f"[{alert.level.name.upper()}] {HEADLINES[alert.kind]}{change}: {alert.title}"
