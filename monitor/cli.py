"""The ``monitor`` command line."""

from __future__ import annotations

import difflib
import json
import sqlite3
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from monitor import logs
from monitor.durations import parse_duration
from monitor.errors import ConfigError, MonitorError, RuleLoadError, StateError
from monitor.feeds.sources import FeedSource, load_feeds, sample_feeds_path
from monitor.metrics import Metrics
from monitor.models import Silence
from monitor.rules.ruleset import RuleSet, load_ruleset
from monitor.rules.testing import run_rule_tests
from monitor.settings import Settings
from monitor.state.recovery import damaged_state

if TYPE_CHECKING:  # these load the Kafka and sink clients: imported by the commands needing them
    from monitor.runtime.dead import DeadEntry
    from monitor.runtime.topics import Topics
    from monitor.state.sqlite import Store

T = TypeVar("T")

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
rules_app = typer.Typer(no_args_is_help=True, help="Check and test alert rules.")
app.add_typer(rules_app, name="rules")

err = Console(stderr=True, soft_wrap=True)
out = Console()

RulesDir = Annotated[Path, typer.Argument(help="Rules directory.")]


def _load_rules_or_exit(path: Path, code: int = 2) -> RuleSet:
    try:
        return load_ruleset(path)
    except RuleLoadError as exc:
        for issue in exc.issues:
            err.print(str(issue), markup=False, highlight=False)
        err.print(f"[red]{len(exc.issues)} problem(s) in {path}[/red]")
        raise typer.Exit(code) from None


RulesDirs = Annotated[
    list[Path] | None,
    typer.Argument(help="Rules directories (default: alert_rules).", show_default=False),
]


