"""Sink names (as routes write them) -> constructors. A sink whose settings are missing raises
SinkConfigError; the runtime reports the routes using it and skips them."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from typing import Any

from rich.console import Console

from monitor.errors import SinkConfigError
from monitor.logs import log
from monitor.rules.models import Route
from monitor.settings import Settings
from monitor.sinks.base import Sink
from monitor.sinks.console import ConsoleSink
from monitor.sinks.email import EmailConfig, EmailSink, parse_recipients
from monitor.sinks.jsonl import JsonlSink
from monitor.sinks.slack import SlackConfig, SlackSink
from monitor.sinks.testing import ListSink

# Durable key -> value maps a sink may keep (Slack's story -> thread ts): a SQLite table in the
# embedded runtime, a Faust table in a worker; a plain dict where nothing needs to survive.
StateFactory = Callable[[str], MutableMapping[str, Any]]
SINK_STATE_TABLES = ("slack_threads",)  # every name a sink below asks its StateFactory for


def _memory(name: str) -> MutableMapping[str, Any]:
    return {}


def _jsonl(settings: Settings, state: StateFactory) -> Sink:
    if settings.jsonl is None:
        raise SinkConfigError("jsonl: no file given (use --jsonl FILE or MONITOR_JSONL)")
    return JsonlSink(settings.jsonl)


def _email(settings: Settings, state: StateFactory) -> Sink:
    missing = [
        name
        for name, value in (
            ("MONITOR_SMTP_HOST", settings.smtp_host),
            ("MONITOR_EMAIL_FROM", settings.email_from),
            ("MONITOR_EMAIL_TO", settings.email_to),
        )
        if not value
    ]
    if missing:
        raise SinkConfigError(f"email: not configured ({', '.join(missing)} unset)")
    assert settings.smtp_host and settings.email_from and settings.email_to
    return EmailSink(
        EmailConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.email_from,
            recipients=parse_recipients(settings.email_to),
            username=settings.smtp_username,
            password=settings.smtp_password,
            security=settings.smtp_security,
        )
    )


def _slack(settings: Settings, state: StateFactory) -> Sink:
    config = SlackConfig(
        webhook_url=settings.slack_webhook_url,
        bot_token=settings.slack_bot_token,
        channel=settings.slack_channel,
        api_base_url=settings.slack_api_url,
    )
    return SlackSink(config, threads=state("slack_threads"))


SINKS: dict[str, Callable[[Settings, StateFactory], Sink]] = {
    "console": lambda s, _: ConsoleSink(Console(no_color=s.no_color)),
    "jsonl": _jsonl,
    "email": _email,
    "slack": _slack,
    "list": lambda s, _: ListSink(),
}


def build_sink(name: str, settings: Settings, state: StateFactory = _memory) -> Sink:
    factory = SINKS.get(name)
    if factory is None:
        raise SinkConfigError(f"unknown sink {name!r} (known: {', '.join(sorted(SINKS))})")
    return factory(settings, state)


class SinkPool:
    """Sinks by sink name, each built once and shared by the routes naming it; routes are bound
    again on every rule reload, so a new route reuses a sink (and its state) already built."""

    def __init__(self, settings: Settings, state: StateFactory = _memory) -> None:
        self.settings = settings
        self.state = state
        self._built: dict[str, Sink | SinkConfigError] = {}

    def bind(self, routes: Sequence[Route]) -> tuple[dict[str, Sink], dict[str, str]]:
        """(route -> sink, skipped route -> reason): a route whose sink cannot be built is
        reported and skipped, the others work."""
        sinks: dict[str, Sink] = {}
        skipped: dict[str, str] = {}
        for route in routes:
            if route.sink not in self._built:
                try:
                    self._built[route.sink] = build_sink(route.sink, self.settings, self.state)
                except SinkConfigError as exc:
                    self._built[route.sink] = exc
            sink = self._built[route.sink]
            if isinstance(sink, SinkConfigError):
                skipped[route.name] = str(sink)
                log.warning("route_skipped", route=route.name, sink=route.sink, reason=str(sink))
            else:
                sinks[route.name] = sink
        return sinks, skipped

    def built(self) -> list[Sink]:
        return [s for s in self._built.values() if isinstance(s, Sink)]


def build_route_sinks(
    routes: Sequence[Route], settings: Settings, state: StateFactory = _memory
) -> tuple[dict[str, Sink], dict[str, str]]:
    """One sink per sink name, shared by the routes naming it (see SinkPool.bind)."""
    return SinkPool(settings, state).bind(routes)
