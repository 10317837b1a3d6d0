"""The table ``monitor run`` prints when it stops."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from monitor.runtime.embedded import EmbeddedRuntime, RunReport


def print_summary(
    console: Console, runtime: EmbeddedRuntime, report: RunReport, feeds: Path
) -> None:
    counts = runtime.pipeline.counts
    table = Table(title="run summary", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    outcomes: dict[str, int] = {}
    for outcome in report.polls.values():
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    table.add_row("feed list", escape(str(feeds)))
    table.add_row("feeds polled", ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())) or "0")
    for feed, error in sorted(report.errors.items()):
        table.add_row(f"  failing: {escape(feed)}", escape(error))
    table.add_row("articles read", str(counts.articles))
    table.add_row("exact duplicates", str(counts.exact_duplicates))
    table.add_row("copies joined to a story", str(counts.near_duplicates))
    table.add_row("new stories", str(counts.stories))
    alerts = ", ".join(f"{n} {k}" for k, n in sorted(counts.alerts.items())) or "none"
    table.add_row("alerts (all routes)", alerts)
    table.add_row(
        "delivered", f"{report.delivered}" + (f" ({report.failed} failed)" if report.failed else "")
    )
    if report.failed:
        table.add_row("", "failed alerts are kept: monitor alerts dead / monitor alerts resend")
    if report.silenced:
        table.add_row("silenced", f"{report.silenced} (kept; see monitor silence list)")
    if report.held:
        table.add_row("held for later", f"{report.held} (quiet hours or a rate limit)")
    for route, reason in sorted(report.skipped_routes.items()):
        table.add_row(f"  route skipped: {escape(route)}", escape(reason))
    table.add_row("state", escape(str(runtime.settings.state)))
    console.print(table)
