"""A WebSub hub in miniature for tests: takes subscription requests, verifies intents with a GET
to the subscriber's callback, and pushes signed content to it, over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web


@dataclass
class HubSubscription:
    callback: str
    topic: str
    secret: str
    lease: int


@dataclass
class LocalHub:
    """A WebSub hub in miniature. ``fail`` makes the next N subscription requests fail (500);
    ``lease`` overrides the lease asked for."""

    base: str = ""
    lease: int | None = None
    fail: int = 0
    silent: bool = False  # accept requests, never verify them
    requests: list[dict[str, str]] = field(default_factory=list)
    request_times: list[float] = field(default_factory=list)
    verifications: list[tuple[str, int, bool, float]] = field(default_factory=list)
    subs: dict[str, HubSubscription] = field(default_factory=dict)  # by callback
    session: aiohttp.ClientSession | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(form)
        self.request_times.append(time.monotonic())
        if self.fail > 0:
            self.fail -= 1
            return web.Response(status=500, text="hub is having a bad day")
        if form.get("hub.mode") not in ("subscribe", "unsubscribe") or not form.get("hub.topic"):
            return web.Response(status=400, text="bad request")
        if self.silent:
            return web.Response(status=202)
        task = asyncio.create_task(self.verify(form))  # after answering, as the spec has it
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return web.Response(status=202)

    async def verify(self, form: dict[str, str]) -> None:
        await asyncio.sleep(0.01)
        mode, callback = form["hub.mode"], form["hub.callback"]
        challenge = secrets.token_urlsafe(16)
        lease = self.lease or int(form.get("hub.lease_seconds", "3600"))
        params = {"hub.mode": mode, "hub.topic": form["hub.topic"], "hub.challenge": challenge}
        if mode == "subscribe":
            params["hub.lease_seconds"] = str(lease)
        status, ok = await self.get(callback, params, challenge)
        self.verifications.append((mode, status, ok, time.monotonic()))
        if ok and mode == "subscribe":
            self.subs[callback] = HubSubscription(
                callback, form["hub.topic"], form.get("hub.secret", ""), lease
            )
        elif ok:
            self.subs.pop(callback, None)

    async def get(self, url: str, params: dict[str, str], challenge: str = "") -> tuple[int, bool]:
        assert self.session is not None
        async with self.session.get(url, params=params) as resp:
            text = await resp.text()
            return resp.status, 200 <= resp.status < 300 and text == challenge

    async def publish(
        self, body: bytes, method: str = "sha256", secret: str | None = None, signed: bool = True
    ) -> list[int]:
        """Push ``body`` to every subscriber of the topic; their answers' statuses."""
        assert self.session is not None
        statuses = []
        for sub in list(self.subs.values()):
            headers = {
                "Content-Type": "application/rss+xml",
                "Link": f'<{self.base}/>; rel="hub", <{sub.topic}>; rel="self"',
            }
            if signed:
                key = (sub.secret if secret is None else secret).encode()
                digest = hmac.new(key, body, getattr(hashlib, method)).hexdigest()
                headers["X-Hub-Signature"] = f"{method}={digest}"
            async with self.session.post(sub.callback, data=body, headers=headers) as resp:
                statuses.append(resp.status)
        return statuses

    async def deny(self, reason: str) -> list[int]:
        statuses = []
        for sub in list(self.subs.values()):
            params = {"hub.mode": "denied", "hub.topic": sub.topic, "hub.reason": reason}
            statuses.append((await self.get(sub.callback, params))[0])
            del self.subs[sub.callback]
        return statuses


async def serve(app: web.Application, port: int = 0) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    host, bound = runner.addresses[0][:2]
    return runner, f"http://{host}:{bound}"


@pytest.fixture
async def hub() -> AsyncIterator[LocalHub]:
    local = LocalHub()
    app = web.Application()
    app.router.add_post("/", local.handle)
    runner, local.base = await serve(app)
    local.session = aiohttp.ClientSession()
    try:
        yield local
    finally:
        for task in list(local.tasks):
            task.cancel()
        await local.session.close()
        await runner.cleanup()
