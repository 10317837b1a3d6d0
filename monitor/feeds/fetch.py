"""Fetching feed bytes: http(s) with aiohttp (conditional GET, gzip, timeouts, size cap) and
``file://`` for local files."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import aiohttp

from monitor import __version__
from monitor.errors import FetchError

USER_AGENT = f"news-monitor/{__version__} (feed poller; conditional GET)"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)


@dataclass(frozen=True)
class Validators:
    """What the server told us last time, sent back so it can answer 304 Not Modified."""

    etag: str = ""
    last_modified: str = ""


@dataclass(frozen=True)
class Fetched:
    status: int  # 200, or 304 when not modified
    body: bytes
    url: str  # after redirects
    validators: Validators
    content_type: str = ""

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True)
class FetchLimits:
    total_timeout: float = 30.0
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    max_bytes: int = 20 * 1024 * 1024


def client_session(limits: FetchLimits) -> aiohttp.ClientSession:
    timeout = aiohttp.ClientTimeout(
        total=limits.total_timeout,
        sock_connect=limits.connect_timeout,
        sock_read=limits.read_timeout,
    )
    return aiohttp.ClientSession(
        timeout=timeout, headers={"User-Agent": USER_AGENT, "Accept": ACCEPT}
    )


async def fetch(
    session: aiohttp.ClientSession,
    feed: str,
    url: str,
    validators: Validators,
    limits: FetchLimits,
) -> Fetched:
    scheme = urlsplit(url).scheme.lower()
    if scheme == "file":
        return await _fetch_file(feed, url, limits)
    if scheme not in {"http", "https"}:
        raise FetchError(feed, f"unsupported URL scheme {scheme!r}")
    headers = {}
    if validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    try:
        async with session.get(url, headers=headers, allow_redirects=True) as resp:
            if resp.status == 304:
                return Fetched(304, b"", str(resp.url), validators)
            if resp.status >= 400:
                raise FetchError(feed, f"HTTP {resp.status} {resp.reason or ''} from {url}".strip())
            body = await _read_capped(resp, feed, limits.max_bytes)
            return Fetched(
                resp.status,
                body,
                str(resp.url),
                Validators(resp.headers.get("ETag", ""), resp.headers.get("Last-Modified", "")),
                resp.headers.get("Content-Type", ""),
            )
    except TimeoutError:
        raise FetchError(feed, f"timed out fetching {url}", outcome="timeout") from None
    except aiohttp.ClientError as exc:
        raise FetchError(feed, f"{type(exc).__name__}: {exc}") from None


async def _read_capped(resp: aiohttp.ClientResponse, feed: str, cap: int) -> bytes:
    # aiohttp decompresses gzip/deflate as it streams; counting decompressed bytes here caps
    # both oversized bodies and compression bombs.
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > cap:
            raise FetchError(feed, f"response larger than {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _fetch_file(feed: str, url: str, limits: FetchLimits) -> Fetched:
    path = Path(url2pathname(unquote(urlsplit(url).path)))

    def read() -> bytes:
        if path.stat().st_size > limits.max_bytes:
            raise FetchError(feed, f"{path} is larger than {limits.max_bytes} bytes")
        return path.read_bytes()

    try:
        body = await asyncio.to_thread(read)
    except OSError as exc:
        raise FetchError(feed, f"cannot read {path}: {exc.strerror or exc}") from None
    return Fetched(200, body, url, Validators())
