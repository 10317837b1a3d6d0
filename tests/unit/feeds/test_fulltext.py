"""Full text for teaser-only feeds, against a real HTTP server on 127.0.0.1: the page's main
text replaces or follows the teaser, every failure keeps the teaser, fetching is polite (one
request at a time per host, a pause between two) and bounded, extraction runs in threads."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.feeds import fulltext
from monitor.feeds.fetch import FetchLimits
from monitor.feeds.fulltext import FullText, FullTextLimits, extract_text, merge_body
from monitor.feeds.netguard import guarded_session
from monitor.metrics import Metrics
from monitor.models import Article
from tests.unit.feeds.helpers import FeedServer, Handler

NOW = datetime(2022, 2, 21, 12, 0, tzinfo=UTC)
TITLE = "Kremlin warns of military-technical response"
LEAD = (
    "Moscow said on Monday it would take military-technical measures if the West ignored its "
    "demands for security guarantees."
)
REST = [
    "The foreign ministry said Russia would have to respond with retaliatory military and "
    "technical measures to what it called an unfriendly course of action by NATO.",
    "Diplomats in Brussels said the alliance would not accept any veto over its open-door "
    "policy, and that talks would continue in Geneva next week.",
    "Analysts said the phrase had been used before to signal the deployment of new weapons "
    "systems closer to the borders of alliance members.",
]
FAST = FullTextLimits(host_delay=0.0, total_timeout=2.0, connect_timeout=1.0, read_timeout=0.5)


def page(title: str = TITLE, paragraphs: tuple[str, ...] = (LEAD, *REST)) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f"<!doctype html><html><head><title>{title} | Example News</title>"
        "<script>var tracking = 'do not extract me';</script></head><body>"
        "<nav><a href='/'>Home</a> <a href='/world'>World</a> <a href='/sport'>Sport</a></nav>"
        "<div class='cookie'>We use cookies to improve your experience.</div>"
        f"<article><h1>{title}</h1>{body}</article>"
        "<aside><h3>Most read</h3><ul><li><a href='/x'>Celebrity wedding</a></li></ul></aside>"
        "<footer>© 2022 Example News. All rights reserved.</footer></body></html>"
    )


def article(url: str, body: str = LEAD[:60] + "…", title: str = TITLE, n: int = 0) -> Article:
    return Article(
        id=f"a{n}",
        source="teasers",
        url=url,
        title=title,
        body=body,
        published=NOW,
        fetched_at=NOW,
    )


def html(text: str, status: int = 200) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text=text, status=status, content_type="text/html")

    return handler


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    limits = FetchLimits(total_timeout=3.0, connect_timeout=1.0, read_timeout=1.0)
    async with guarded_session(limits, allow_private=True) as s:
        yield s


def count(registry: CollectorRegistry, outcome: str, feed: str = "teasers") -> float:
    value = registry.get_sample_value(
        "monitor_fulltext_pages_total", {"feed": feed, "outcome": outcome}
    )
    return value or 0.0


# --- the text -----------------------------------------------------------------------------


def test_extraction_keeps_the_article_and_drops_the_page_around_it() -> None:
    text = extract_text(page(), "https://news.example/a", TITLE)
    assert text.split("\n") == [LEAD, *REST]  # the headline line is dropped: it is the title
    for chrome in ("Home", "cookies", "Most read", "Celebrity", "All rights", "tracking"):
        assert chrome not in text


def test_extraction_of_a_page_without_an_article_is_little_or_nothing() -> None:
    assert len(extract_text("<html><body><nav><a href='/'>Home</a></nav></body></html>")) < 20
    assert extract_text(b"") == ""


@pytest.mark.parametrize(
    "teaser",
    [
        LEAD[:60] + "…",
        LEAD[:60] + " [...]",
        LEAD[:80] + "... Read more",
        LEAD[:70] + " Continue reading »",
        LEAD,
        "",
    ],
)
def test_a_teaser_that_is_the_start_of_the_article_is_replaced(teaser: str) -> None:
    full = "\n".join([LEAD, *REST])
    assert merge_body(teaser, full) == full


def test_a_teaser_that_is_not_in_the_article_is_kept_in_front() -> None:
    summary = "Russia threatens a military reply as talks with the West stall."
    full = "\n".join([LEAD, *REST])
    assert merge_body(summary, full) == f"{summary}\n{full}"


def test_an_extraction_no_longer_than_the_teaser_keeps_the_teaser() -> None:
    assert merge_body(LEAD + " " + REST[0], LEAD) is None
    assert merge_body(LEAD, LEAD) is None


def test_the_merged_body_is_capped() -> None:
    assert len(merge_body("x", "y" * 500, max_body=100) or "") == 100


# --- fetching -----------------------------------------------------------------------------


async def test_teasers_get_the_full_text_in_order_and_failures_keep_the_teaser(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    server.handlers["/ok"] = html(page())
    server.handlers["/gone"] = html("<h1>Not found</h1>", status=404)
    server.handlers["/empty"] = html("<html><body><nav>Home</nav></body></html>")
    registry = CollectorRegistry()
    full_text = FullText(FAST, Metrics(registry))
    articles = [
        article(server.url("/ok"), n=0),
        article(server.url("/gone"), n=1),
        article(server.url("/empty"), n=2),
        article("", n=3),  # no link
        article("file:///etc/passwd", n=4),
    ]
    out = await full_text.enrich(session, "teasers", articles)
    assert [a.id for a in out] == ["a0", "a1", "a2", "a3", "a4"]
    assert out[0].body == "\n".join([LEAD, *REST])
    assert out[0].model_copy(update={"body": articles[0].body}) == articles[0]  # only the body
    assert out[1:] == articles[1:]
    assert count(registry, "extended") == 1
    assert count(registry, "http_error") == 1
    assert count(registry, "empty") == 1
    assert count(registry, "skipped") == 2
    assert sorted(r.path for r in server.requests) == ["/empty", "/gone", "/ok"]
    assert "text/html" in server.seen("/ok")[0].headers["Accept"]


async def test_a_summary_teaser_is_kept_in_front_of_the_full_text(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    server.handlers["/ok"] = html(page())
    summary = "Russia threatens a military reply as talks with the West stall."
    [out] = await FullText(FAST).enrich(session, "teasers", [article(server.url("/ok"), summary)])
    assert out.body == "\n".join([summary, LEAD, *REST])


async def test_a_page_shorter_than_the_teaser_keeps_the_teaser(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    server.handlers["/short"] = html(page(paragraphs=(LEAD, REST[0])))
    registry = CollectorRegistry()
    teaser = " ".join([LEAD, *REST])
    [out] = await FullText(FAST, Metrics(registry)).enrich(
        session, "teasers", [article(server.url("/short"), teaser)]
    )
    assert out.body == teaser
    assert count(registry, "no_gain") == 1


async def test_timeouts_size_caps_and_other_types_keep_the_teaser(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    async def pdf(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"%PDF-1.7", content_type="application/pdf")

    async def huge(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/html"})
        await resp.prepare(request)
        for _ in range(100):  # no Content-Length: the cap is enforced while reading
            await resp.write(b"<p>" + b"x" * 1020 + b"</p>")
        return resp

    server.handlers.update({"/slow": server.hang, "/pdf": pdf, "/huge": huge})
    registry = CollectorRegistry()
    limits = FullTextLimits(
        host_delay=0.0, total_timeout=1.0, read_timeout=0.3, max_bytes=20_000, retry_after=60
    )
    articles = [article(server.url(p), n=i) for i, p in enumerate(["/slow", "/pdf", "/huge"])]
    started = time.monotonic()
    out = await FullText(limits, Metrics(registry)).enrich(session, "teasers", articles)
    assert time.monotonic() - started < 5
    assert out == articles
    assert count(registry, "timeout") == 1
    assert count(registry, "not_html") == 1
    assert count(registry, "too_large") == 1


async def test_a_refused_address_keeps_the_teaser(server: FeedServer) -> None:
    """Without allow_private, the test server's 127.0.0.1 is refused like any private host."""
    server.handlers["/ok"] = html(page())
    registry = CollectorRegistry()
    async with guarded_session(FetchLimits()) as public_only:
        out = await FullText(FAST, Metrics(registry)).enrich(
            public_only, "teasers", [article(server.url("/ok"))]
        )
    assert out[0].body == article(server.url("/ok")).body
    assert count(registry, "refused") == 1
    assert server.requests == []


