"""A real aiohttp server on 127.0.0.1 speaking the two Slack APIs the sink uses:

* ``POST /webhook/T/B/X`` — an incoming webhook: ``200 ok``;
* ``POST /api/chat.postMessage`` — the Web API: checks ``Authorization: Bearer <token>``,
  answers ``{"ok": true, "channel": ..., "ts": ...}`` with an increasing ``ts``.

Every request is recorded (raw body text, parsed body, headers). Tests script failures with
:meth:`SlackServer.script`: the next ``times`` requests to an endpoint get a canned answer
(429 with ``Retry-After``, 500, 404 ``no_service``, ``{"ok": false, ...}``), then it is back to
normal. ``delay`` holds every answer back (for timeouts).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qsl

from aiohttp import web

Endpoint = Literal["webhook", "api"]
WEBHOOK_PATH = "/webhook/T/B/X"
API_PATH = "/api/chat.postMessage"


@dataclass
class Seen:
    """One request as the server received it."""

    path: str
    headers: dict[str, str]
    raw: str  # the body as sent, before any parsing
    body: dict[str, Any]


@dataclass
class Canned:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/plain"


@dataclass
class SlackServer:
    token: str = "xoxb-test-0000-secret"
    delay: float = 0.0
    webhook: list[Seen] = field(default_factory=list)
    api: list[Seen] = field(default_factory=list)
    _scripts: dict[str, deque[Canned]] = field(
        default_factory=lambda: {"webhook": deque(), "api": deque()}
    )
    _next_ts: int = 0
    _runner: web.AppRunner | None = None
    base: str = ""

    # -- addresses -------------------------------------------------------------------------

    @property
    def webhook_url(self) -> str:
        return self.base + WEBHOOK_PATH

    @property
    def api_base_url(self) -> str:
        return self.base + "/api/"

    # -- scripting -------------------------------------------------------------------------

    def script(
        self,
        endpoint: Endpoint,
        status: int,
        body: str = "",
        *,
        headers: dict[str, str] | None = None,
        times: int = 1,
        content_type: str = "text/plain",
    ) -> None:
        """Answer the next ``times`` requests to ``endpoint`` with this instead."""
        for _ in range(times):
            self._scripts[endpoint].append(Canned(status, body, dict(headers or {}), content_type))

    def rate_limit(self, endpoint: Endpoint, *, retry_after: int = 2, times: int = 1) -> None:
        body = (
            "rate_limited"
            if endpoint == "webhook"
            else json.dumps({"ok": False, "error": "ratelimited"})
        )
        content_type = "text/plain" if endpoint == "webhook" else "application/json"
        self.script(
            endpoint,
            429,
            body,
            headers={"Retry-After": str(retry_after)},
            times=times,
            content_type=content_type,
        )

    def api_error(self, error: str, *, times: int = 1) -> None:
        """``200 {"ok": false, "error": error}`` from chat.postMessage."""
        self.script(
            "api",
            200,
            json.dumps({"ok": False, "error": error}),
            times=times,
            content_type="application/json",
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> SlackServer:
        app = web.Application()
        app.router.add_post("/webhook/{team}/{bot}/{secret}", self._webhook)
        app.router.add_post(API_PATH, self._chat_post_message)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base = f"http://{host}:{port}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- handlers --------------------------------------------------------------------------

    async def _record(self, request: web.Request, into: list[Seen]) -> Seen:
        raw = await request.text()
        body: dict[str, Any]
        if request.content_type == "application/json":
            body = json.loads(raw) if raw else {}
        else:
            body = dict(parse_qsl(raw))
            for key in ("blocks", "attachments"):
                if isinstance(body.get(key), str):
                    body[key] = json.loads(body[key])
        seen = Seen(request.path, dict(request.headers), raw, body)
        into.append(seen)
        if self.delay:
            await asyncio.sleep(self.delay)
        return seen

    def _canned(self, endpoint: Endpoint) -> web.Response | None:
        if not self._scripts[endpoint]:
            return None
        c = self._scripts[endpoint].popleft()
        return web.Response(
            status=c.status, text=c.body, headers=c.headers, content_type=c.content_type
        )

    async def _webhook(self, request: web.Request) -> web.Response:
        await self._record(request, self.webhook)
        canned = self._canned("webhook")
        if canned is not None:
            return canned
        if request.path != WEBHOOK_PATH:
            return web.Response(status=404, text="no_service")
        return web.Response(status=200, text="ok")

    async def _chat_post_message(self, request: web.Request) -> web.Response:
        seen = await self._record(request, self.api)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        canned = self._canned("api")
        if canned is not None:
            return canned
        channel = seen.body.get("channel")
        if not channel:
            return web.json_response({"ok": False, "error": "channel_not_found"})
        self._next_ts += 1
        ts = f"{1639500000 + self._next_ts}.{self._next_ts:06d}"
        return web.json_response({"ok": True, "channel": channel, "ts": ts, "message": {}})


class GarbageServer:
    """A raw TCP server answering every request with bytes that are not HTTP: aiohttp's error
    for it quotes the full request URL (the secret part of a webhook)."""

    def __init__(self) -> None:
        self.base = ""
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"garbage\r\n\r\n")
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> GarbageServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.base = f"http://{host}:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
