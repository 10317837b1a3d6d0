"""Sink names (as routes write them) -> constructors. A sink whose settings are missing raises
SinkConfigError; the runtime reports the routes using it and skips them."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console

from monitor.errors import SinkConfigError
from monitor.settings import Settings
from monitor.sinks.base import Sink
from monitor.sinks.console import ConsoleSink
from monitor.sinks.jsonl import JsonlSink
from monitor.sinks.testing import ListSink


def _jsonl(settings: Settings) -> Sink:
    if settings.jsonl is None:
        raise SinkConfigError("jsonl: no file given (use --jsonl FILE or MONITOR_JSONL)")
    return JsonlSink(settings.jsonl)


SINKS: dict[str, Callable[[Settings], Sink]] = {
    "console": lambda s: ConsoleSink(Console(no_color=s.no_color)),
    "jsonl": _jsonl,
    "list": lambda s: ListSink(),
}


def build_sink(name: str, settings: Settings) -> Sink:
    factory = SINKS.get(name)
    if factory is None:
        raise SinkConfigError(f"unknown sink {name!r} (known: {', '.join(sorted(SINKS))})")
    return factory(settings)
