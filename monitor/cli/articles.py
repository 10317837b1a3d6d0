"""`monitor articles`: list the articles (records) a stage could not decode or process, and put
them back through the pipeline; on the state file, or on Kafka when MONITOR_KAFKA_BOOTSTRAP
is set."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from monitor.cli.common import JsonOption, app, clip, err, out, run_async, usage_error, when
from monitor.cli.target import StateOption, Target, open_state, resolve_target

if TYPE_CHECKING:  # loads the Kafka client: imported by the commands needing it
    from monitor.runtime.deadletters import DeadLetter


articles_app = typer.Typer(
    no_args_is_help=True,
    help="List and replay the articles a stage could not process (dead letters).",
)
app.add_typer(articles_app, name="articles")


def _say(text: str) -> None:
    out.print(text, markup=False, highlight=False, soft_wrap=True)


def _entries(target: Target) -> list[DeadLetter]:
    from monitor.runtime.deadletters import kafka_dead_letters, sqlite_dead_letters

    if target.bootstrap:
        return run_async(kafka_dead_letters(target.bootstrap, target.names))
    store = open_state(target.settings.state)
    if store is None:
        return []
    try:
        return sqlite_dead_letters(store)
    finally:
        store.close()


AllOption = Annotated[
    bool, typer.Option("--all", help="Include the ones already replayed (Kafka keeps them).")
]


@articles_app.command("dead")
def articles_dead(
    as_json: JsonOption = False, all_: AllOption = False, state: StateOption = None
) -> None:
    """Articles set aside because a stage failed on them: which, where, and why."""
    target = resolve_target(state)
    entries = [e for e in _entries(target) if all_ or e.replayed is None]
    if as_json:
        typer.echo(json.dumps([e.to_json() for e in entries], indent=2))
        return
    where = target.describe(target.names.dead_letters)
    if not entries:
        _say(f"no dead articles in {where}")
        return
    table = Table(title=f"dead articles in {where}", title_justify="left")
    table.add_column("id", no_wrap=True)
    for column in ("stage", "title", "error", "when"):
        table.add_column(column, overflow="fold")
    for e in entries:
        title = e.title or (f"(key {e.key})" if e.key else "(not an article)")
        state_note = f" [replayed {when(e.replayed)}]" if e.replayed else ""
        # Titles come from feeds, values and errors from poison records: never markup.
        table.add_row(
            Text(e.id),
            Text(e.stage),
            Text(clip(title, 60)),
            Text(clip(e.error, 80) + state_note),
            Text(when(e.at) if e.at else "?"),
        )
    out.print(table)
    _say(
        f"{len(entries)} dead article(s); once the cause is fixed, "
        "`monitor articles replay ID` (or --all) puts them through again"
    )


@articles_app.command("replay")
def articles_replay(
    article: Annotated[
        str | None,
        typer.Argument(metavar="[ID]", help="The id `monitor articles dead` shows."),
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Replay every dead article not replayed yet.")
    ] = False,
    state: StateOption = None,
) -> None:
    """Put dead articles through the pipeline again, after the cause is fixed.

    In a state file each is queued for `monitor run`, which processes it at its next polling
    round. With Kafka each record goes back onto the topic it came from, for the workers. One
    that fails again is listed again, with the new error."""
    from monitor.runtime.deadletters import (
        UnknownDeadLetter,
        kafka_replay,
        select,
        sqlite_replay,
    )

    if (article is None) == (not all_):
        usage_error("give an article ID or --all (not both)")
    target = resolve_target(state)
    entries = _entries(target)
    where = target.describe(target.names.dead_letters)
    if article is not None:
        try:
            entries = [select(entries, article)]
        except UnknownDeadLetter as exc:
            err.print(f"error: {exc} in {where}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
    else:
        entries = [e for e in entries if e.replayed is None]
    if not entries:
        _say(f"no dead articles in {where}: nothing to replay")
        return
    if target.bootstrap:
        results = run_async(kafka_replay(target.bootstrap, target.names, entries))
    else:
        store = open_state(target.settings.state)
        assert store is not None  # entries came from it
        try:
            results = sqlite_replay(store, entries)
        finally:
            store.close()
    for r in results:
        label = "[green]queued[/green]" if r.outcome == "queued" else "[red]FAILED[/red]"
        out.print(label, end=" ")
        line = f"{r.entry.id} ({r.entry.stage}): {clip(r.entry.title or '-', 70)}"
        _say(line + (f" ({r.error})" if r.error else ""))
    failed = [r for r in results if r.outcome == "failed"]
    who = "the workers" if target.bootstrap else "`monitor run`, at its next polling round,"
    _say(f"{len(results) - len(failed)} queued, {len(failed)} failed ({who} processes them)")
    if failed:
        raise typer.Exit(1)
