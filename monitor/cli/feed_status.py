"""`monitor feeds status`: each feed's health as the pollers keep it in their state file (last
success, errors in a row, next poll, interval), for operators without a dashboard at hand and
for scripts (exit 1 while any feed is failing)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from monitor.cli.common import JsonOption, clip, feeds_or_exit, load_settings, out
from monitor.cli.feeds import feeds_app
from monitor.cli.target import open_state
from monitor.feeds.sources import FeedSource

_STYLE = {"ok": "green", "failing": "red", "retired": "magenta", "not polled yet": "yellow"}


def _ago(seconds: float) -> str:
    """A duration in words, coarse: 45s, 12min, 5h, 3d."""
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def feed_status(sources: list[FeedSource], states: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per enabled feed of the list, from its saved state (none: not polled yet)."""
    rows = []
    for source in sources:
        st = states.get(source.name)
        if st is not None and st.source_url and st.source_url != source.url:
            st = None  # saved for the feed's old URL: the poller starts this one afresh
        if st is None or not st.last_poll:
            status = "not polled yet"
        elif st.retired:
            status = "retired"
        elif st.consecutive_errors:
            status = "failing"
        else:
            status = "ok"
        rows.append(
            {
                "name": source.name,
                "url": (st.url if st is not None and st.url else source.url),
                "status": status,
                "consecutive_errors": st.consecutive_errors if st else 0,
                "last_success": st.last_success or None if st else None,
                "last_poll": st.last_poll or None if st else None,
                "next_poll": st.next_poll or None if st and not st.retired else None,
                "interval": st.interval or source.interval if st else source.interval,
                "entries": st.entries if st else 0,
                "last_error": st.last_error if st else "",
            }
        )
    return rows


@feeds_app.command("status")
def feeds_status(
    feeds: Annotated[
        Path | None, typer.Option(help="Feed list (YAML). Default: MONITOR_FEEDS, else samples.")
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(help="State file of `monitor run` or `monitor poll`. Default: MONITOR_STATE."),
    ] = None,
    failing: Annotated[
        bool, typer.Option("--failing", help="Only the feeds that are not ok.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Each feed's health as its poller last saw it: status (ok, failing, retired, not polled
    yet), errors in a row, last success, next poll, interval and the last error.

    Read from the state file while the poller runs (nothing is fetched). Exit 1 if any feed is
    failing or retired, so a script or a cron job can watch it; 2 on a bad feed list.

    --json prints a list of {name, url, status, consecutive_errors, last_success, last_poll,
    next_poll (Unix seconds, null when unknown), interval (seconds), entries, last_error}."""
    from monitor.feeds.poller import FeedState

    settings = load_settings(feeds=feeds, state=state)
    _, sources = feeds_or_exit(settings)
    store = open_state(settings.state)
    states: dict[str, Any] = {}
    if store is not None:
        try:
            states = dict(store.models("feeds", FeedState).items())
        finally:
            store.close()
    now = time.time()
    rows = feed_status(sources, states)
    unhealthy = [r for r in rows if r["status"] in ("failing", "retired")]
    shown = [r for r in rows if r["status"] != "ok"] if failing else rows
    if as_json:
        typer.echo(json.dumps(shown, indent=2))
    else:
        table = Table(title=f"feeds in {settings.state}", title_justify="left")
        for column in ("feed", "status", "errors", "last success", "next poll", "every"):
            table.add_column(column, no_wrap=column != "feed")
        for r in shown:
            # feed names come from the list, errors from servers: never markup
            table.add_row(
                Text(r["name"]),
                Text(r["status"], style=_STYLE[r["status"]]),
                Text(str(r["consecutive_errors"] or "")),
                Text(f"{_ago(now - r['last_success'])} ago" if r["last_success"] else "never"),
                Text(_next(r["next_poll"], now)),
                Text(_ago(r["interval"])),
            )
        out.print(table)
        # below the table, whole: an error squeezed into a column is unreadable
        for r in shown:
            if r["status"] != "ok" and r["last_error"]:
                error = r["last_error"].removeprefix(f"feed {r['name']!r}: ")
                out.print(f"{r['name']}: {clip(error, 300)}", markup=False, highlight=False)
        counts = {s: sum(r["status"] == s for r in rows) for s in _STYLE}
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        out.print(f"{len(rows)} feed(s): {summary}", markup=False, highlight=False)
    if unhealthy:
        raise typer.Exit(1)


def _next(at: float | None, now: float) -> str:
    if at is None:
        return "-"
    return "due" if at <= now else f"in {_ago(at - now)}"
