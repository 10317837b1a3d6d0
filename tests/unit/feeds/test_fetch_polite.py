"""Fetching, the polite and the defensive parts: who we say we are, what the server says about
caching and moving, decoding what it sends (and refusing what it should not), and telling a
web page from a feed."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from monitor import __version__
from monitor.errors import FetchError
from monitor.feeds.fetch import (
    FetchLimits,
    NotAFeed,
    RetryLater,
    Validators,
    client_session,
    feed_links,
    fetch,
    user_agent,
)
from tests.unit.feeds.helpers import FeedServer, rss

BODY = rss("<title>Headline</title><link>https://news.example/a</link>")
LIMITS = FetchLimits(total_timeout=2.0, connect_timeout=1.0, read_timeout=0.5, max_bytes=64_000)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with client_session(LIMITS) as s:
        yield s


def serve(server: FeedServer, path: str, body: bytes, **headers: str) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, headers=headers)

    server.handlers[path] = handler


# --- who we are ------------------------------------------------------------------------------


async def test_the_user_agent_names_the_version_and_the_operators_url(
    server: FeedServer,
) -> None:
    assert (
        user_agent("https://ops.example/bot")
        == f"news-monitor/{__version__} (+https://ops.example/bot)"
    )
    assert user_agent().startswith(f"news-monitor/{__version__} (")
    serve(server, "/rss", BODY)
    async with client_session(LIMITS, contact_url="https://ops.example/bot") as s:
        await fetch(s, "wire", server.url("/rss"), Validators(), LIMITS)
    [seen] = server.seen("/rss")
    assert seen.headers["User-Agent"] == f"news-monitor/{__version__} (+https://ops.example/bot)"
    assert seen.headers["Accept-Encoding"] == "gzip, deflate"  # what fetch() inflates itself


# --- what the server says --------------------------------------------------------------------


async def test_cache_control_max_age_is_reported_on_200_and_304(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    async def cached(request: web.Request) -> web.StreamResponse:
        headers = {"Cache-Control": "public, max-age=900", "ETag": '"e"'}
        if request.headers.get("If-None-Match") == '"e"':
            return web.Response(status=304, headers=headers)
        return web.Response(body=BODY, headers=headers)

    server.handlers["/rss"] = cached
    got = await fetch(session, "wire", server.url("/rss"), Validators(), LIMITS)
    assert got.max_age == 900
    again = await fetch(session, "wire", server.url("/rss"), got.validators, LIMITS)
    assert again.not_modified and again.max_age == 900


async def test_permanent_and_temporary_redirects_are_told_apart(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    serve(server, "/feed", BODY)

    async def moved(request: web.Request) -> web.StreamResponse:
        raise web.HTTPPermanentRedirect("/feed")  # 308

    async def elsewhere_today(request: web.Request) -> web.StreamResponse:
        raise web.HTTPTemporaryRedirect("/feed")  # 307

    server.handlers["/moved"] = moved
    server.handlers["/today"] = elsewhere_today
    got = await fetch(session, "wire", server.url("/moved"), Validators(), LIMITS)
    assert got.moved_to == server.url("/feed") and got.url == server.url("/feed")
    got = await fetch(session, "wire", server.url("/today"), Validators(), LIMITS)
    assert got.moved_to == "" and got.url == server.url("/feed")
    got = await fetch(session, "wire", server.url("/feed"), Validators(), LIMITS)
    assert got.moved_to == ""


async def test_a_redirect_loop_is_an_error(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    async def loop(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/loop")

    server.handlers["/loop"] = loop
    with pytest.raises(FetchError, match="more than 5 redirects"):
        await fetch(session, "loopy", server.url("/loop"), Validators(), LIMITS)


async def test_a_redirect_off_the_web_is_an_error_naming_it(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    async def away(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("ftp://files.example/feed.xml")

    server.handlers["/away"] = away
    with pytest.raises(
        FetchError, match=r"redirects to ftp://files\.example/feed\.xml, not an http"
    ):
        await fetch(session, "away", server.url("/away"), Validators(), LIMITS)


@pytest.mark.parametrize(
    ("header", "said"),
    [("Wed, 21 Oct 2099 07:28:00 GMT", "over a year"), ("86400", "24h"), ("259200", "3d")],
)
async def test_a_far_retry_after_is_said_in_words(
    server: FeedServer, session: aiohttp.ClientSession, header: str, said: str
) -> None:
    async def busy(request: web.Request) -> web.StreamResponse:
        return web.Response(status=503, headers={"Retry-After": header})

    server.handlers["/rss"] = busy
    with pytest.raises(RetryLater, match=f"Retry-After {said}$"):
        await fetch(session, "busy", server.url("/rss"), Validators(), LIMITS)


@pytest.mark.parametrize("status", [429, 503])
async def test_429_and_503_carry_the_retry_after(
    server: FeedServer, session: aiohttp.ClientSession, status: int
) -> None:
    async def busy(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Retry-After": "90"})

    server.handlers["/rss"] = busy
    with pytest.raises(RetryLater) as caught:
        await fetch(session, "busy", server.url("/rss"), Validators(), LIMITS)
    assert caught.value.delay == 90 and caught.value.outcome == "error"
    assert f"HTTP {status}" in str(caught.value)

    async def busy_without(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status)

    server.handlers["/rss"] = busy_without
    with pytest.raises(RetryLater) as caught:
        await fetch(session, "busy", server.url("/rss"), Validators(), LIMITS)
    assert caught.value.delay is None


# --- decoding --------------------------------------------------------------------------------


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [
        ("gzip", gzip.compress(BODY)),
        ("x-gzip", gzip.compress(BODY)),
        ("deflate", zlib.compress(BODY)),  # as the RFC says: zlib-wrapped
        ("deflate", raw_deflate(BODY)),  # as some servers send it: raw
        ("gzip", gzip.compress(BODY[:100]) + gzip.compress(BODY[100:])),  # two members
        ("gzip", gzip.compress(BODY) + b"\0\0\0\0"),  # trailing padding
        ("identity", BODY),
    ],
    ids=["gzip", "x-gzip", "deflate", "raw-deflate", "members", "padding", "identity"],
)
async def test_content_encodings_are_decoded(
    server: FeedServer, session: aiohttp.ClientSession, encoding: str, encoded: bytes
) -> None:
    serve(server, "/rss", encoded, **{"Content-Encoding": encoding})
    got = await fetch(session, "wire", server.url("/rss"), Validators(), LIMITS)
    assert got.body == BODY


async def test_a_corrupt_or_unknown_encoding_is_a_clear_error(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    serve(
        server, "/bad", b"\x1f\x8b\x08\x00garbage-garbage-garbage", **{"Content-Encoding": "gzip"}
    )
    with pytest.raises(FetchError, match="cannot decode the gzip body"):
        await fetch(session, "bad", server.url("/bad"), Validators(), LIMITS)
    serve(server, "/br", b"\x8b\x03\x80hello\x03", **{"Content-Encoding": "br"})
    with pytest.raises(FetchError, match="unsupported Content-Encoding 'br'"):
        await fetch(session, "br", server.url("/br"), Validators(), LIMITS)


async def test_a_deflate_bomb_is_capped_after_inflating(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    serve(
        server,
        "/bomb",
        zlib.compress(b"\0" * (100 * LIMITS.max_bytes)),
        **{"Content-Encoding": "deflate"},
    )
    with pytest.raises(
        FetchError, match=f"larger than {LIMITS.max_bytes} bytes once deflate-decoded"
    ):
        await fetch(session, "bomb", server.url("/bomb"), Validators(), LIMITS)


async def test_a_declared_length_over_the_cap_is_refused_before_reading(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = 10 * LIMITS.max_bytes
        await resp.prepare(request)
        await resp.write(b"<rss>")
        await server.release.wait()  # would stall: the client must not wait for the rest
        return resp

    server.handlers["/big"] = big
    with pytest.raises(FetchError, match=rf"larger than {LIMITS.max_bytes} bytes \(640000\)"):
        await fetch(session, "big", server.url("/big"), Validators(), LIMITS)


@pytest.mark.parametrize("body", [b"", b"   \r\n\t "])
async def test_an_empty_body_is_an_error(
    server: FeedServer, session: aiohttp.ClientSession, body: bytes
) -> None:
    serve(server, "/rss", body)
    with pytest.raises(FetchError, match=r"empty response \(HTTP 200\)"):
        await fetch(session, "empty", server.url("/rss"), Validators(), LIMITS)


async def test_a_stall_after_the_headers_says_which_timeout(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    async def stalls(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"<rss>")
        await server.release.wait()
        return resp

    server.handlers["/rss"] = stalls
    with pytest.raises(FetchError, match=r"timed out reading .*: no data for 0.5s") as caught:
        await fetch(session, "slow", server.url("/rss"), Validators(), LIMITS)
    assert caught.value.outcome == "timeout"


# --- web pages -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "page",
    [
        b"<!DOCTYPE html><html><head></head></html>",
        b"\xef\xbb\xbf\n  <!doctype HTML>\n<html lang=en>",
        b"<!-- served by CMS 4.2 -->\n<html><body>hi</body></html>",
        b'<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0//EN" "x">',
        b"<HTML>\n<HEAD><TITLE>Moved</TITLE></HEAD>",
    ],
)
async def test_a_web_page_is_not_a_feed(
    server: FeedServer, session: aiohttp.ClientSession, page: bytes
) -> None:
    serve(server, "/rss", page, **{"Content-Type": "text/html; charset=utf-8"})
    with pytest.raises(NotAFeed, match="is a web page \\(text/html\\) that links to no feed"):
        await fetch(session, "page", server.url("/rss"), Validators(), LIMITS)


async def test_a_feed_that_mentions_html_is_still_a_feed(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    body = rss("<title>x</title><description>&lt;html&gt; in a story</description>")
    serve(server, "/rss", body, **{"Content-Type": "text/html"})  # mislabelled, still a feed
    got = await fetch(session, "wire", server.url("/rss"), Validators(), LIMITS)
    assert got.body == body


async def test_a_web_page_names_the_feed_it_links_to(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    page = b"""<!doctype html><html><head>
    <link rel="alternate" type="application/atom+xml" href="https://cdn.example/atom.xml">
    </head></html>"""
    serve(server, "/", page, **{"Content-Type": "text/html"})
    with pytest.raises(NotAFeed) as caught:
        await fetch(session, "home", server.url("/"), Validators(), LIMITS)
    assert caught.value.feed_url == "https://cdn.example/atom.xml"
    assert "its feed is at https://cdn.example/atom.xml" in str(caught.value)


def test_feed_links_are_found_resolved_and_ranked() -> None:
    page = b"""<html><head>
      <link rel="stylesheet" type="text/css" href="/style.css">
      <link rel=alternate type=application/json href=/feed.json>
      <link href='comments.xml' type='application/rss+xml' rel='alternate'>
      <LINK REL="Alternate home" TYPE="application/atom+xml; charset=utf-8" HREF="/atom?a=1&amp;b=2">
      <link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">
      <link rel="alternate" type="application/rss+xml">
      <link rel="alternate" type="application/rss+xml" href="comments.xml">
    </head></html>"""
    assert feed_links(page, "https://news.example/world/index.html") == [
        "https://news.example/world/comments.xml",
        "https://news.example/atom?a=1&b=2",
        "https://news.example/feed.json",
    ]


def test_feed_links_honour_the_base_element() -> None:
    page = b'<html><head><base href="https://static.example/site/"><link rel="alternate" type="application/rss+xml" href="rss.xml"></head>'
    assert feed_links(page, "https://news.example/") == ["https://static.example/site/rss.xml"]
