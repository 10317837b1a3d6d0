"""`monitor rules evaluate`: precision and recall of a rule set on labelled headlines."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from monitor.cli.common import (
    JsonOption,
    clip,
    err,
    load_rules_or_exit,
    load_settings,
    out,
    rules_app,
)
from monitor.errors import RuleLoadError
from monitor.models import Level
from monitor.rules.evaluate import Evaluation, Judged, evaluate, read_labelled


class AlertLevel(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _row(j: Judged) -> dict[str, object]:
    return {
        "where": j.item.where,
        "title": j.item.title,
        "label": j.item.level.name,
        "level": j.level.name,
        "score": round(j.score, 1),
        "rules": list(j.rules),
    }


def _say(text: str) -> None:
    out.print(text, markup=False, highlight=False, soft_wrap=True)


def _listing(title: str, judged: list[Judged], limit: int) -> None:
    if not judged:
        return
    table = Table(title=f"{title} ({len(judged)})", title_justify="left")
    for column in ("where", "label", "level", "rules", "title"):
        table.add_column(column, overflow="fold")
    for j in judged[:limit]:
        # titles come from the labelled file: shown as written, never markup
        table.add_row(
            Text(j.item.where),
            Text(j.item.level.name),
            Text(f"{j.level.name} ({j.score:.0f})"),
            Text(", ".join(j.rules) or "-"),
            Text(clip(j.item.title, 90)),
        )
    out.print(table)
    if len(judged) > limit:
        _say(f"... and {len(judged) - limit} more (--limit, or --json for all)")


@rules_app.command("evaluate")
def rules_evaluate(
    labelled: Annotated[
        Path, typer.Argument(help="Labelled headlines: CSV with a header, or JSON lines.")
    ],
    rules: Annotated[Path | None, typer.Option(help="Rules directory.")] = None,
    level: Annotated[
        AlertLevel, typer.Option(help="The level that counts as alerting.")
    ] = AlertLevel.low,
    limit: Annotated[int, typer.Option(min=0, help="False alarms and misses listed.")] = 20,
    min_precision: Annotated[
        float | None, typer.Option(min=0, max=1, help="Exit 1 if precision is below this.")
    ] = None,
    min_recall: Annotated[
        float | None, typer.Option(min=0, max=1, help="Exit 1 if recall is below this.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Precision and recall of the rules on labelled headlines.

    At a level (--level): precision, recall and F1, the false alarms and the misses (with the
    rules that fired), and which rules make the false alarms. Each item is one article, one
    story, scored by the pipeline's own stages.

    Columns (CSV) or keys (JSON lines): title (or text), label; optional body, language. A
    label is yes/no (1/0, true/false) or the level the story should reach at least (none, low,
    medium, high, critical). Exit 0; 1 under --min-precision or --min-recall; 2 on bad input.

    --json prints {rules, version, level, items, counts: {true_alerts, false_alarms, misses,
    true_silences}, precision, recall, f1 (null when undefined), false_alarm_rules, false_alarms,
    misses, under_level (lists of {where, title, label, level, score, rules})}."""
    settings = load_settings(rules=rules)
    ruleset = load_rules_or_exit(settings.rules)
    try:
        items = read_labelled(labelled)
    except RuleLoadError as exc:
        for issue in exc.issues:
            err.print(str(issue), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    result = evaluate(ruleset, items, Level[level.value])
    scores = result.scores
    if as_json:
        doc = {
            "rules": str(settings.rules),
            "version": ruleset.version,
            "level": level.value,
            "items": len(items),
            "counts": result.counts,
            **scores,
            "false_alarm_rules": dict(result.false_alarm_rules().most_common()),
            "false_alarms": [_row(j) for j in result.false_alarms],
            "misses": [_row(j) for j in result.misses],
            "under_level": [_row(j) for j in result.under_level],
        }
        typer.echo(json.dumps(doc, indent=2))
    else:
        _report(result, str(settings.rules), ruleset.version, limit)
    below = [
        f"{name} {_ratio(scores[name])} < {floor:g}"
        for name, floor in (("precision", min_precision), ("recall", min_recall))
        if floor is not None and (scores[name] is None or (scores[name] or 0) < floor)
    ]
    if below:
        err.print(f"below the bar: {'; '.join(below)}", markup=False, highlight=False)
        raise typer.Exit(1)


def _report(result: Evaluation, rules: str, version: str, limit: int) -> None:
    c, s = result.counts, result.scores
    _say(
        f"{rules} (version {version}) on {len(result.judged)} labelled items, alerting at "
        f"{result.threshold.name} or above"
    )
    _say(
        f"precision {_ratio(s['precision'])}  recall {_ratio(s['recall'])}  f1 {_ratio(s['f1'])}"
        f"   ({c['true_alerts']} true alerts, {c['false_alarms']} false alarms, "
        f"{c['misses']} misses, {c['true_silences']} true silences)"
    )
    _listing("false alarms", result.false_alarms, limit)
    _listing("misses", result.misses, limit)
    _listing("alerted below the labelled level", result.under_level, limit)
    noisy = result.false_alarm_rules().most_common(10)
    if noisy:
        _say("rules behind the false alarms: " + ", ".join(f"{r} ({n})" for r, n in noisy))
