"""Fetching over real sockets on 127.0.0.1: conditional GET, gzip, errors, timeouts, size caps,
and file:// for local feeds."""

from __future__ import annotations

import gzip
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from monitor.errors import FetchError
from monitor.feeds.fetch import FetchLimits, Validators, client_session, fetch
from tests.unit.feeds.helpers import SAMPLES, FeedServer, rss

BODY = rss("<title>Headline</title><link>https://news.example/a</link>")
ETAG = '"v1-abc"'
LAST_MODIFIED = "Tue, 14 Dec 2021 12:05:00 GMT"
LIMITS = FetchLimits(total_timeout=2.0, connect_timeout=1.0, read_timeout=0.5, max_bytes=64_000)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with client_session(LIMITS) as s:
        yield s


async def conditional_feed(request: web.Request) -> web.StreamResponse:
    """Answers 304 when the client proves it has the current version, like a real CDN."""
    if (
        request.headers.get("If-None-Match") == ETAG
        or request.headers.get("If-Modified-Since") == LAST_MODIFIED
    ):
        return web.Response(status=304, headers={"ETag": ETAG})
    return web.Response(
        body=BODY,
        content_type="application/rss+xml",
        headers={"ETag": ETAG, "Last-Modified": LAST_MODIFIED},
    )


