"""What the command groups share: the app, its consoles, settings, and how errors exit."""

from __future__ import annotations

import difflib
from collections.abc import Coroutine, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from monitor import logs
from monitor.errors import ConfigError, MonitorError, RuleLoadError
from monitor.feeds.sources import FeedSource, load_feeds, sample_feeds_path
from monitor.rules.ruleset import RuleSet, load_ruleset
from monitor.settings import Settings

T = TypeVar("T")

# Its help text is the docstring of monitor/cli/__init__.py, which sets it.
app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode="markdown")
# Here, not in rules.py: backtest.py adds its command to it too.
rules_app = typer.Typer(no_args_is_help=True, help="Check and test alert rules.")
app.add_typer(rules_app, name="rules")

err = Console(stderr=True, soft_wrap=True)
out = Console()

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def load_rules_or_exit(path: Path, code: int = 2) -> RuleSet:
    try:
        return load_ruleset(path)
    except RuleLoadError as exc:
        for issue in exc.issues:
            err.print(str(issue), markup=False, highlight=False)
        err.print(f"[red]{len(exc.issues)} problem(s) in {path}[/red]")
        raise typer.Exit(code) from None


def load_settings(**options: Any) -> Settings:
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


def feeds_or_exit(settings: Settings) -> tuple[Path, list[FeedSource]]:
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


def require_kafka(settings: Settings) -> str:
    if not settings.kafka_bootstrap:
        err.print(
            "error: MONITOR_KAFKA_BOOTSTRAP is not set (e.g. 127.0.0.1:9092; start a local broker "
            "with deploy/kafka/broker start). Without Kafka, use `monitor run`.",
            markup=False,
        )
        raise typer.Exit(2)
    return settings.kafka_bootstrap


def run_async(coro: Coroutine[Any, Any, T]) -> T:
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


def usage_error(message: str) -> NoReturn:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def did_you_mean(value: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, list(known), n=3, cutoff=0.5)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def clip(text: str, width: int) -> str:
    """One line of at most ``width`` characters (for table cells of untrusted text)."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
