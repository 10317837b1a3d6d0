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
    clean,
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

# Caps on feed text, as in the email sink: a hostile feed must not fill the terminal.
TITLE_MAX = 1000
SNIPPET_MAX = 500
SOURCE_MAX = 200
URL_MAX = 2048
ID_MAX = 200


def _safe(text: str, limit: int) -> str:
    """Feed text for a panel: one line, capped, then escaped for rich markup.

    Cleaned first because escape() only handles markup: rich passes ESC and NUL through to the
    terminal (``\x1b]8;;https://evil\x1b\\`` forges a hyperlink, ``\x1b[2J`` clears the screen,
    in a terminal or in whatever later shows a redirected log), bidi overrides reorder what is
    shown, and a newline in a title starts a line of the panel that looks like ours."""
    return escape(clean(text, limit))


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
        # Everything from feeds goes through _safe(): a title may contain rich markup, escape
        # sequences, bidi overrides and line breaks.
        lines = [f"[bold]{_safe(alert.title, TITLE_MAX)}[/bold]"]
        if alert.kind in ("updated", "resolved"):
            lines.append(f"[italic]{escape(change(alert))}[/italic]")
        lines.append(
            f"score {alert.score:g}: " + escape("  ".join(format_term(t) for t in alert.terms))
        )
        for hit in alert.hits:
            lines.append(
                f"  • {_safe(hit.rule_id, ID_MAX)}: {_safe(hit.snippet or hit.text, SNIPPET_MAX)}"
            )
        sources = ", ".join(clean(s, SOURCE_MAX) for s in alert.sources)
        lines.append(f"sources ({len(alert.sources)}): {escape(sources)}")
        if alert.url:
            lines.append(f"link: {_safe(alert.url, URL_MAX)}")
        title = f"[{colour}] {alert.level.name.upper()} [/{colour}] {HEADLINES[alert.kind]}{shift}"
        self.console.print(
            Panel(
                "\n".join(lines),
                title=title,
                title_align="left",
                subtitle=f"story {_safe(alert.story_id, ID_MAX)}",
            )
        )

    async def send_digest(self, digest: Digest) -> None:
        """One panel for the whole digest: a few lines per story, most severe first."""
        lines: list[str] = []
        for alert in digest_alerts(digest):
            colour = COLOURS.get(alert.level, "white")
            shown = alert.sources[:SOURCES_SHOWN]
            more = len(alert.sources) - len(shown)
            sources = escape(", ".join(clean(s, SOURCE_MAX) for s in shown)) + (
                f" and {more} more" if more > 0 else ""
            )
            if lines:
                lines.append("")
            lines += [
                f"[{colour}] {alert.level.name.upper()} [/{colour}] {escape(kind_label(alert))}"
                f"  [bold]{_safe(alert.title, TITLE_MAX)}[/bold]",
                f"  score {alert.score:g}: "
                + escape("  ".join(format_term(t) for t in alert.terms)),
                f"  sources ({len(alert.sources)}): {sources}",
            ]
            if alert.url:
                lines.append(f"  link: {_safe(alert.url, URL_MAX)}")
            lines.append(f"  story {_safe(alert.story_id, ID_MAX)}")
        colour = COLOURS.get(digest_level(digest), "white")
        self.console.print(
            Panel(
                "\n".join(lines) or "(empty)",
                title=f"[{colour}] {escape(digest_headline(digest))} [/{colour}]",
                title_align="left",
                subtitle=f"digest {_safe(digest.id, ID_MAX)}",
            )
        )
