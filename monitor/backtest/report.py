"""A comparison as rich tables for people, or as one JSON document for programs.

The JSON keys are listed in the ``monitor rules backtest`` docstring; keep the two in step.
Every old/new count is an object ``{"old": n, "new": n}``, and every key is present even when
its value is zero or empty, so a consumer never has to guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from monitor.backtest.compare import LEVELS, Change, Comparison, Pair
from monitor.models import AlertKind, Level

KINDS: tuple[AlertKind, ...] = ("opened", "escalated", "updated", "resolved")
_STATUS_STYLE = {"added": "green", "removed": "red", "changed": "yellow", "unchanged": ""}
_LEVEL_STYLE = {
    Level.none: "dim",
    Level.low: "cyan",
    Level.medium: "yellow",
    Level.high: "red",
    Level.critical: "bold red",
}


@dataclass(frozen=True)
class Context:
    """What was compared, on what: the report's header."""

    input: str
    old_dir: Path
    new_dir: Path
    since: datetime | None = None
    until: datetime | None = None
    undecodable: int = 0
    notes: list[str] = field(default_factory=list)


def _pair(p: Pair) -> dict[str, int]:
    return {"old": p.old, "new": p.new}


def _change_json(c: Change) -> dict[str, Any]:
    return {
        "story_id": c.story_id,
        "title": c.title,
        "url": c.url,
        "first_alert": c.first_alert.isoformat(),
        "old_level": c.old.name,
        "new_level": c.new.name,
        "old_rules": list(c.old_rules),
        "new_rules": list(c.new_rules),
    }


def _first(changes: list[Change], limit: int) -> list[Change]:
    return changes if limit <= 0 else changes[:limit]


def to_json(cmp: Comparison, ctx: Context, limit: int) -> dict[str, Any]:
    old, new = cmp.old, cmp.new
    old_levels, new_levels = cmp.levels("old"), cmp.levels("new")
    return {
        "input": ctx.input,
        "since": ctx.since.isoformat() if ctx.since else None,
        "until": ctx.until.isoformat() if ctx.until else None,
        "old": {"rules": str(ctx.old_dir), "version": old.version, "routes": old.routes},
        "new": {"rules": str(ctx.new_dir), "version": new.version, "routes": new.routes},
        "articles": new.articles,
        "exact_duplicates": new.exact_duplicates,
        "undecodable": ctx.undecodable,
        "stories": new.stories,
        "mismatched_articles": cmp.mismatched_articles,
        "scoring_changed": cmp.scoring_changed,
        "routes_changed": cmp.routes_changed,
        "totals": {
            "alerted_stories": {"old": len(old.alerted), "new": len(new.alerted)},
            "levels": {lv.name: {"old": old_levels[lv], "new": new_levels[lv]} for lv in LEVELS},
            "alerts": {
                k: {"old": old.alerts.get(k, 0), "new": new.alerts.get(k, 0)} for k in KINDS
            },
            "gained": len(cmp.gained),
            "lost": len(cmp.lost),
            "level_changes": len(cmp.level_changes),
        },
        "rules": [
            {
                "rule": r.rule,
                "status": r.status,
                "articles": _pair(r.articles),
                "alerted_stories": _pair(r.stories),
                "levels": {lv.name: _pair(r.levels[lv]) for lv in LEVELS},
                "gained": r.gained,
                "lost": r.lost,
                "level_changes": r.level_changes,
            }
            for r in cmp.rules
        ],
        "gained": [_change_json(c) for c in _first(cmp.gained, limit)],
        "lost": [_change_json(c) for c in _first(cmp.lost, limit)],
        "level_changes": [_change_json(c) for c in _first(cmp.level_changes, limit)],
        "notes": list(ctx.notes),
    }


# --- tables -------------------------------------------------------------------------------


def _delta(p: Pair) -> Text:
    if not p.differs:
        return Text(str(p.new))
    style = "green" if p.new > p.old else "red"
    return Text.assemble(f"{p.old} → ", (str(p.new), style))


def _count(n: int, style: str) -> Text:
    return Text(str(n), style=style if n else "dim")


def _levels(levels: dict[Level, Pair]) -> Text:
    old = "/".join(str(levels[lv].old) for lv in LEVELS)
    new = "/".join(str(levels[lv].new) for lv in LEVELS)
    return Text(new) if old == new else Text.assemble(f"{old} → ", (new, "bold"))


def _level(lv: Level) -> Text:
    return Text(lv.name, style=_LEVEL_STYLE[lv])


