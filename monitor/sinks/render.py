"""Shared wording of alerts and digests: every sink explains them the same way.

Nothing here escapes anything: each sink cleans and escapes feed text for its own medium (rich
markup, mrkdwn, HTML, mail headers); :func:`clean` is the cleaning the console and email sinks
share. The words produced here from our own data (levels, kinds, counts, reasons) are plain and
safe; titles and sources passed through are not.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

from monitor.models import Alert, AlertKind, Digest, Level, ScoreTerm

# The one-word tag of each kind, as in "[HIGH] NEW: title".
HEADLINES: Mapping[AlertKind, str] = {
    "opened": "NEW",
    "escalated": "ESCALATED",
    "updated": "UPDATE",
    "resolved": "RESOLVED",
}

# The same in sentence case, for subjects and per-story lines ("[HIGH] Update: title").
KIND_WORDS: Mapping[AlertKind, str] = {
    "opened": "New",
    "escalated": "Escalated",
    "updated": "Update",
    "resolved": "Resolved",
}

# Why a digest was sent as one message rather than alert by alert.
DIGEST_REASONS: Mapping[str, str] = {
    "group": "arrived together",
    "quiet": "held during quiet hours",
    "rate": "held by the rate limit",
    "retry": "held while the destination was failing",
}


def clean(text: str, limit: int | None = None) -> str:
    """One line of untrusted text: control, format (bidi overrides, zero-width) and line/paragraph
    separator characters become spaces, runs of whitespace one space; cut to ``limit``."""
    out = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch
        for ch in (text[: limit * 4] if limit is not None else text)  # bound the work first
    )
    out = " ".join(out.split())
    if limit is not None and len(out) > limit:
        out = out[: limit - 1].rstrip() + "…"
    return out


def format_term(term: ScoreTerm) -> str:
    if term.op == "x":
        return f"× {term.value:g} {term.label}"
    return f"+{term.value:g} {term.label}"


def breakdown(alert: Alert) -> str:
    return "  ".join(format_term(t) for t in alert.terms) + f"  = {alert.score:g}"


def plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n} {word if n == 1 else (words or word + 's')}"


def coverage(alert: Alert) -> str:
    """``7 articles from 4 outlets``: how much of the story has been seen."""
    return f"{plural(alert.articles, 'article')} from {plural(len(alert.sources), 'outlet')}"


def change(alert: Alert) -> str:
    """What this alert says about its story, in a few words (no feed text)."""
    level = alert.level.name
    if alert.kind == "escalated":
        return f"escalated from {alert.previous_level.name} to {level}"
    if alert.kind == "updated":
        return f"more coverage at {level}: {coverage(alert)}"
    if alert.kind == "resolved":
        return f"resolved: no new coverage for a while; closed at {level} after {coverage(alert)}"
    return f"new story at {level}"


def kind_label(alert: Alert) -> str:
    """``New``, ``Escalated (high → critical)``, ``Update``, ``Resolved``."""
    if alert.kind == "escalated":
        return f"Escalated ({alert.previous_level.name} → {alert.level.name})"
    return KIND_WORDS[alert.kind]


def headline(alert: Alert) -> str:
    change = (
        f" ({alert.previous_level.name} → {alert.level.name})" if alert.kind == "escalated" else ""
    )
    return f"[{alert.level.name.upper()}] {HEADLINES[alert.kind]}{change}: {alert.title}"


def digest_level(digest: Digest) -> Level:
    """The highest level among a digest's alerts (``none`` for an empty digest)."""
    return max((a.level for a in digest.alerts), default=Level.none)


def digest_alerts(digest: Digest) -> list[Alert]:
    """The digest's alerts in reading order: most severe first, then highest score; ties keep
    the order they were held in."""
    return sorted(digest.alerts, key=lambda a: (-a.level, -a.score))


def digest_reason(digest: Digest) -> str:
    return DIGEST_REASONS.get(digest.reason, "held")


def digest_headline(digest: Digest) -> str:
    """``[HIGH] 3 stories (held during quiet hours)``: no feed text, safe anywhere."""
    count = plural(len(digest.alerts), "story", "stories")
    return f"[{digest_level(digest).name.upper()}] {count} ({digest_reason(digest)})"
