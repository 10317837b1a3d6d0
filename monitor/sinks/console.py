"""Alerts printed to a terminal with rich: level, score and why, story, sources, link."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from monitor.models import Alert, Digest, Level
from monitor.sinks.base import Sink
from monitor.sinks.render import (
    HEADLINES,
    change,
    digest_alerts,
    digest_headline,
    digest_level,
    format_term,
    kind_label,
)

COLOURS = {
    Level.low: "cyan",
    Level.medium: "yellow",
    Level.high: "red",
    Level.critical: "bold white on red",
}

SOURCES_SHOWN = 10  # per story in a digest; the rest are counted


class ConsoleSink(Sink):
    name = "console"

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()

    async def send(self, alert: Alert) -> None:
        colour = COLOURS.get(alert.level, "white")
        shift = (
            f" {alert.previous_level.name} → {alert.level.name}"
            if alert.kind == "escalated"
            else ""
        )
        # Everything from feeds goes through escape(): a title may contain rich markup.
        lines = [f"[bold]{escape(alert.title)}[/bold]"]
        if alert.kind in ("updated", "resolved"):
            lines.append(f"[italic]{escape(change(alert))}[/italic]")
        lines.append(
            f"score {alert.score:g}: " + escape("  ".join(format_term(t) for t in alert.terms))
        )
        for hit in alert.hits:
            lines.append(f"  • {escape(hit.rule_id)}: {escape(hit.snippet or hit.text)}")
        lines.append(f"sources ({len(alert.sources)}): {escape(', '.join(alert.sources))}")
        if alert.url:
            lines.append(f"link: {escape(alert.url)}")
        title = f"[{colour}] {alert.level.name.upper()} [/{colour}] {HEADLINES[alert.kind]}{shift}"
        self.console.print(
            Panel(
                "\n".join(lines),
                title=title,
                title_align="left",
                subtitle=f"story {escape(alert.story_id)}",
            )
        )

    async def send_digest(self, digest: Digest) -> None:
        """One panel for the whole digest: a few lines per story, most severe first."""
        lines: list[str] = []
        for alert in digest_alerts(digest):
            colour = COLOURS.get(alert.level, "white")
            shown = alert.sources[:SOURCES_SHOWN]
            more = len(alert.sources) - len(shown)
            sources = escape(", ".join(shown)) + (f" and {more} more" if more > 0 else "")
            if lines:
                lines.append("")
            lines += [
                f"[{colour}] {alert.level.name.upper()} [/{colour}] {escape(kind_label(alert))}"
                f"  [bold]{escape(alert.title)}[/bold]",
                f"  score {alert.score:g}: "
                + escape("  ".join(format_term(t) for t in alert.terms)),
                f"  sources ({len(alert.sources)}): {sources}",
            ]
            if alert.url:
                lines.append(f"  link: {escape(alert.url)}")
            lines.append(f"  story {escape(alert.story_id)}")
        colour = COLOURS.get(digest_level(digest), "white")
        self.console.print(
            Panel(
                "\n".join(lines) or "(empty)",
                title=f"[{colour}] {escape(digest_headline(digest))} [/{colour}]",
                title_align="left",
                subtitle=f"digest {escape(digest.id)}",
            )
        )
