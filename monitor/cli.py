"""The ``monitor`` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from monitor import logs
from monitor.errors import ConfigError, MonitorError, RuleLoadError
from monitor.feeds.sources import FeedSource, load_feeds, sample_feeds_path
from monitor.metrics import Metrics
from monitor.rules.ruleset import RuleSet, load_ruleset
from monitor.rules.testing import run_rule_tests
from monitor.settings import Settings

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


@rules_app.command("check")
def rules_check(path: RulesDir = Path("alert_rules")) -> None:
    """Validate rule, route and scoring files; print every problem as path:line:col."""
    ruleset = _load_rules_or_exit(path, code=1)
    out.print(
        f"{path}: {len(ruleset.rules)} rules, {len(ruleset.routes)} routes, "
        f"{len(ruleset.tests)} test cases — OK (version {ruleset.version})"
    )


@rules_app.command("test")
def rules_test(path: RulesDir = Path("alert_rules")) -> None:
    """Run the test cases carried by the rule files."""
    ruleset = _load_rules_or_exit(path, code=1)
    results = run_rule_tests(ruleset)
    table = Table(title=f"rule tests in {path}")
    for column in ("result", "where", "example", "expected", "fired / reason"):
        table.add_column(column, overflow="fold")
    failed = [r for r in results if not r.ok]
    for r in failed + [r for r in results if r.ok]:
        title, body = r.test.case.as_title_body
        table.add_row(
            "[green]pass[/green]" if r.ok else "[red]FAIL[/red]",
            r.where,
            (title or body)[:70],
            ", ".join(r.test.case.expect) or "(none)",
            ", ".join(r.fired) or "(none)" if r.ok else r.reason,
        )
    out.print(table)
    out.print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)


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
        int | None, typer.Option(help="Serve Prometheus metrics on this port (127.0.0.1).")
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
    print_summary(out, runtime, report, feed_file)


def _settings(**options: Any) -> Settings:
    settings = Settings(**{k: v for k, v in options.items() if v is not None})
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


def _serve_metrics(settings: Settings) -> Metrics:
    from prometheus_client import start_http_server

    metrics = Metrics()
    if settings.metrics_port is not None:
        start_http_server(settings.metrics_port, settings.metrics_host, metrics.registry)
    return metrics


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
        int | None, typer.Option(help="Serve Prometheus metrics on this port (127.0.0.1).")
    ] = None,
) -> None:
    """Poll feeds and publish their articles to Kafka (topic news.articles)."""
    import asyncio

    from monitor.runtime.kafka_poll import run_poller

    settings = _settings(feeds=feeds, state=state, metrics_port=metrics_port)
    _require_kafka(settings)
    _, sources = _feeds_or_exit(settings)
    metrics = _serve_metrics(settings)
    try:
        report = asyncio.run(run_poller(settings, sources, once, metrics))
    except MonitorError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
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
    rules: Annotated[Path | None, typer.Option(help="Rules directory.")] = None,
    jsonl: Annotated[
        Path | None, typer.Option(help="Append alerts to this JSON-lines file.")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where this worker keeps its tables.")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics on this port (127.0.0.1).")
    ] = None,
) -> None:
    """Run the pipeline's Faust agents against Kafka; start more workers to scale out."""
    import asyncio

    from faust.worker import Worker

    from monitor.runtime.faust_app import build_app
    from monitor.runtime.topics import Topics, ensure_topics

    settings = _settings(rules=rules, jsonl=jsonl, data_dir=data_dir, metrics_port=metrics_port)
    bootstrap = _require_kafka(settings)
    ruleset = _load_rules_or_exit(settings.rules)
    try:
        names = Topics(settings.kafka_topic_prefix)
        partitions, replication = settings.kafka_partitions, settings.kafka_replication
        asyncio.run(ensure_topics(bootstrap, partitions, replication, names))
    except MonitorError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    metrics = _serve_metrics(settings)
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