async def test_a_200_returns_the_body_and_the_validators(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    server.handlers["/rss"] = conditional_feed
    got = await fetch(session, "wire", server.url("/rss"), Validators(), LIMITS)
    assert (got.status, got.not_modified, got.body) == (200, False, BODY)
    assert got.validators == Validators(ETAG, LAST_MODIFIED)
    assert got.content_type.startswith("application/rss+xml")
    [request] = server.seen("/rss")
    assert "news-monitor" in request.headers["User-Agent"]
    assert "application/rss+xml" in request.headers["Accept"]
    assert "If-None-Match" not in request.headers  # nothing to be conditional on yet


@pytest.mark.parametrize(
    "validators",
    [
        Validators(ETAG, LAST_MODIFIED),
        Validators(etag=ETAG),
        Validators(last_modified=LAST_MODIFIED),
    ],
)
async def test_a_conditional_get_that_the_server_answers_304_is_not_modified(
    server: FeedServer, session: aiohttp.ClientSession, validators: Validators
) -> None:
    server.handlers["/rss"] = conditional_feed
    got = await fetch(session, "wire", server.url("/rss"), validators, LIMITS)
    assert got.not_modified and got.status == 304 and got.body == b""
    assert got.validators == validators  # kept for the next poll
    [request] = server.seen("/rss")
    assert request.headers.get("If-None-Match", "") == validators.etag
    assert request.headers.get("If-Modified-Since", "") == validators.last_modified


async def test_stale_validators_get_the_new_version(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    server.handlers["/rss"] = conditional_feed
    got = await fetch(session, "wire", server.url("/rss"), Validators('"v0-old"'), LIMITS)
    assert got.status == 200 and got.body == BODY and got.validators.etag == ETAG


async def test_gzip_content_encoding_is_decoded(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    async def gzipped(request: web.Request) -> web.StreamResponse:
        return web.Response(body=gzip.compress(BODY), headers={"Content-Encoding": "gzip"})

    server.handlers["/rss.gz"] = gzipped
    got = await fetch(session, "wire", server.url("/rss.gz"), Validators(), LIMITS)
    assert got.body == BODY


async def test_redirects_are_followed_and_the_final_url_reported(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    async def moved(request: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently("/new/rss")

    server.handlers["/old/rss"] = moved
    server.handlers["/new/rss"] = conditional_feed
    got = await fetch(session, "wire", server.url("/old/rss"), Validators(), LIMITS)
    assert got.body == BODY and got.url == server.url("/new/rss")


@pytest.mark.parametrize(("status", "reason"), [(500, "Internal Server Error"), (404, "Not Found")])
async def test_http_errors_name_the_feed_and_the_status(
    server: FeedServer, session: aiohttp.ClientSession, status: int, reason: str
) -> None:
    async def failing(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text="<html>oops</html>")

    server.handlers["/rss"] = failing
    with pytest.raises(FetchError) as caught:
        await fetch(session, "harbour-times", server.url("/rss"), Validators(), LIMITS)
    assert caught.value.feed == "harbour-times" and caught.value.outcome == "error"
    assert "harbour-times" in str(caught.value)
    assert f"HTTP {status} {reason}" in str(caught.value)


async def test_a_server_that_never_answers_is_a_timeout(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    server.handlers["/rss"] = server.hang
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        await fetch(session, "slow-feed", server.url("/rss"), Validators(), LIMITS)
    assert caught.value.outcome == "timeout"
    assert "slow-feed" in str(caught.value) and "timed out" in str(caught.value)
    assert time.monotonic() - started < 5  # the limits, not the server, decide


async def test_a_body_that_stalls_halfway_is_a_timeout(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    async def stalls(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"<rss><channel>")
        await server.release.wait()
        return response

    server.handlers["/rss"] = stalls
    with pytest.raises(FetchError) as caught:
        await fetch(session, "slow-feed", server.url("/rss"), Validators(), LIMITS)
    assert caught.value.outcome == "timeout"


async def test_a_body_over_max_bytes_is_refused(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    async def huge(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"x" * (LIMITS.max_bytes + 1))

    server.handlers["/rss"] = huge
    with pytest.raises(FetchError, match=f"larger than {LIMITS.max_bytes} bytes") as caught:
        await fetch(session, "big-feed", server.url("/rss"), Validators(), LIMITS)
    assert caught.value.feed == "big-feed"


async def test_a_compression_bomb_is_capped_after_decompression(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    bomb = gzip.compress(b"\0" * (50 * LIMITS.max_bytes))
    assert len(bomb) < LIMITS.max_bytes  # small on the wire, huge when inflated

    async def inflating(request: web.Request) -> web.StreamResponse:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    server.handlers["/rss"] = inflating
    with pytest.raises(FetchError, match="larger than"):
        await fetch(session, "bomb", server.url("/rss"), Validators(), LIMITS)


async def test_a_refused_connection_is_an_error_naming_the_feed(
    session: aiohttp.ClientSession,
) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchError) as caught:
        await fetch(session, "down", f"http://127.0.0.1:{port}/rss", Validators(), LIMITS)
    assert caught.value.outcome == "error" and "down" in str(caught.value)


async def test_a_file_url_is_read_from_disk(session: aiohttp.ClientSession) -> None:
    path = SAMPLES / "global-wire.xml"
    got = await fetch(session, "global-wire", path.as_uri(), Validators(), LIMITS)
    assert got.status == 200 and got.body == path.read_bytes()


async def test_a_file_url_with_an_escaped_space_is_read(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    path = tmp_path / "my feeds" / "local feed.xml"
    path.parent.mkdir()
    path.write_bytes(BODY)
    assert "%20" in path.as_uri()
    got = await fetch(session, "local", path.as_uri(), Validators(), LIMITS)
    assert got.body == BODY


async def test_a_missing_file_is_a_fetch_error(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    missing = tmp_path / "gone.xml"
    with pytest.raises(FetchError, match=r"gone\.xml") as caught:
        await fetch(session, "local", missing.as_uri(), Validators(), LIMITS)
    assert caught.value.feed == "local" and caught.value.outcome == "error"


async def test_a_file_over_max_bytes_is_refused(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    path = tmp_path / "huge.xml"
    path.write_bytes(b"x" * (LIMITS.max_bytes + 1))
    with pytest.raises(FetchError, match="larger than"):
        await fetch(session, "local", path.as_uri(), Validators(), LIMITS)


async def test_other_schemes_are_refused(session: aiohttp.ClientSession) -> None:
    with pytest.raises(FetchError, match="unsupported URL scheme 'ftp'"):
        await fetch(session, "ftp-feed", "ftp://files.example/rss", Validators(), LIMITS)