async def test_a_crash_in_extraction_keeps_the_teaser(
    server: FeedServer, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(html: bytes | str, url: str = "", title: str = "") -> str:
        raise RuntimeError("extractor bug")

    monkeypatch.setattr(fulltext, "extract_text", broken)
    server.handlers["/ok"] = html(page())
    registry = CollectorRegistry()
    a = article(server.url("/ok"))
    assert await FullText(FAST, Metrics(registry)).enrich(session, "teasers", [a]) == [a]
    assert count(registry, "error") == 1


async def test_the_page_charset_is_honoured(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    paragraphs = (
        "Москва заявила в понедельник, что примет военно-технические меры, если Запад "
        "проигнорирует её требования о гарантиях безопасности.",
        "Министерство иностранных дел заявило, что Россия будет вынуждена ответить на "
        "недружественный курс НАТО ответными военно-техническими мерами.",
    )
    body = page("Кремль предупредил", paragraphs).encode("windows-1251")

    async def cp1251(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, headers={"Content-Type": "text/html; charset=windows-1251"})

    server.handlers["/ru"] = cp1251
    [out] = await FullText(FAST).enrich(
        session, "teasers", [article(server.url("/ru"), "Москва заявила…", "Кремль предупредил")]
    )
    assert out.body == "\n".join(paragraphs)


async def test_a_compressed_page_is_inflated_whatever_the_session_does(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    """Feed sessions leave decompression to the feed fetcher (``auto_decompress`` off); pages
    are inflated all the same."""
    packed = gzip.compress(page().encode())

    async def gzipped(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Type": "text/html; charset=utf-8", "Content-Encoding": "gzip"}
        return web.Response(body=packed, headers=headers)

    server.handlers["/gz"] = gzipped
    [out] = await FullText(FAST).enrich(session, "teasers", [article(server.url("/gz"))])
    assert out.body == "\n".join([LEAD, *REST])


async def test_pages_are_remembered_across_polls(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    server.handlers["/ok"] = html(page())
    server.handlers["/gone"] = html("gone", status=410)
    registry = CollectorRegistry()
    full_text = FullText(FAST, Metrics(registry))
    articles = [article(server.url("/ok"), n=0), article(server.url("/gone"), n=1)]
    first = await full_text.enrich(session, "teasers", articles)
    again = await full_text.enrich(session, "teasers", articles)
    assert again == first
    assert len(server.seen("/ok")) == 1 and len(server.seen("/gone")) == 1
    assert count(registry, "cached") == 1
    assert count(registry, "skipped") == 1  # a failed page is not tried again at once


async def test_pages_past_the_budget_keep_their_teasers_until_the_next_poll(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    for i in range(5):
        server.handlers[f"/p{i}"] = html(page())
    registry = CollectorRegistry()
    full_text = FullText(FullTextLimits(host_delay=0.2, budget=0.3), Metrics(registry))
    articles = [article(server.url(f"/p{i}"), n=i) for i in range(5)]
    started = time.monotonic()
    first = await full_text.enrich(session, "teasers", articles)
    assert time.monotonic() - started < 2.0
    done = [a for a in first if a.body.startswith(LEAD)]
    assert 1 <= len(done) <= 3
    assert count(registry, "deadline") == 5 - len(done)
    # the next poll gets on with the rest: a page out of time is not a failed page
    second = await full_text.enrich(session, "teasers", articles)
    assert sum(a.body.startswith(LEAD) for a in second) > len(done)
    assert all(len(server.seen(f"/p{i}")) <= 1 for i in range(5))


async def test_skip_leaves_known_articles_alone(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    server.handlers["/ok"] = html(page())
    known = article(server.url("/ok"), n=0)
    out = await FullText(FAST).enrich(session, "teasers", [known], skip=lambda a: a.id == "a0")
    assert out == [known] and server.requests == []


# --- politeness and bounds ----------------------------------------------------------------


class Tracker:
    """Records how many requests were in flight at once, per host and overall."""

    def __init__(self, delay: float = 0.05) -> None:
        self.delay = delay
        self.now: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.total = 0
        self.peak_total = 0
        self.starts: dict[str, list[float]] = {}
        self.ends: dict[str, list[float]] = {}

    async def handler(self, request: web.Request) -> web.StreamResponse:
        host = request.host
        self.now[host] = self.now.get(host, 0) + 1
        self.peak[host] = max(self.peak.get(host, 0), self.now[host])
        self.total += 1
        self.peak_total = max(self.peak_total, self.total)
        self.starts.setdefault(host, []).append(time.monotonic())
        try:
            await asyncio.sleep(self.delay)
            return web.Response(text=page(), content_type="text/html")
        finally:
            self.now[host] -= 1
            self.total -= 1
            self.ends.setdefault(host, []).append(time.monotonic())


async def test_one_request_at_a_time_per_host_with_a_pause_between(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    tracker = Tracker(delay=0.02)
    for i in range(4):
        server.handlers[f"/p{i}"] = tracker.handler
    limits = FullTextLimits(host_delay=0.15, concurrency=8)
    articles = [article(server.url(f"/p{i}"), n=i) for i in range(4)]
    out = await FullText(limits).enrich(session, "teasers", articles)
    assert all(a.body.startswith(LEAD) for a in out)
    [host] = tracker.peak
    assert tracker.peak[host] == 1
    starts, ends = tracker.starts[host], tracker.ends[host]
    gaps = [start - end for start, end in zip(starts[1:], ends[:-1], strict=True)]
    assert min(gaps) >= 0.12  # the pause, give or take the clocks of client and server


async def test_different_hosts_are_fetched_at_once_within_the_overall_bound(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    port = server.url("").rsplit(":", 1)[1]
    hosts = [f"127.0.0.1:{port}", f"localhost:{port}"]
    tracker = Tracker(delay=0.2)
    server.handlers["/p"] = tracker.handler
    articles = [article(f"http://{h}/p", n=i) for i, h in enumerate(hosts)]
    await FullText(FullTextLimits(host_delay=0.0, concurrency=4)).enrich(
        session, "teasers", articles
    )
    assert tracker.peak_total == 2  # the two hosts in parallel

    tracker = Tracker(delay=0.05)
    server.handlers["/p"] = tracker.handler
    await FullText(FullTextLimits(host_delay=0.0, concurrency=1)).enrich(
        session, "teasers", articles
    )
    assert tracker.peak_total == 1  # the overall bound


async def test_extraction_runs_in_threads_a_bounded_number_at_once(
    server: FeedServer, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = 0
    peak = 0
    threads: set[str] = set()
    lock = threading.Lock()
    real = fulltext.extract_text

    def tracked(html: bytes | str, url: str = "", title: str = "") -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            threads.add(threading.current_thread().name)
        try:
            time.sleep(0.05)  # CPU work stand-in: blocks its thread, not the event loop
            return real(html, url, title)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(fulltext, "extract_text", tracked)
    port = server.url("").rsplit(":", 1)[1]
    server.handlers["/p"] = html(page())
    hosts = [f"127.0.0.1:{port}", f"localhost:{port}"]
    articles = [article(f"http://{h}/p", n=i) for i, h in enumerate(hosts)]
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    try:
        out = await FullText(FullTextLimits(host_delay=0.0, extractions=1)).enrich(
            session, "teasers", articles
        )
    finally:
        tick_task.cancel()
    assert all(a.body.startswith(LEAD) for a in out)
    assert peak == 1
    assert threading.main_thread().name not in threads
    assert ticks >= 5  # the loop kept running while pages were being extracted