@rules_app.command("check")
def rules_check(paths: RulesDirs = None) -> None:
    """Validate rule, route and scoring files and lint them: every problem of every file in one
    run, as path:line:col: field: message. Exit 1 on an error; warnings alone exit 0."""
    from monitor.rules.ruleset import check_ruleset

    failed = False
    for path in paths or [Path("alert_rules")]:
        issues, ruleset = check_ruleset(path)
        for issue in sorted(issues, key=lambda i: (i.path, i.line, i.col)):
            out.print(str(issue), markup=False, highlight=False, soft_wrap=True)
        errors = sum(i.severity == "error" for i in issues)
        warnings = f", {len(issues) - errors} warning(s)" if len(issues) > errors else ""
        if ruleset is None:
            failed = True
            out.print(f"[red]{path}: {errors} error(s){warnings}[/red]", soft_wrap=True)
            continue
        out.print(
            f"{path}: {len(ruleset.rules)} rules, {len(ruleset.routes)} routes, "
            f"{len(ruleset.tests)} test cases — OK (version {ruleset.version}){warnings}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if failed:
        raise typer.Exit(1)


@rules_app.command("test")
def rules_test(paths: RulesDirs = None) -> None:
    """Run the test cases carried by the rule files: each example must fire exactly the rules
    in its `expect` (and reach its `level`, when it gives one). Exit 1 on a failure."""
    failed_any = False
    for path in paths or [Path("alert_rules")]:
        try:
            ruleset = load_ruleset(path)
        except RuleLoadError as exc:
            for issue in exc.issues:
                err.print(str(issue), markup=False, highlight=False, soft_wrap=True)
            err.print(f"[red]{len(exc.issues)} problem(s) in {path} (monitor rules check)[/red]")
            failed_any = True
            continue
        results = run_rule_tests(ruleset)
        table = Table(title=f"rule tests in {path}")
        for column in ("result", "where", "example", "expected", "level", "fired / reason"):
            table.add_column(column, overflow="fold")
        failed = [r for r in results if not r.ok]
        for r in failed + [r for r in results if r.ok]:
            title, body = r.test.case.as_title_body
            expected = ", ".join(r.test.case.expect) or "(none)"
            if r.test.case.level is not None:
                expected += f"; level {r.test.case.level}"
            table.add_row(
                "[green]pass[/green]" if r.ok else "[red]FAIL[/red]",
                Text(r.where),
                Text((title or body)[:70]),
                Text(expected),
                Text(f"{r.level.name} ({r.score:g})"),
                Text(", ".join(r.fired) or "(none)" if r.ok else r.reason),
            )
        out.print(table)
        for r in failed:  # one line each, whatever the terminal width: editors jump to them
            out.print(f"FAIL {r.where}: {r.reason}", markup=False, highlight=False, soft_wrap=True)
        summary = f"{path}: {len(results) - len(failed)} passed, {len(failed)} failed"
        out.print(summary, markup=False, highlight=False, soft_wrap=True)
        failed_any = failed_any or bool(failed)
    if failed_any:
        raise typer.Exit(1)


class SchemaKind(StrEnum):
    rules = "rules"
    routes = "routes"
    scoring = "scoring"
    feeds = "feeds"


@rules_app.command("schema")
def rules_schema(
    kind: Annotated[
        SchemaKind,
        typer.Option(help="rules: a rule file; routes.yaml; scoring.yaml; feeds: a feed list."),
    ] = SchemaKind.rules,
    write: Annotated[
        Path | None,
        typer.Option(
            help="Write every kind's schema into this directory (<kind>.schema.json) instead.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the JSON Schema of a kind of YAML file, for editors (yaml-language-server) to
    check files as they are typed."""
    from monitor.rules.schema import schema_text, write_schemas

    if write is not None:
        for written in write_schemas(write):
            out.print(f"wrote {written}", markup=False, highlight=False, soft_wrap=True)
        return
    typer.echo(schema_text(kind.value), nl=False)


@app.command()
def run(
    once: Annotated[
        bool, typer.Option("--once", help="Poll every feed once, process, exit.")
    ] = False,
    feeds: Annotated[
        Path | None, typer.Option(help="Feed list (YAML). Default: bundled samples.")
    ] = None,
    rules: Annotated[Path | None, typer.Option(help="Rules directory.")] = None,
    state: Annotated[Path | None, typer.Option(help="SQLite state file.")] = None,
    jsonl: Annotated[
        Path | None, typer.Option(help="Append alerts to this JSON-lines file.")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve /metrics, /healthz and /readyz on this port (0: any free)."),
    ] = None,
) -> None:
    """Run the whole pipeline in this process (no broker needed)."""
    import asyncio

    from monitor.runtime.embedded import EmbeddedRuntime
    from monitor.runtime.summary import print_summary

    settings = _settings(
        feeds=feeds, rules=rules, state=state, jsonl=jsonl, metrics_port=metrics_port
    )
    ruleset = _load_rules_or_exit(settings.rules)
    feed_file, sources = _feeds_or_exit(settings)
    try:
        runtime = EmbeddedRuntime(settings, ruleset, sources)
        report = asyncio.run(runtime.run(once=once))
    except MonitorError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    except sqlite3.DatabaseError as exc:
        # A damaged page SQLite reads only now: the file named and the recovery, not a
        # traceback (tests/reliability/test_corrupt_state.py).
        err.print(f"error: {damaged_state(settings.state, exc)}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    print_summary(out, runtime, report, feed_file)


def _settings(**options: Any) -> Settings:
    try:
        settings = Settings(**{k: v for k, v in options.items() if v is not None})
    except ValidationError as exc:
        # each bad value named as the operator wrote it: the environment variable
        for e in exc.errors():
            name = "MONITOR_" + "_".join(str(p) for p in e["loc"]).upper()
            err.print(f"error: {name}: {e['msg']}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    logs.configure(settings.log_format, settings.log_level)
    return settings


def _feeds_or_exit(settings: Settings) -> tuple[Path, list[FeedSource]]:
    feed_file = settings.feeds or sample_feeds_path()
    try:
        return feed_file, load_feeds(feed_file)
    except RuleLoadError as exc:
        for issue in exc.issues:
            err.print(str(issue), markup=False, highlight=False)
        raise typer.Exit(2) from None
    except ConfigError as exc:
        err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(2) from None


def _require_kafka(settings: Settings) -> str:
    if not settings.kafka_bootstrap:
        err.print(
            "error: MONITOR_KAFKA_BOOTSTRAP is not set (e.g. 127.0.0.1:9092; start a local broker "
            "with deploy/kafka/broker start). Without Kafka, use `monitor run`.",
            markup=False,
        )
        raise typer.Exit(2)
    return settings.kafka_bootstrap


@app.command()
def poll(
    once: Annotated[bool, typer.Option("--once", help="Poll every feed once, then exit.")] = False,
    feeds: Annotated[Path | None, typer.Option(help="Feed list (YAML). Default: samples.")] = None,
    state: Annotated[Path | None, typer.Option(help="SQLite file for feed state.")] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve /metrics, /healthz and /readyz on this port (0: any free)."),
    ] = None,
) -> None:
    """Poll feeds and publish their articles to Kafka (topic news.articles)."""
    import asyncio

    from monitor.runtime.kafka_poll import run_poller

    settings = _settings(feeds=feeds, state=state, metrics_port=metrics_port)
    _require_kafka(settings)
    _, sources = _feeds_or_exit(settings)
    try:
        # /metrics, /healthz, /readyz served by the poller itself (MONITOR_METRICS_PORT)
        report = asyncio.run(run_poller(settings, sources, once, Metrics()))
    except MonitorError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    except sqlite3.DatabaseError as exc:  # as for `run`: the feed state file damaged
        err.print(f"error: {damaged_state(settings.state, exc)}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    failing = ", ".join(f"{k} ({v})" for k, v in sorted(report.errors.items()))
    out.print(
        f"published {report.published} articles from {len(report.polls)} feeds"
        + (f"; failing: {failing}" if failing else ""),
        markup=False,
        highlight=False,
    )


@rules_app.command("publish")
def rules_publish(
    path: RulesDir = Path("alert_rules"),
    delay: Annotated[
        str, typer.Option(help="How far ahead every worker switches, together (e.g. 10s).")
    ] = "10s",
) -> None:
    """Validate a rules directory and publish it to Kafka (news.rules): every worker switches
    to it at the same moment, without a restart. Invalid rules are refused; nothing changes."""
    import asyncio

    from monitor.runtime.published_rules import publish_rules
    from monitor.runtime.topics import Topics

    settings = _settings()
    bootstrap = _require_kafka(settings)
    try:
        wait = parse_duration(delay)
    except ValueError as exc:
        err.print(f"error: --delay: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    _load_rules_or_exit(path, code=1)  # every problem printed, exit 1, nothing published
    names = Topics(settings.kafka_topic_prefix)
    try:
        published = asyncio.run(
            publish_rules(bootstrap, names, settings.kafka_replication, path, wait)
        )
    except MonitorError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    out.print(
        f"published {path} as version {published.version} to {names.rules}; workers switch at "
        f"{published.effective_at:%Y-%m-%d %H:%M:%S} UTC",
        markup=False,
        highlight=False,
    )


@app.command()
def worker(
    rules: Annotated[Path | None, typer.Option(help="Rules directory.")] = None,
    jsonl: Annotated[
        Path | None, typer.Option(help="Append alerts to this JSON-lines file.")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where this worker keeps its tables.")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve /metrics, /healthz and /readyz on this port (0: any free)."),
    ] = None,
) -> None:
    """Run the pipeline's Faust agents against Kafka; start more workers to scale out."""
    import asyncio

    from faust.worker import Worker

    from monitor.runtime.faust_app import build_app
    from monitor.runtime.published_rules import latest_rules
    from monitor.runtime.topics import Topics, ensure_topics
    from monitor.state.recovery import check_tables, damaged_tables

    settings = _settings(rules=rules, jsonl=jsonl, data_dir=data_dir, metrics_port=metrics_port)
    bootstrap = _require_kafka(settings)
    ruleset = _load_rules_or_exit(settings.rules)
    try:
        names = Topics(settings.kafka_topic_prefix)
        partitions, replication = settings.kafka_partitions, settings.kafka_replication
        asyncio.run(ensure_topics(bootstrap, partitions, replication, names))
        # The version the other workers run, when one was published, wins over local files.
        root = settings.data_dir / "published-rules"
        published = asyncio.run(latest_rules(bootstrap, names, root))
    except MonitorError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    if published is not None:
        logs.log.info("rules_from_kafka", topic=names.rules, version=published.version)
        ruleset = published
    # Damaged tables: said at once, with the recovery; Faust would retry opening them for half
    # a minute, then crash with a traceback (tests/reliability/test_corrupt_tables.py).
    damaged = check_tables(settings.data_dir)
    if damaged:
        err.print(f"error: {damaged_tables(settings.data_dir, damaged)}", markup=False)
        raise typer.Exit(2)
    metrics = Metrics()  # served with /healthz and /readyz by the app (MONITOR_METRICS_PORT)
    faust_app, skipped = build_app(settings, ruleset, metrics)
    if len(skipped) == len(ruleset.routes):
        err.print(
            "error: no route has a working sink: " + "; ".join(skipped.values()), markup=False
        )
        raise typer.Exit(2)
    level = "warning" if settings.log_level in {"warning", "error"} else "info"
    # redirect_stdouts off: the console sink prints alerts to stdout, not into the log
    runner = Worker(faust_app, loglevel=level, quiet=True, redirect_stdouts=False)
    # No terminal spinner: to spin on every log record Faust lowers the root logger to DEBUG,
    # and building those debug records for every produced message cost a tenth of the CPU.
    runner.spinner = None
    runner.execute_from_commandline()


# --- silences and dead alerts: on the state file, or on Kafka when MONITOR_KAFKA_BOOTSTRAP is set


silence_app = typer.Typer(
    no_args_is_help=True, help="Hold back a rule's or a story's alerts for a while."
)
app.add_typer(silence_app, name="silence")
alerts_app = typer.Typer(
    no_args_is_help=True, help="List and resend alerts that could not be delivered."
)
app.add_typer(alerts_app, name="alerts")

StateOption = Annotated[
    Path | None,
    typer.Option(
        help="SQLite state file of `monitor run`; given, it is used even when "
        "MONITOR_KAFKA_BOOTSTRAP is set."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@dataclass(frozen=True)
class _Target:
    """Where silences and dead alerts live: Kafka topics, or the embedded state file."""

    settings: Settings
    bootstrap: str | None

    @property
    def names(self) -> Topics:
        from monitor.runtime.topics import Topics

        return Topics(self.settings.kafka_topic_prefix)

    def describe(self, topic: str = "") -> str:
        if self.bootstrap:
            return f"Kafka topic {topic} at {self.bootstrap}"
        return str(self.settings.state)


def _target(state: Path | None, **options: Any) -> _Target:
    settings = _settings(state=state, **options)
    return _Target(settings, None if state is not None else settings.kafka_bootstrap)


def _open_state(path: Path, create: bool = False) -> Store | None:
    """The state file; None when it does not exist and ``create`` is off (nothing ran yet)."""
    from monitor.state.sqlite import Store

    if not create and not path.exists():
        return None
    try:
        return Store(path)
    except StateError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a Kafka operation; a broker problem is reported, naming the broker (exit 2)."""
    import asyncio
    import logging

    # aiokafka logs the retries it makes (a new topic's leader being elected) as warnings
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    try:
        return asyncio.run(coro)
    except MonitorError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _usage_error(message: str) -> NoReturn:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _did_you_mean(value: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, list(known), n=3, cutoff=0.5)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


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
        _usage_error(
            f"--rule {rule!r}: no such rule in {rules_dir}{_did_you_mean(rule, ruleset.by_id)}"
        )
    routes = [r.name for r in ruleset.routes]
    if route is not None and route not in routes:
        _usage_error(
            f"--route {route!r}: no such route in {rules_dir}{_did_you_mean(route, routes)}"
        )


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


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
        _usage_error("give exactly one of --rule ID or --story ID")
    for flag, value in (("--rule", rule), ("--story", story), ("--route", route)):
        if value is not None and not value.strip():
            _usage_error(f"{flag}: empty")
    try:
        duration = parse_duration(for_)
    except ValueError as exc:
        _usage_error(f"--for: {exc}")
    if duration <= timedelta(0):
        _usage_error(f"--for {for_!r}: a silence must last longer than 0s")
    if not reason.strip():
        _usage_error("--reason: say why (it is shown in `monitor silence list`)")
    target = _target(state, rules=rules)
    _check_names(target.settings.rules, rule, route)
    silence = new_silence(rule=rule, story=story, route=route, duration=duration, reason=reason)
    if target.bootstrap:
        replication = target.settings.kafka_replication
        _run_async(kafka_add(target.bootstrap, target.names, replication, silence))
    else:
        store = _open_state(target.settings.state, create=True)
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
        f"silenced {_silence_scope(silence)} until {_when(silence.until)} ({_span(duration)}) "
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

    target = _target(state)
    counts: dict[str, int] | None = None
    if target.bootstrap:
        silences = _run_async(kafka_silences(target.bootstrap, target.names.silences))
    else:
        store = _open_state(target.settings.state)
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
        ends = f"in {_span(s.until - now)}" if is_active(s, now) else f"ended {_when(s.until)}"
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

    target = _target(state)
    removed: Silence | None = None
    known: list[str] = []
    if target.bootstrap:
        topic = target.names.silences
        removed = _run_async(kafka_remove(target.bootstrap, topic, silence_id))
        if removed is None:
            known = [s.id for s in _run_async(kafka_silences(target.bootstrap, topic))]
    else:
        store = _open_state(target.settings.state)
        if store is not None:
            try:
                removed = sqlite_remove(store, silence_id)
                known = [s.id for s in sqlite_silences(store)]
            finally:
                store.close()
    where = target.describe(target.names.silences)
    if removed is None:
        err.print(
            f"error: no silence {silence_id!r} in {where}{_did_you_mean(silence_id, known)}",
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


def _dead_entries(target: _Target) -> list[DeadEntry]:
    from monitor.runtime.dead import kafka_dead, sqlite_dead

    if target.bootstrap:
        return _run_async(kafka_dead(target.bootstrap, target.names))
    store = _open_state(target.settings.state)
    if store is None:
        return []
    try:
        return sqlite_dead(store)
    finally:
        store.close()


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@alerts_app.command("dead")
def alerts_dead(as_json: JsonOption = False, state: StateOption = None) -> None:
    """Alerts that could not be delivered after all retries: what, where, and why."""
    target = _target(state)
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
            Text(_clip(alert.title, 60)),
            Text(_clip(delivery.error or delivery.outcome, 80)),
            Text(_when(delivery.at)),
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
        _usage_error("give an alert ID or --all (not both)")
    target = _target(state, rules=rules, jsonl=jsonl)
    entries = _dead_entries(target)
    where = target.describe(target.names.alerts_dead)
    if alert is not None:
        try:
            entries = [select(entries, alert)]
        except AmbiguousDeadAlert as exc:
            _usage_error(str(exc))
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
        results = _run_async(kafka_resend(target.bootstrap, target.names, entries))
    else:
        ruleset = _load_rules_or_exit(target.settings.rules)
        store = _open_state(target.settings.state)
        assert store is not None  # entries came from it
        try:
            results = asyncio.run(sqlite_resend(store, ruleset, target.settings, entries))
        finally:
            store.close()
    for r in results:
        a = r.entry.dead.alert
        out.print(_RESENT_LABEL[r.outcome], end=" ")
        line = f"{a.id} -> {a.route}: {_clip(a.title, 70)}"
        out.print(
            line + (f" ({r.error})" if r.error else ""),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    failed = [r for r in results if not r.ok]
    summary = f"{len(results) - len(failed)} resent, {len(failed)} failed"
    if target.bootstrap:
        summary += " (queued: the workers deliver them)"
    out.print(summary, markup=False, highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


# --- state: check the state of `monitor run` or `monitor worker`; start again from damage


state_app = typer.Typer(
    no_args_is_help=True,
    help="Check the state file of `monitor run` or a worker's tables; rebuild a damaged one.",
)
app.add_typer(state_app, name="state")

StatePathOption = Annotated[
    Path | None,
    typer.Option("--state", help="SQLite state file of `monitor run` (default: MONITOR_STATE)."),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory of `monitor worker` (its RocksDB tables)."),
]


@state_app.command("check")
def state_check(state: StatePathOption = None, data_dir: DataDirOption = None) -> None:
    """Check the state file of `monitor run`, or a worker's tables.

    The state file: SQLite's integrity check. --data-dir: each table opened and read through
    (safe while the worker runs). Exit 0 if sound, 1 if damaged (with the way out), 2 if
    there is nothing to check."""
    from monitor.state.recovery import check_state, check_tables, damaged_tables, table_dirs

    if data_dir is not None:
        tables = table_dirs(data_dir)
        if not tables:
            _usage_error(f"{data_dir}: no worker tables there")
        damaged = check_tables(data_dir, read_all=True)
        if damaged:
            err.print(f"error: {damaged_tables(data_dir, damaged)}", markup=False, soft_wrap=True)
            raise typer.Exit(1)
        out.print(f"{data_dir}: {len(tables)} tables, all readable", markup=False)
    if data_dir is None or state is not None:
        path = _settings(state=state).state
        try:
            problems = check_state(path)
        except StateError as exc:
            _usage_error(str(exc))
        if problems:
            for problem in problems[:20]:
                out.print(problem, markup=False, highlight=False, soft_wrap=True)
            err.print(f"error: {damaged_state(path, problems[0])}", markup=False, soft_wrap=True)
            raise typer.Exit(1)
        out.print(f"{path}: integrity check ok", markup=False, highlight=False)


@state_app.command("rebuild")
def state_rebuild(state: StatePathOption = None, data_dir: DataDirOption = None) -> None:
    """Start again from a damaged state file or damaged worker tables.

    With --data-dir (a worker, stopped): move the directory aside; the next start rebuilds every
    table from its changelog topic in Kafka. Nothing is lost or sent again.

    The state file of `monitor run` (stopped): move it aside and write a fresh one with every
    table that can still be read whole; for each table that cannot, it says what is lost."""
    from monitor.state.recovery import LOSSES, rebuild_state, rebuild_tables

    try:
        if data_dir is not None:
            moved = rebuild_tables(data_dir)
            out.print(
                f"moved {data_dir} aside to {moved}; the next `monitor worker --data-dir "
                f"{data_dir}` rebuilds its tables from their changelog topics in Kafka (nothing "
                f"is lost or sent again). Delete {moved} once the worker runs.",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        if data_dir is None or state is not None:
            path = _settings(state=state).state
            salvage = rebuild_state(path)
    except StateError as exc:
        _usage_error(str(exc))
    if data_dir is not None and state is None:
        return
    out.print(f"moved {path} aside to {salvage.moved_to}", markup=False, highlight=False)
    kept = ", ".join(f"{t} ({n} rows)" for t, n in sorted(salvage.kept.items()))
    out.print(f"kept in a fresh {path}: {kept or 'nothing'}", markup=False, soft_wrap=True)
    for table, error in sorted(salvage.lost.items()):
        cost = LOSSES.get(table, "")
        out.print(
            f"LOST {table} ({error})" + (f": {cost}" if cost else ""),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if "(every table)" in salvage.lost:
        out.print(
            "nothing could be read: the next run starts afresh, as on a first start",
            markup=False,
        )


# --- backtest: what a rule change would have alerted, replayed on past articles


@rules_app.command("backtest")
def rules_backtest(
    rules: Annotated[
        Path,
        typer.Option("--rules", help="The rules to try (a rules directory).", show_default=False),
    ],
    input_: Annotated[
        str,
        typer.Option(
            "--input",
            help="Past articles: feed files or JSON exports (a file or a directory), "
            "state:PATH (the archive of `monitor run`) or kafka:TOPIC.",
            show_default=False,
        ),
    ],
    against: Annotated[
        Path | None,
        typer.Option(
            help="The rules to compare with. Default: the rules in force (MONITOR_RULES, "
            "else alert_rules)."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only articles published from then: 2021-11-20, 2021-11-20T12:00Z, 7d."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Only articles published before then (same forms).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document instead of tables.")
    ] = False,
    limit: Annotated[int, typer.Option(min=0, help="Example stories per list (0: all).")] = 5,
) -> None:
    """Replay past articles through two rule sets and show what would change. Nothing is sent.

    Both rule sets see the same articles in publication order, each decided at its own
    publication time, with every route of each rule set active. Per rule: articles matched,
    alerted stories (by highest level); then stories gained (alerted only by --rules), lost
    (only by --against) and level changes, with examples. Exit 0; 2 on bad input or rules.

    --json keys (every old/new count is {"old": n, "new": n}; levels are low, medium, high,
    critical): input, since, until (ISO or null); old, new ({rules, version, routes});
    articles, exact_duplicates, undecodable, stories, mismatched_articles (articles the two
    replays put in different stories: 0 expected); scoring_changed, routes_changed; totals
    ({alerted_stories, levels: {LEVEL: old/new}, alerts: {opened, escalated, updated,
    resolved: old/new}, gained, lost, level_changes}); rules (list of {rule, status: added,
    removed, changed or unchanged, articles, alerted_stories, levels, gained, lost,
    level_changes}); gained, lost, level_changes (up to --limit stories each: {story_id, title,
    url, first_alert, old_level, new_level, old_rules, new_rules}); notes (list of strings).
    """
    import time
    from contextlib import nullcontext

    from rich.progress import Progress

    from monitor.backtest.compare import compare
    from monitor.backtest.replay import replay
    from monitor.backtest.report import Context, render, to_json
    from monitor.backtest.sources import InputError, Window, load_input, parse_when

    settings = _settings()
    # The replays raise every alert they decide, and the pipeline logs each one: thousands of
    # lines about alerts that go nowhere. Only warnings and errors are worth showing here.
    if settings.log_level == "info":  # the default; asked for debug, you get it all
        logs.configure(settings.log_format, "warning")
    now = datetime.now(UTC)
    bounds: list[datetime | None] = []
    for flag, value in (("--since", since), ("--until", until)):
        try:
            bounds.append(parse_when(value, now) if value is not None else None)
        except ValueError as exc:
            _usage_error(f"{flag}: {exc}")
    window = Window(*bounds)
    if window.since and window.until and window.since >= window.until:
        _usage_error("--since must be before --until")
    old_dir = against if against is not None else settings.rules
    new_rules, old_rules = _load_rules_or_exit(rules), _load_rules_or_exit(old_dir)
    quiet = as_json or not err.is_terminal
    try:
        with nullcontext() if quiet else err.status(f"reading {input_}"):
            loaded = load_input(
                input_,
                window,
                kafka_bootstrap=settings.kafka_bootstrap,
                topic_prefix=settings.kafka_topic_prefix,
                now=now,
            )
    except InputError as exc:
        _usage_error(str(exc))
    if not loaded.articles:
        loaded.notes.append("no articles to replay" + (" in that window" if since or until else ""))
    for note in loaded.notes:
        err.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    started = time.perf_counter()
    with Progress(console=err, transient=True, disable=quiet) as bar:
        task = bar.add_task(f"replaying {old_dir}", total=2 * len(loaded.articles))
        old = replay(old_rules, loaded.articles, lambda: bar.advance(task))
        bar.update(task, description=f"replaying {rules}")
        new = replay(new_rules, loaded.articles, lambda: bar.advance(task))
    seconds = time.perf_counter() - started
    comparison = compare(old_rules, new_rules, old, new)
    ctx = Context(
        input_, old_dir, rules, window.since, window.until, loaded.undecodable, loaded.notes
    )
    if as_json:
        typer.echo(json.dumps(to_json(comparison, ctx, limit), indent=2, ensure_ascii=False))
        return
    render(out, comparison, ctx, limit, seconds)


# --- feeds: check a feed list against the real servers, OPML in and out


feeds_app = typer.Typer(
    no_args_is_help=True, help="Check feed lists against their servers; OPML import and export."
)
app.add_typer(feeds_app, name="feeds")

FeedListArg = Annotated[
    Path, typer.Argument(help="Feed list (YAML) or OPML file.", show_default=False)
]
_CHECK_STYLE = {
    "ok": "green",
    "not_modified": "cyan",
    "error": "red",
    "timeout": "yellow",
}


def _feed_list_or_exit(path: Path) -> list[FeedSource]:
    """The enabled feeds of a YAML feed list or an OPML file; a bad file exits 2, naming it."""
    from monitor.feeds.opml import is_opml, read_opml

    try:
        if path.is_file() and is_opml(path):
            imported = read_opml(path)
            for skipped in imported.skipped:
                err.print(f"skipped: {skipped}", markup=False, highlight=False, soft_wrap=True)
            return imported.sources()
        return load_feeds(path)
    except RuleLoadError as exc:
        for issue in exc.issues:
            err.print(str(issue), markup=False, highlight=False, soft_wrap=True)
        err.print(f"[red]{len(exc.issues)} problem(s) in {path}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None
    except ConfigError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@feeds_app.command("check")
def feeds_check(
    file: FeedListArg,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document instead of a table.")
    ] = False,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds allowed for each feed's fetch.")
    ] = 30.0,
    concurrency: Annotated[int, typer.Option(min=1, help="Feeds fetched at once.")] = 16,
) -> None:
    """Fetch every feed of a feed list or OPML file once and report what came back.

    Per feed: status (ok, not_modified, error, timeout), HTTP status, entries found, the feed's
    title, errors. Exit 1 if any feed failed, 2 if the file itself is bad.

    --json prints {file, seconds, summary: {feeds, ok, not_modified, error, timeout, failed},
    feeds: [{name, url, status, http_status (null for files), entries (articles the pipeline
    would get), entries_in_feed (all entries, empty or repeated ones too), title, final_url,
    content_type, format, encoding, seconds, errors, warnings}]}."""
    import asyncio
    import time

    from rich.progress import Progress

    from monitor.feeds.check import check_feeds, summary, to_json
    from monitor.feeds.fetch import FetchLimits

    sources = _feed_list_or_exit(file)
    limits = FetchLimits(
        total_timeout=timeout,
        connect_timeout=min(timeout, FetchLimits.connect_timeout),
        read_timeout=min(timeout, FetchLimits.read_timeout),
    )
    started = time.perf_counter()
    quiet = as_json or not err.is_terminal
    with Progress(console=err, transient=True, disable=quiet) as bar:
        task = bar.add_task(f"checking {len(sources)} feeds", total=len(sources))
        settings = _settings()
        results = asyncio.run(
            check_feeds(
                sources,
                limits,
                concurrency,
                lambda _: bar.advance(task),
                allowed=settings.allowed_networks(),
                contact_url=settings.fetch_contact_url,
            )
        )
    seconds = time.perf_counter() - started
    if as_json:
        typer.echo(json.dumps(to_json(str(file), results, seconds), indent=2, ensure_ascii=False))
    else:
        table = Table(title=f"feeds in {file}", title_justify="left")
        table.add_column("feed", overflow="fold")
        table.add_column("status", no_wrap=True)
        table.add_column("HTTP", justify="right")
        table.add_column("entries", justify="right")
        table.add_column("title / problem", overflow="fold")
        for r in results:
            # Titles and errors come from the servers: text, never markup.
            detail = Text("; ".join(r.errors), style="red") if r.failed else Text(r.title)
            for warning in r.warnings:
                detail.append(f"\n{warning}", style="dim")
            table.add_row(
                Text(r.name),
                Text(r.status, style=_CHECK_STYLE.get(r.status, "")),
                Text("" if r.http_status is None else str(r.http_status)),
                Text(str(r.entries) if not r.failed else ""),
                detail,
            )
        out.print(table)
        counts = summary(results)
        out.print(
            f"{counts['feeds']} feeds: {counts['ok']} ok, {counts['not_modified']} not modified, "
            f"{counts['error']} errors, {counts['timeout']} timeouts ({seconds:.1f}s)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if any(r.failed for r in results):
        raise typer.Exit(1)


@feeds_app.command("import")
def feeds_import(
    opml: Annotated[Path, typer.Argument(help="OPML file to import.", show_default=False)],
    into: Annotated[
        Path | None,
        typer.Option(
            help="Feed list (YAML) to add the feeds to; created if missing. Default: print it.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Turn an OPML subscription list into a feed list (YAML).

    xmlUrl becomes the url, title (or text) the name, folders and categories the labels. Names
    are made unique; feeds already in --into (same url) are not added twice, and its comments
    are kept. Outlines that are not feeds are listed as skipped. The result is validated before
    anything is written. Exit 1 if the file has no new feeds, 2 if it is not OPML."""
    import os
    import tempfile

    import yaml

    from monitor.feeds.opml import OpmlError, append_entries, feeds_yaml, read_opml

    existing = ""
    names: list[str] = []
    urls: list[str] = []
    if into is not None and into.exists():
        try:
            existing = into.read_text(encoding="utf-8")
            data = yaml.safe_load(existing)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            _usage_error(f"--into {into}: cannot read it as YAML: {exc}")
        listed = data.get("feeds") if isinstance(data, dict) else None
        for entry in listed if isinstance(listed, list) else []:
            if isinstance(entry, dict):
                names.append(str(entry.get("name", "")))
                urls.append(str(entry.get("url", "")))
    try:
        imported = read_opml(opml, names, urls)
        for skipped in imported.skipped:
            err.print(f"skipped: {skipped}", markup=False, highlight=False, soft_wrap=True)
        if not imported.feeds:
            err.print(
                f"error: no new feeds in {opml} (outlines with an xmlUrl)",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1)
        header = (
            f"Imported from {opml.name} by `monitor feeds import` on {datetime.now(UTC):%Y-%m-%d}."
            "\nCheck the feeds answer with: monitor feeds check FILE"
        )
        if existing.strip():
            assert into is not None
            text = append_entries(existing, imported.feeds, str(into))
        else:
            text = feeds_yaml(imported.feeds, header)
    except OpmlError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    # Validated as the poller will read it, from where it will live (relative urls), before
    # anything is replaced: a failed import leaves --into as it was.
    folder = into.resolve().parent if into is not None else Path(tempfile.gettempdir())
    fd, temp = tempfile.mkstemp(prefix=".feeds-import-", suffix=".yaml", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            load_feeds(temp)
        except RuleLoadError as exc:
            for issue in exc.issues:
                err.print(str(issue), markup=False, highlight=False, soft_wrap=True)
            err.print("error: the imported feed list would be invalid; nothing written")
            raise typer.Exit(2) from None
        if into is not None:
            os.replace(temp, into)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    if into is None:
        typer.echo(text, nl=False)
    err.print(
        f"imported {len(imported.feeds)} feeds from {opml}"
        + (f" into {into}" if into is not None else "")
        + f"; {len(imported.skipped)} outline(s) skipped",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@feeds_app.command("export")
def feeds_export(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="Feed list (YAML). Default: MONITOR_FEEDS, else the bundled samples.",
            show_default=False,
        ),
    ] = None,
    opml: Annotated[
        bool, typer.Option("--opml/--yaml", help="OPML 2.0, or the feed list as YAML.")
    ] = True,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write here instead of printing.", show_default=False),
    ] = None,
) -> None:
    """Write a feed list as OPML 2.0, for feed readers and other tools.

    A folder per first label, other labels as categories; name, reliability, interval and
    enabled as monitor* attributes, which `monitor feeds import` reads back. Disabled feeds are
    included. Relative paths become file:// URLs."""
    from monitor.feeds.opml import feed_entry, feeds_yaml, to_opml
    from monitor.feeds.sources import FeedList
    from monitor.yamlfile import load_model

    path = file or Settings().feeds or sample_feeds_path()
    _feed_list_or_exit(path)  # every problem reported, exit 2
    model, _, _ = load_model(path, FeedList)
    assert model is not None
    feeds = [
        f
        if "://" in f.url
        else f.model_copy(update={"url": (path.parent / f.url).resolve().as_uri()})
        for f in model.feeds
    ]
    if opml:
        text = to_opml(feeds, title=f"news-monitor feeds ({path.name})")
    else:
        text = feeds_yaml([feed_entry(f) for f in feeds], f"Exported from {path} by monitor.")
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        _usage_error(f"--output {output}: {exc.strerror or exc}")
    err.print(
        f"wrote {len(feeds)} feeds to {output}", markup=False, highlight=False, soft_wrap=True
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
