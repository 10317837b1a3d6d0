"""Helpers for the feed tests: a real HTTP server on 127.0.0.1, feed documents, sources."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from monitor.feeds.sources import FeedSource

SAMPLES = Path(__file__).resolve().parents[3] / "monitor" / "samples"
FETCHED_AT = datetime(2022, 3, 1, 12, 0, tzinfo=UTC)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def rss(*items: str, channel: str = "Test feed") -> bytes:
    """A minimal RSS 2.0 document around the given ``<item>`` bodies."""
    body = "".join(f"<item>{item}</item>" for item in items)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>{channel}</title><link>https://news.example/</link>{body}</channel></rss>"
    ).encode()


def source(
    name: str = "test-feed", url: str = "https://news.example/rss", **kw: object
) -> FeedSource:
    return FeedSource.model_validate({"name": name, "url": url, **kw})


@dataclass
class Seen:
    path: str
    headers: Mapping[str, str]  # case-insensitive, as HTTP headers are


@dataclass
class FeedServer:
    """A real aiohttp server; tests set ``handlers[path]`` and read back ``requests``."""

    base: str = ""
    handlers: dict[str, Handler] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return self.base + path

    def seen(self, path: str) -> list[Seen]:
        return [r for r in self.requests if r.path == path]

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Seen(request.path, request.headers.copy()))
        handler = self.handlers.get(request.path)
        if handler is None:
            raise web.HTTPNotFound()
        return await handler(request)

    async def hang(self, request: web.Request) -> web.StreamResponse:
        """A server that accepts the connection and never answers."""
        await self.release.wait()
        return web.Response(status=503)
