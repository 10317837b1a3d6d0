"""Alerts printed to a terminal with rich: level, score and why, story, sources, link."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from monitor.models import Alert, Level
from monitor.sinks.base import Sink
from monitor.sinks.render import HEADLINES, format_term

COLOURS = {
    Level.low: "cyan",
    Level.medium: "yellow",
    Level.high: "red",
    Level.critical: "bold white on red",
}


class ConsoleSink(Sink):
    name = "console"

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()

    async def send(self, alert: Alert) -> None:
        colour = COLOURS.get(alert.level, "white")
        change = (
            f" {alert.previous_level.name} → {alert.level.name}"
            if alert.kind == "escalated"
            else ""
        )
        # Everything from feeds goes through escape(): a title may contain rich markup.
        lines = [
            f"[bold]{escape(alert.title)}[/bold]",
            f"score {alert.score:g}: " + escape("  ".join(format_term(t) for t in alert.terms)),
        ]
        for hit in alert.hits:
            lines.append(f"  • {escape(hit.rule_id)}: {escape(hit.snippet or hit.text)}")
        lines.append(f"sources ({len(alert.sources)}): {escape(', '.join(alert.sources))}")
        if alert.url:
            lines.append(f"link: {escape(alert.url)}")
        title = f"[{colour}] {alert.level.name.upper()} [/{colour}] {HEADLINES[alert.kind]}{change}"
        self.console.print(
            Panel(
                "\n".join(lines),
                title=title,
                title_align="left",
                subtitle=f"story {alert.story_id}",
            )
        )
