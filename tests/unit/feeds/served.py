"""A real HTTP server on 127.0.0.1 in a thread of its own, for tests that run the CLI in a
subprocess (the ``server`` fixture lives on the test's own event loop, which a subprocess call
would block)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType

from aiohttp import web


@dataclass(frozen=True)
class Reply:
    """What the server answers on one path. ``delay``: seconds to wait before answering."""

    body: bytes = b""
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


class ThreadedServer:
    """``with ThreadedServer(replies) as srv: srv.url("/feed")``; unknown paths answer 404."""

    def __init__(self, replies: Mapping[str, Reply] | None = None) -> None:
        self.replies: dict[str, Reply] = dict(replies or {})
        self.hits: dict[str, int] = {}
        self.answered: list[tuple[str, int]] = []  # (path, status) of every request, in order
        self.base = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return self.base + path

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        reply = self.replies.get(request.path)
        if reply is None:
            return web.Response(status=404, text="no such feed")
        if reply.delay:
            await asyncio.sleep(reply.delay)
        self.answered.append((request.path, reply.status))
        response = web.Response(status=reply.status, body=reply.body)
        for name, value in reply.headers.items():
            response.headers[name] = value
        return response

    async def _start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        self.base = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
