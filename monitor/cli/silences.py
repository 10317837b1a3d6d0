"""`monitor silence`: hold back a rule's or a story's alerts for a while; on the state file, or
on Kafka when MONITOR_KAFKA_BOOTSTRAP is set."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from monitor.cli.common import (
    JsonOption,
    app,
    did_you_mean,
    err,
    out,
    run_async,
    usage_error,
    when,
)
from monitor.cli.target import StateOption, open_state, resolve_target
from monitor.durations import parse_duration
from monitor.errors import RuleLoadError
from monitor.models import Silence
from monitor.rules.ruleset import load_ruleset

silence_app = typer.Typer(
    no_args_is_help=True, help="Hold back a rule's or a story's alerts for a while."
)
app.add_typer(silence_app, name="silence")


def _check_names(rules_dir: Path, rule: str | None, route: str | None) -> None:
    """Check --rule and --route against the rules directory, when there is one to check with."""
    if not rules_dir.is_dir():
        return
    try:
        ruleset = load_ruleset(rules_dir)
    except RuleLoadError as exc:
        err.print(
            f"warning: {rules_dir} has {len(exc.issues)} problem(s) (monitor rules check); "
            "the rule and route names are not checked",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return
    if rule is not None and rule not in ruleset.by_id:
        usage_error(
            f"--rule {rule!r}: no such rule in {rules_dir}{did_you_mean(rule, ruleset.by_id)}"
        )
    routes = [r.name for r in ruleset.routes]
    if route is not None and route not in routes:
        usage_error(f"--route {route!r}: no such route in {rules_dir}{did_you_mean(route, routes)}")


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
    ]
    return "".join(parts) or f"{seconds}s"


def _silence_scope(s: Silence) -> str:
    what = f"rule {s.rule}" if s.rule is not None else f"story {s.story}"
    return f"{what}, {'route ' + s.route if s.route else 'every route'}"


@silence_app.command("add")
def silence_add(
    for_: Annotated[
        str, typer.Option("--for", help="How long: 30m, 4h, 1d, 1h30m.", show_default=False)
    ],
    reason: Annotated[str, typer.Option(help="Why (shown in `silence list`).", show_default=False)],
    rule: Annotated[str | None, typer.Option(help="Silence this rule's alerts.")] = None,
    story: Annotated[str | None, typer.Option(help="Silence this story's alerts.")] = None,
    route: Annotated[str | None, typer.Option(help="Only on this route (default: all).")] = None,
    rules: Annotated[
        Path | None, typer.Option(help="Rules directory (to check --rule and --route).")
    ] = None,
    state: StateOption = None,
) -> None:
    """Silence a rule (--rule) or a story (--story) for a while.

    Its alerts are kept (and counted), not sent, until the silence ends."""
    from monitor.runtime.silences import kafka_add, new_silence, sqlite_add

    if (rule is None) == (story is None):
        usage_error("give exactly one of --rule ID or --story ID")
    for flag, value in (("--rule", rule), ("--story", story), ("--route", route)):
        if value is not None and not value.strip():
            usage_error(f"{flag}: empty")
    try:
        duration = parse_duration(for_)
    except ValueError as exc:
        usage_error(f"--for: {exc}")
    if duration <= timedelta(0):
        usage_error(f"--for {for_!r}: a silence must last longer than 0s")
    if not reason.strip():
        usage_error("--reason: say why (it is shown in `monitor silence list`)")
    target = resolve_target(state, rules=rules)
    _check_names(target.settings.rules, rule, route)
    silence = new_silence(rule=rule, story=story, route=route, duration=duration, reason=reason)
    if target.bootstrap:
        replication = target.settings.kafka_replication
        run_async(kafka_add(target.bootstrap, target.names, replication, silence))
    else:
        store = open_state(target.settings.state, create=True)
        assert store is not None
        try:
            if story is not None and story not in store.table("stories"):
                err.print(
                    f"note: no story {story!r} in {target.settings.state} (yet); "
                    "the silence applies when it appears",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
            sqlite_add(store, silence)
        finally:
            store.close()
    out.print(silence.id, markup=False, highlight=False, soft_wrap=True)
    out.print(
        f"silenced {_silence_scope(silence)} until {when(silence.until)} ({_span(duration)}) "
        f"in {target.describe(target.names.silences)}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@silence_app.command("list")
def silence_list(
    all_: Annotated[bool, typer.Option("--all", help="Include expired silences.")] = False,
    as_json: JsonOption = False,
    state: StateOption = None,
) -> None:
    """Active silences, and how many alerts each has kept from being sent."""
    from monitor.runtime.silences import (
        is_active,
        kafka_silences,
        silenced_counts,
        sqlite_silences,
    )

    target = resolve_target(state)
    counts: dict[str, int] | None = None
    if target.bootstrap:
        silences = run_async(kafka_silences(target.bootstrap, target.names.silences))
    else:
        store = open_state(target.settings.state)
        silences, counts = [], {}
        if store is not None:
            try:
                silences, counts = sqlite_silences(store), silenced_counts(store)
            finally:
                store.close()
    now = datetime.now(UTC)
    shown = [s for s in silences if all_ or is_active(s, now)]
    if as_json:
        rows = [
            {
                **s.model_dump(mode="json"),
                "active": is_active(s, now),
                "silenced": None if counts is None else counts.get(s.id, 0),
            }
            for s in shown
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    where = target.describe(target.names.silences)
    if not shown:
        expired = len(silences) - len(shown)
        note = f" ({expired} expired: --all shows them)" if expired else ""
        out.print(
            f"no active silences in {where}{note}", markup=False, highlight=False, soft_wrap=True
        )
        return
    table = Table(title=f"silences in {where}", title_justify="left")
    table.add_column("id", no_wrap=True)
    for column in ("of", "route", "ends", "reason"):
        table.add_column(column, overflow="fold")
    if counts is not None:
        table.add_column("held back", justify="right")
    for s in shown:
        ends = f"in {_span(s.until - now)}" if is_active(s, now) else f"ended {when(s.until)}"
        what = f"rule {s.rule}" if s.rule is not None else f"story {s.story}"
        row = [Text(s.id), Text(what), Text(s.route or "(all)"), Text(ends), Text(s.reason)]
        if counts is not None:
            row.append(Text(str(counts.get(s.id, 0))))
        table.add_row(*row)
    out.print(table)


@silence_app.command("remove")
def silence_remove(
    silence_id: Annotated[str, typer.Argument(metavar="ID", help="The silence's id (sil-…).")],
    state: StateOption = None,
) -> None:
    """End a silence now: the alerts it would hold back are sent again."""
    from monitor.runtime.silences import (
        kafka_remove,
        kafka_silences,
        sqlite_remove,
        sqlite_silences,
    )

    target = resolve_target(state)
    removed: Silence | None = None
    known: list[str] = []
    if target.bootstrap:
        topic = target.names.silences
        removed = run_async(kafka_remove(target.bootstrap, topic, silence_id))
        if removed is None:
            known = [s.id for s in run_async(kafka_silences(target.bootstrap, topic))]
    else:
        store = open_state(target.settings.state)
        if store is not None:
            try:
                removed = sqlite_remove(store, silence_id)
                known = [s.id for s in sqlite_silences(store)]
            finally:
                store.close()
    where = target.describe(target.names.silences)
    if removed is None:
        err.print(
            f"error: no silence {silence_id!r} in {where}{did_you_mean(silence_id, known)}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    out.print(
        f"removed {removed.id} ({_silence_scope(removed)}, reason: {removed.reason})",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