def render(
    console: Console, cmp: Comparison, ctx: Context, limit: int, seconds: float | None = None
) -> None:
    old, new = cmp.old, cmp.new
    window = ""
    if ctx.since or ctx.until:
        lo = ctx.since.isoformat() if ctx.since else "…"
        hi = ctx.until.isoformat() if ctx.until else "…"
        window = f" published {lo} to {hi}"
    took = f" in {seconds:.1f}s" if seconds is not None else ""
    console.print(
        Text(
            f"backtest: {ctx.new_dir} (version {new.version}) against {ctx.old_dir} "
            f"(version {old.version})\non {ctx.input}: {new.articles} articles{window}, "
            f"{new.exact_duplicates} exact duplicates, {new.stories} stories, replayed twice{took}"
        )
    )
    if cmp.scoring_changed or cmp.routes_changed:
        what = " and ".join(
            n for n, c in (("scoring", cmp.scoring_changed), ("routes", cmp.routes_changed)) if c
        )
        console.print(Text(f"{what} differ between the two rule sets", style="yellow"))
    if cmp.mismatched_articles:
        console.print(
            Text(
                f"warning: {cmp.mismatched_articles} article(s) joined different stories in the "
                "two replays; story comparisons below may pair unlike stories",
                style="bold yellow",
            )
        )
    console.print(_rules_table(cmp))
    console.print(_totals_table(cmp))
    for title, changes in (
        ("stories gained (alerted by the new rules only)", cmp.gained),
        ("stories lost (alerted by the old rules only)", cmp.lost),
        ("level changes", cmp.level_changes),
    ):
        console.print(_changes_table(title, changes, limit))


def _rules_table(cmp: Comparison) -> Table:
    table = Table(title="per rule (old → new)", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("rule", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("articles", justify="right")
    table.add_column("alerted", justify="right")
    table.add_column("L/M/H/C", justify="right")  # alerted stories by highest level
    for name in ("gained", "lost", "changed"):
        table.add_column(name, justify="right")
    for r in cmp.rules:
        status = Text(r.status, style=_STATUS_STYLE[r.status]) if r.differs else Text("")
        table.add_row(
            Text(r.rule),
            status,
            _delta(r.articles),
            _delta(r.stories),
            _levels(r.levels),
            _count(r.gained, "green"),
            _count(r.lost, "red"),
            _count(r.level_changes, "yellow"),
            style=None if r.differs else "dim",
        )
    return table


def _totals_table(cmp: Comparison) -> Table:
    old, new = cmp.old, cmp.new
    table = Table(title="totals", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("")
    table.add_column("old", justify="right")
    table.add_column("new", justify="right")
    table.add_column("change", justify="right")

    def row(label: str, p: Pair) -> None:
        diff = p.new - p.old
        style = "green" if diff > 0 else "red" if diff < 0 else "dim"
        table.add_row(label, str(p.old), str(p.new), Text(f"{diff:+d}", style=style))

    row("alerted stories", Pair(len(old.alerted), len(new.alerted)))
    old_levels, new_levels = cmp.levels("old"), cmp.levels("new")
    for lv in LEVELS:
        row(f"  at {lv.name}", Pair(old_levels[lv], new_levels[lv]))
    for kind in KINDS:
        row(f"{kind} alerts (all routes)", Pair(old.alerts.get(kind, 0), new.alerts.get(kind, 0)))
    table.add_section()
    table.add_row("stories gained", "", "", _count(len(cmp.gained), "green"))
    table.add_row("stories lost", "", "", _count(len(cmp.lost), "red"))
    table.add_row("level changes", "", "", _count(len(cmp.level_changes), "yellow"))
    return table


def _changes_table(title: str, changes: list[Change], limit: int) -> Table | Text:
    if not changes:
        return Text(f"{title}: none", style="dim")
    shown = _first(changes, limit)
    more = len(changes) - len(shown)
    caption = f"… and {more} more (--limit 0 lists all)" if more else None
    table = Table(
        title=f"{title}: {len(changes)}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        caption=caption,
        caption_justify="left",
    )
    table.add_column("level")
    table.add_column("title", overflow="fold", ratio=3)
    table.add_column("rules", overflow="fold", ratio=1)
    table.add_column("story", overflow="fold", style="dim")
    for c in shown:
        level = Text.assemble(_level(c.old), " → ", _level(c.new))
        # Titles come from feeds: untrusted, never markup (Text, not str).
        table.add_row(level, Text(c.title), Text(", ".join(c.rules)), Text(c.story_id))
    return table
