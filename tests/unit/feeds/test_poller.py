"""The poller against a real local server: per-feed health in state, back-off, metrics by
outcome, and one sick feed never stopping the others."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.errors import FeedError
from monitor.feeds.fetch import FetchLimits, client_session
from monitor.feeds.poller import MAX_BACKOFF, FeedState, Poller, PollResult
from monitor.feeds.sources import FeedSource
from monitor.metrics import Metrics
from tests.unit.feeds.helpers import SAMPLES, FeedServer, rss, source

ETAG = '"rev-7"'
BODY = rss(
    "<title>First</title><link>https://news.example/1</link>",
    "<title>Second</title><link>https://news.example/2</link>",
)
LIMITS = FetchLimits(total_timeout=2.0, connect_timeout=1.0, read_timeout=0.3, max_bytes=1 << 20)
INTERVAL = 10.0  # the smallest a feed list allows; back-off doubles from here


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with client_session(LIMITS) as s:
        yield s


async def good(request: web.Request) -> web.StreamResponse:
    if request.headers.get("If-None-Match") == ETAG:
        return web.Response(status=304)
    return web.Response(body=BODY, headers={"ETag": ETAG}, content_type="application/rss+xml")


async def broken(request: web.Request) -> web.StreamResponse:
    return web.Response(status=500)


async def html_page(request: web.Request) -> web.StreamResponse:
    return web.Response(text="<html><body>Please sign in</body></html>", content_type="text/html")


def polls(registry: CollectorRegistry, feed: str, outcome: str) -> float:
    value = registry.get_sample_value(
        "monitor_feed_polls_total", {"feed": feed, "outcome": outcome}
    )
    return value or 0.0


async def settled(poller: Poller, session: aiohttp.ClientSession, src: FeedSource) -> PollResult:
    """Poll and settle, as a runtime does once the articles are handed on."""
    result = await poller.poll(session, src)
    poller.settle([result])
    return result


async def settled_many(
    poller: Poller, session: aiohttp.ClientSession, sources: list[FeedSource]
) -> list[PollResult]:
    results = await poller.poll_many(session, sources)
    poller.settle(results)
    return results


def feed(server: FeedServer, name: str, path: str) -> FeedSource:
    return source(name, server.url(path), interval=INTERVAL)


async def test_a_successful_poll_records_validators_health_and_metrics(
    server: FeedServer,
    session: aiohttp.ClientSession,
    metrics: Metrics,
    registry: CollectorRegistry,
) -> None:
    server.handlers["/rss"] = good
    wire = feed(server, "wire", "/rss")
    state: dict[str, FeedState] = {}
    poller = Poller([wire], state, metrics, LIMITS)

    before = time.time()
    result = await settled(poller, session, wire)
    after = time.time()

    assert result.outcome == "ok" and result.error == ""
    assert [a.title for a in result.articles] == ["First", "Second"]
    assert all(a.source == "wire" for a in result.articles)
    st = state["wire"]
    assert st.etag == ETAG
    assert before <= st.last_success <= after
    assert st.consecutive_errors == 0 and st.last_error == "" and st.entries == 2
    assert before + 0.9 * INTERVAL <= st.next_poll <= after + 1.1 * INTERVAL
    assert polls(registry, "wire", "ok") == 1
    assert registry.get_sample_value("monitor_articles_ingested_total", {"feed": "wire"}) == 2
    assert registry.get_sample_value(
        "monitor_feed_last_success_timestamp_seconds", {"feed": "wire"}
    ) == pytest.approx(st.last_success)
    assert (
        registry.get_sample_value("monitor_feed_poll_duration_seconds_count", {"feed": "wire"}) == 1
    )
    # Not due again until its interval has passed.
    assert poller.due(after) == []
    assert poller.due(st.next_poll) == [wire]


async def test_the_next_poll_is_conditional_and_304_is_counted_as_not_modified(
    server: FeedServer,
    session: aiohttp.ClientSession,
    metrics: Metrics,
    registry: CollectorRegistry,
) -> None:
    server.handlers["/rss"] = good
    wire = feed(server, "wire", "/rss")
    state: dict[str, FeedState] = {}
    poller = Poller([wire], state, metrics, LIMITS)

    await settled(poller, session, wire)
    result = await settled(poller, session, wire)

    assert result.outcome == "not_modified" and result.articles == []
    assert server.seen("/rss")[1].headers.get("If-None-Match") == ETAG
    assert state["wire"].etag == ETAG  # still there for the poll after
    assert state["wire"].entries == 2  # the last real fetch's count, not 0
    assert polls(registry, "wire", "ok") == 1
    assert polls(registry, "wire", "not_modified") == 1
    # Nothing new was read: the article counter did not move.
    assert registry.get_sample_value("monitor_articles_ingested_total", {"feed": "wire"}) == 2


async def test_repeated_errors_back_off_and_a_success_resets_the_feed(
    server: FeedServer,
    session: aiohttp.ClientSession,
    metrics: Metrics,
    registry: CollectorRegistry,
) -> None:
    server.handlers["/rss"] = good
    wire = feed(server, "wire", "/rss")
    state: dict[str, FeedState] = {}
    poller = Poller([wire], state, metrics, LIMITS)
    await settled(poller, session, wire)
    last_success = state["wire"].last_success

    server.handlers["/rss"] = broken
    delays = []
    for attempt in (1, 2, 3, 4):
        started = time.time()
        result = await settled(poller, session, wire)
        assert result.outcome == "error" and "HTTP 500" in result.error
        st = state["wire"]
        assert st.consecutive_errors == attempt
        assert "HTTP 500" in st.last_error
        assert st.last_success == last_success  # the last *good* poll, for staleness alerts
        assert st.etag == ETAG  # kept: the feed may come back unchanged
        delays.append(st.next_poll - started)
    # 10 s, 20 s, 40 s, 80 s give or take 10% jitter: each wait longer than the one before.
    assert delays == sorted(delays) and len(set(delays)) == 4
    assert delays[-1] > 6 * INTERVAL
    assert polls(registry, "wire", "error") == 4
    assert registry.get_sample_value("monitor_articles_ingested_total", {"feed": "wire"}) == 2

    server.handlers["/rss"] = good
    started = time.time()
    result = await settled(poller, session, wire)
    assert result.outcome == "not_modified"  # the etag survived the outage
    st = state["wire"]
    assert st.consecutive_errors == 0 and st.last_error == ""
    assert st.last_success >= started
    assert st.next_poll - started <= 1.1 * INTERVAL + 1


async def test_back_off_is_capped_so_a_feed_is_never_abandoned(
    server: FeedServer, session: aiohttp.ClientSession, metrics: Metrics
) -> None:
    server.handlers["/rss"] = broken
    wire = feed(server, "wire", "/rss")
    state = {"wire": FeedState(consecutive_errors=40)}
    poller = Poller([wire], state, metrics, LIMITS)
    started = time.time()
    await settled(poller, session, wire)
    assert state["wire"].consecutive_errors == 41
    assert 0.9 * MAX_BACKOFF <= state["wire"].next_poll - started <= 1.1 * MAX_BACKOFF + 1


async def test_a_server_that_never_answers_counts_as_a_timeout(
    server: FeedServer,
    session: aiohttp.ClientSession,
    metrics: Metrics,
    registry: CollectorRegistry,
) -> None:
    server.handlers["/rss"] = server.hang
    slow = feed(server, "slow", "/rss")
    state: dict[str, FeedState] = {}
    result = await settled(Poller([slow], state, metrics, LIMITS), session, slow)
    assert result.outcome == "timeout"
    assert state["slow"].consecutive_errors == 1 and "timed out" in state["slow"].last_error
    assert polls(registry, "slow", "timeout") == 1
    assert polls(registry, "slow", "error") == 0


async def test_a_page_that_is_not_a_feed_is_an_error_not_an_empty_success(
    server: FeedServer,
    session: aiohttp.ClientSession,
    metrics: Metrics,
    registry: CollectorRegistry,
) -> None:
    # A login wall served with 200: "0 new articles" would hide a dead feed from the ops team.
    server.handlers["/rss"] = html_page
    walled = feed(server, "walled", "/rss")
    state: dict[str, FeedState] = {}
    result = await settled(Poller([walled], state, metrics, LIMITS), session, walled)
    assert result.outcome == "error" and "not a feed" in result.error
    assert state["walled"].consecutive_errors == 1 and state["walled"].last_success == 0
    assert polls(registry, "walled", "error") == 1
    assert polls(registry, "walled", "ok") == 0


async def test_one_failing_feed_does_not_stop_the_others(
    server: FeedServer,
    session: aiohttp.ClientSession,
    metrics: Metrics,
    registry: CollectorRegistry,
) -> None:
    server.handlers["/good"] = good
    server.handlers["/broken"] = broken
    server.handlers["/hang"] = server.hang
    sources = [
        feed(server, "down", "/broken"),
        feed(server, "slow", "/hang"),
        feed(server, "wire", "/good"),
        feed(server, "gone", "/no-such-feed"),
        source("local", (SAMPLES / "global-wire.xml").as_uri(), interval=INTERVAL),
    ]
    state: dict[str, FeedState] = {}
    poller = Poller(sources, state, metrics, LIMITS, concurrency=2)

    results = await settled_many(poller, session, sources)

    assert [(r.feed, r.outcome) for r in results] == [
        ("down", "error"),
        ("slow", "timeout"),
        ("wire", "ok"),
        ("gone", "error"),
        ("local", "ok"),
    ]
    assert len(results[2].articles) == 2 and len(results[4].articles) == 10
    assert "HTTP 404" in results[3].error
    assert {name: st.consecutive_errors for name, st in state.items()} == {
        "down": 1,
        "slow": 1,
        "wire": 0,
        "gone": 1,
        "local": 0,
    }
    assert polls(registry, "down", "error") == 1
    assert polls(registry, "slow", "timeout") == 1
    assert polls(registry, "wire", "ok") == 1
    assert polls(registry, "local", "ok") == 1


async def test_slow_feeds_are_polled_side_by_side_not_one_after_another(
    server: FeedServer, session: aiohttp.ClientSession, metrics: Metrics
) -> None:
    # Four feeds that never answer must cost one timeout, not four: a poll round over hundreds
    # of feeds cannot wait for each dead one in turn.
    server.handlers["/hang"] = server.hang
    sources = [feed(server, f"slow-{i}", "/hang") for i in range(4)]
    poller = Poller(sources, {}, metrics, LIMITS)
    started = time.monotonic()
    results = await settled_many(poller, session, sources)
    assert [r.outcome for r in results] == ["timeout"] * 4
    assert time.monotonic() - started < 3 * LIMITS.read_timeout


async def test_feed_state_is_saved_only_once_the_articles_are_handed_on(
    server: FeedServer, session: aiohttp.ClientSession, metrics: Metrics
) -> None:
    server.handlers["/rss"] = good
    wire = feed(server, "wire", "/rss")
    state: dict[str, FeedState] = {}
    poller = Poller([wire], state, metrics, LIMITS)
    result = await poller.poll(session, wire)
    # not handed on yet: a crash now must refetch the entries, so no ETag is saved...
    assert "wire" not in state
    # ...but the schedule already knows the feed was polled
    assert poller.due(time.time()) == []
    poller.settle([result])
    assert state["wire"].etag == ETAG and poller.pending == {}
    # a restarted poller (fresh pending) that never settled would fetch in full again
    assert Poller([wire], {}, metrics, LIMITS).due(time.time()) == [wire]


async def test_pushed_content_is_parsed_counted_and_leaves_the_feed_state_alone(
    server: FeedServer, session: aiohttp.ClientSession
) -> None:
    server.handlers["/rss"] = good
    registry = CollectorRegistry()
    poller = Poller([src := source(url=server.url("/rss"))], {}, Metrics(registry), LIMITS)
    polled = await settled(poller, session, src)
    saved = poller.state[src.name]
    assert saved.etag == ETAG
    pushed = await poller.pushed(
        session,
        src,
        rss("<title>Third</title><link>https://news.example/3</link>"),
        server.url("/rss"),
    )
    assert pushed.outcome == "pushed" and [a.title for a in pushed.articles] == ["Third"]
    poller.settle([pushed])  # a push is no poll: validators and schedule stay as they were
    assert poller.state[src.name] == saved
    assert len(server.requests) == 1  # nothing fetched for it
    ingested = registry.get_sample_value("monitor_articles_ingested_total", {"feed": src.name})
    assert ingested == len(polled.articles) + 1
    with pytest.raises(FeedError):  # a document that holds no feed: the hub hears of it
        await poller.pushed(session, src, b"<html><body>nope</body></html>", server.url("/rss"))
