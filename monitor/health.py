"""Each process's HTTP endpoint: ``/metrics`` (Prometheus), ``/healthz`` (the process and its
event loop are alive) and ``/readyz`` (it can do its job: rules loaded, broker reachable, feeds
polled recently — whatever checks the process registers).

Served by aiohttp on the process's own event loop, not in a thread: a loop that is stuck stops
answering ``/healthz``, which is what a liveness probe should see. Binds 127.0.0.1 unless
``MONITOR_METRICS_HOST`` says otherwise (containers set 0.0.0.0).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from monitor.errors import ConfigError

# A check returns None when fine, or why not (shown in /readyz).
Check = Callable[[], str | None]


@dataclass
class Health:
    checks: dict[str, Check] = field(default_factory=dict)

    def add(self, name: str, check: Check) -> None:
        self.checks[name] = check

    def report(self) -> tuple[bool, dict[str, str]]:
        results: dict[str, str] = {}
        for name, check in self.checks.items():
            try:
                problem = check()
            except Exception as exc:  # a broken check is a failing check, not a crash
                problem = f"check failed: {type(exc).__name__}: {exc}"
            results[name] = problem or "ok"
        return all(v == "ok" for v in results.values()), results


class Heartbeat:
    """When something last succeeded (a broker round trip, a polling round)."""

    def __init__(self) -> None:
        self.at: float | None = None

    def beat(self) -> None:
        self.at = time.monotonic()

    def check(self, within: float, what: str) -> Check:
        def run() -> str | None:
            if self.at is None:
                return f"{what}: not yet"
            age = time.monotonic() - self.at
            return None if age <= within else f"{what}: last {age:.0f}s ago (limit {within:.0f}s)"

        return run


def app(registry: CollectorRegistry, health: Health) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        ready, results = health.report()
        body = json.dumps({"ready": ready, "checks": results}, indent=1) + "\n"
        return web.Response(
            text=body, status=200 if ready else 503, content_type="application/json"
        )

    application = web.Application()
    application.router.add_get("/metrics", metrics)
    application.router.add_get("/healthz", healthz)
    application.router.add_get("/readyz", readyz)
    return application


def check_listen(host: str, port: int) -> None:
    """ConfigError unless ``host:port`` can be listened on now: for a process that binds it
    later, inside a framework that would turn the failure into a crash and a traceback."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
            probe.bind(address)
    except OSError as exc:
        raise ConfigError(_cannot_listen(host, port, exc)) from None


def _cannot_listen(host: str, port: int, exc: OSError) -> str:
    return (
        f"MONITOR_METRICS_HOST/MONITOR_METRICS_PORT: cannot listen on {host}:{port} "
        f"({exc.strerror or exc})"
    )


class Server:
    """The endpoint, started and stopped with the process's loop."""

    def __init__(self, registry: CollectorRegistry, health: Health) -> None:
        self._runner = web.AppRunner(app(registry, health), access_log=None)
        self.address: tuple[str, int] | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except OSError as exc:  # a clear start-up error, not a traceback
            await self._runner.cleanup()
            raise ConfigError(_cannot_listen(host, port, exc)) from None
        # aiohttp does not expose the bound port (port 0 asks the OS for one)
        server: Any = site._server
        sockets = server.sockets if server is not None else ()
        bound = sockets[0].getsockname() if sockets else (host, port)
        self.address = (str(bound[0]), int(bound[1]))
        return self.address

    async def stop(self) -> None:
        await self._runner.cleanup()
