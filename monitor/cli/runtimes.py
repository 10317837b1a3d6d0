"""The runtimes: the whole pipeline in one process (run), or on Kafka (poll and worker)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Annotated

import typer

from monitor import logs
from monitor.cli.common import (
    app,
    err,
    feeds_or_exit,
    load_rules_or_exit,
    load_settings,
    out,
    require_kafka,
)
from monitor.errors import MonitorError
from monitor.health import check_listen
from monitor.metrics import Metrics
from monitor.state.recovery import damaged_state

# Options the runtimes share.
RulesOption = Annotated[Path | None, typer.Option("--rules", help="Rules directory.")]
JsonlOption = Annotated[
    Path | None, typer.Option("--jsonl", help="Append alerts to this JSON-lines file.")
]
MetricsPortOption = Annotated[
    int | None,
    typer.Option(
        "--metrics-port", help="Serve /metrics, /healthz and /readyz on this port (0: any free)."
    ),
]


@app.command()
def run(
    once: Annotated[
        bool, typer.Option("--once", help="Poll every feed once, process, exit.")
    ] = False,
    feeds: Annotated[
        Path | None, typer.Option(help="Feed list (YAML). Default: bundled samples.")
    ] = None,
    rules: RulesOption = None,
    state: Annotated[Path | None, typer.Option(help="SQLite state file.")] = None,
    jsonl: JsonlOption = None,
    metrics_port: MetricsPortOption = None,
) -> None:
    """Run the whole pipeline in this process (no broker needed)."""
    import asyncio

    from monitor.runtime.embedded import EmbeddedRuntime
    from monitor.runtime.summary import print_summary

    settings = load_settings(
        feeds=feeds, rules=rules, state=state, jsonl=jsonl, metrics_port=metrics_port
    )
    ruleset = load_rules_or_exit(settings.rules)
    feed_file, sources = feeds_or_exit(settings)
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


@app.command()
def poll(
    once: Annotated[bool, typer.Option("--once", help="Poll every feed once, then exit.")] = False,
    feeds: Annotated[Path | None, typer.Option(help="Feed list (YAML). Default: samples.")] = None,
    state: Annotated[Path | None, typer.Option(help="SQLite file for feed state.")] = None,
    metrics_port: MetricsPortOption = None,
) -> None:
    """Poll feeds and publish their articles to Kafka (topic news.articles)."""
    import asyncio

    from monitor.runtime.kafka_poll import run_poller

    settings = load_settings(feeds=feeds, state=state, metrics_port=metrics_port)
    require_kafka(settings)
    _, sources = feeds_or_exit(settings)
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


@app.command()
def worker(
    rules: RulesOption = None,
    jsonl: JsonlOption = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where this worker keeps its tables.")
    ] = None,
    metrics_port: MetricsPortOption = None,
) -> None:
    """Run the pipeline's Faust agents against Kafka; start more workers to scale out."""
    import asyncio

    from faust.worker import Worker

    from monitor.runtime.faust_app import build_app
    from monitor.runtime.published_rules import latest_rules
    from monitor.runtime.topics import Topics, ensure_topics
    from monitor.state.recovery import check_tables, damaged_tables

    settings = load_settings(rules=rules, jsonl=jsonl, data_dir=data_dir, metrics_port=metrics_port)
    bootstrap = require_kafka(settings)
    ruleset = load_rules_or_exit(settings.rules)
    try:
        if settings.metrics_port is not None:  # now: inside Faust, a crash with a traceback
            check_listen(settings.metrics_host, settings.metrics_port)
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
