"""`monitor alerts`: list and resend the alerts that could not be delivered; on the state file,
or on Kafka when MONITOR_KAFKA_BOOTSTRAP is set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from monitor.cli.common import (
    JsonOption,
    app,
    clip,
    err,
    load_rules_or_exit,
    out,
    run_async,
    usage_error,
    when,
)
from monitor.cli.target import StateOption, Target, open_state, resolve_target

if TYPE_CHECKING:  # loads the Kafka and sink clients: imported by the commands needing them
    from monitor.runtime.dead import DeadEntry


alerts_app = typer.Typer(
    no_args_is_help=True, help="List and resend alerts that could not be delivered."
)
app.add_typer(alerts_app, name="alerts")


def _dead_entries(target: Target) -> list[DeadEntry]:
    from monitor.runtime.dead import kafka_dead, sqlite_dead

    if target.bootstrap:
        return run_async(kafka_dead(target.bootstrap, target.names))
    store = open_state(target.settings.state)
    if store is None:
        return []
    try:
        return sqlite_dead(store)
    finally:
        store.close()


@alerts_app.command("dead")
def alerts_dead(as_json: JsonOption = False, state: StateOption = None) -> None:
    """Alerts that could not be delivered after all retries: what, where, and why."""
    target = resolve_target(state)
    entries = _dead_entries(target)
    if as_json:
        rows = [{"key": e.key, **e.dead.model_dump(mode="json")} for e in entries]
        typer.echo(json.dumps(rows, indent=2))
        return
    where = target.describe(target.names.alerts_dead)
    if not entries:
        out.print(f"no dead alerts in {where}", markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(title=f"dead alerts in {where}", title_justify="left")
    table.add_column("id", no_wrap=True)
    for column in ("route", "level", "kind", "title", "error", "when"):
        table.add_column(column, overflow="fold")
    for e in entries:
        alert, delivery = e.dead.alert, e.dead.delivery
        # Titles come from feeds and errors from destinations: untrusted, never markup.
        table.add_row(
            Text(alert.id),
            Text(alert.route),
            Text(alert.level.name),
            Text(alert.kind),
            Text(clip(alert.title, 60)),
            Text(clip(delivery.error or delivery.outcome, 80)),
            Text(when(delivery.at)),
        )
    out.print(table)
    out.print(
        f"{len(entries)} dead alert(s); `monitor alerts resend ID` (or --all) sends them again",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


_RESENT_LABEL = {
    "sent": "[green]sent[/green]",
    "already_sent": "[green]already sent[/green]",
    "queued": "[green]queued[/green]",
    "failed": "[red]FAILED[/red]",
}


@alerts_app.command("resend")
def alerts_resend(
    alert: Annotated[
        str | None,
        typer.Argument(metavar="[ID]", help="Alert id, or its full key 'alert_id|route'."),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Resend every dead alert.")] = False,
    rules: Annotated[Path | None, typer.Option(help="Rules directory (routes).")] = None,
    jsonl: Annotated[
        Path | None, typer.Option(help="JSON-lines file of the jsonl sink (as for `run`).")
    ] = None,
    state: StateOption = None,
) -> None:
    """Send dead alerts again, once the destination is back.

    In a state file each is delivered from here, and stays listed if it fails again. With
    Kafka each goes back onto the alerts topic for the workers to deliver."""
    import asyncio

    from monitor.runtime.dead import (
        AmbiguousDeadAlert,
        UnknownDeadAlert,
        kafka_resend,
        select,
        sqlite_resend,
    )

    if (alert is None) == (not all_):
        usage_error("give an alert ID or --all (not both)")
    target = resolve_target(state, rules=rules, jsonl=jsonl)
    entries = _dead_entries(target)
    where = target.describe(target.names.alerts_dead)
    if alert is not None:
        try:
            entries = [select(entries, alert)]
        except AmbiguousDeadAlert as exc:
            usage_error(str(exc))
        except UnknownDeadAlert as exc:
            err.print(f"error: {exc} in {where}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
    if not entries:
        out.print(
            f"no dead alerts in {where}: nothing to resend",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return
    if target.bootstrap:
        results = run_async(kafka_resend(target.bootstrap, target.names, entries))
    else:
        ruleset = load_rules_or_exit(target.settings.rules)
        store = open_state(target.settings.state)
        assert store is not None  # entries came from it
        try:
            results = asyncio.run(sqlite_resend(store, ruleset, target.settings, entries))
        finally:
            store.close()
    for r in results:
        a = r.entry.dead.alert
        out.print(_RESENT_LABEL[r.outcome], end=" ")
        line = f"{a.id} -> {a.route}: {clip(a.title, 70)}"
        out.print(
            line + (f" ({r.error})" if r.error else ""),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    failed = [r for r in results if not r.ok]
    summary = f"{len(results) - len(failed)} resent, {len(failed)} failed"
    if target.bootstrap:
        summary += (
            " (queued: the workers deliver them; each stays in `monitor alerts dead` until"
            " delivered, or comes back there with the new error)"
        )
    out.print(summary, markup=False, highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)
