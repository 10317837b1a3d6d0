"""The poller's schedule against a real local server: the interval adapts to how often a feed
publishes, the publisher's hints are lower bounds, the state keeps what a 304 cannot tell, and
health is exported per feed."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import formatdate

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.feeds.fetch import Fetched, FetchLimits, client_session
from monitor.feeds.poller import FeedState, Poller, PollResult, run_polling
from monitor.feeds.schedule import Schedule
from monitor.feeds.sources import FeedSource
from monitor.metrics import Metrics
from tests.unit.feeds.helpers import FeedServer, Handler, rss, source

LIMITS = FetchLimits(total_timeout=2.0, connect_timeout=1.0, read_timeout=0.5, max_bytes=1 << 20)
MIN, HOUR = 60.0, 3600.0


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with client_session(LIMITS) as s:
        yield s


def dated(*ages: float, channel: str = "") -> bytes:
    """A feed whose entries were published ``ages`` seconds ago."""
    now = time.time()
    items = [
        f"<title>Story {i}</title><link>https://news.example/{i}</link>"
        f"<pubDate>{formatdate(now - age, usegmt=True)}</pubDate>"
        for i, age in enumerate(ages)
    ]
    doc = rss(*items).decode()
    return doc.replace("<channel>", "<channel>" + channel, 1).encode()


def conditional(body: bytes, **headers: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, headers={"ETag": '"v1"', **headers})

    return handler


async def settled(poller: Poller, session: aiohttp.ClientSession, src: FeedSource) -> FeedState:
    result = await poller.poll(session, src)
    poller.settle([result])
    return result.state


def gauge(registry: CollectorRegistry, name: str, feed: str) -> float | None:
    return registry.get_sample_value(name, {"feed": feed})


async def test_the_interval_follows_the_publishing_rate(
    server: FeedServer, session: aiohttp.ClientSession, registry: CollectorRegistry
) -> None:
    # an entry every 20 minutes, the newest 10 minutes ago; configured every 15 minutes
    server.handlers["/rss"] = conditional(dated(*(10 * MIN + 20 * MIN * i for i in range(8))))
    feed = source("steady", server.url("/rss"), interval="15m")
    poller = Poller([feed], {}, Metrics(registry), LIMITS)
    before = time.time()
    st = await settled(poller, session, feed)
    assert st.interval == pytest.approx(20 * MIN, abs=2)
    assert before + 0.9 * 20 * MIN <= st.next_poll <= time.time() + 1.1 * 20 * MIN
    assert len(st.entry_times) == 8 and list(st.entry_times) == sorted(st.entry_times, reverse=True)
    assert gauge(registry, "monitor_feed_poll_interval_seconds", "steady") == st.interval
    assert gauge(registry, "monitor_feed_next_poll_timestamp_seconds", "steady") == st.next_poll
    assert gauge(registry, "monitor_feed_interval_seconds", "steady") == 15 * MIN  # configured

    # a 304 cannot say when entries were published: the dates kept in the state still do
    again = await settled(poller, session, feed)
    assert again.entry_times == st.entry_times
    assert again.interval == pytest.approx(20 * MIN, abs=2)


@pytest.mark.parametrize(
    ("ages", "expected"),
    [
        ([30.0 + 90 * i for i in range(10)], 5 * MIN),  # a busy wire: the floor
        ([400 * 86400.0 + HOUR * i for i in range(5)], 6 * HOUR),  # silent for a year
    ],
    ids=["busy", "silent"],
)
async def test_busy_and_silent_feeds_meet_the_bounds(
    server: FeedServer,
    session: aiohttp.ClientSession,
    metrics: Metrics,
    ages: list[float],
    expected: float,
) -> None:
    server.handlers["/rss"] = conditional(dated(*ages))
    feed = source("feed", server.url("/rss"), interval="15m")
    poller = Poller([feed], {}, metrics, LIMITS)
    before = time.time()
    st = await settled(poller, session, feed)
    assert st.interval == expected
    assert before + 0.9 * expected <= st.next_poll <= time.time() + min(1.1 * expected, 6 * HOUR)


async def test_the_bounds_are_settings(
    server: FeedServer, session: aiohttp.ClientSession, metrics: Metrics
) -> None:
    server.handlers["/rss"] = conditional(dated(*(30.0 + 90 * i for i in range(10))))
    feed = source("feed", server.url("/rss"), interval="15m")
    poller = Poller([feed], {}, metrics, LIMITS, schedule=Schedule(min_interval=2 * MIN))
    st = await settled(poller, session, feed)
    assert st.interval == 2 * MIN  # a median gap of 90 s, floored at 2 minutes


async def test_ttl_is_a_lower_bound_kept_through_304s(
    server: FeedServer, session: aiohttp.ClientSession, metrics: Metrics
) -> None:
    server.handlers["/rss"] = conditional(dated(60, 120, channel="<ttl>60</ttl>"))
    feed = source("ttl", server.url("/rss"), interval=10)
    poller = Poller([feed], {}, metrics, LIMITS)
    before = time.time()
    st = await settled(poller, session, feed)
    assert st.min_interval == HOUR
    assert before + HOUR <= st.next_poll <= time.time() + HOUR + 1
    again = await settled(poller, session, feed)  # 304: no body, the hint is remembered
    assert again.min_interval == HOUR and again.next_poll >= time.time() + HOUR - 1


async def test_cache_control_max_age_on_a_304_is_a_lower_bound(
    server: FeedServer, session: aiohttp.ClientSession, metrics: Metrics
) -> None:
    server.handlers["/rss"] = conditional(dated(60), **{"Cache-Control": "max-age=1800"})
    feed = source("cdn", server.url("/rss"), interval=10)
    poller = Poller([feed], {}, metrics, LIMITS)
    await settled(poller, session, feed)
    st = await settled(poller, session, feed)
    assert st.next_poll >= time.time() + 1800 - 1


async def test_no_hint_holds_a_feed_past_the_ceiling(
    server: FeedServer, session: aiohttp.ClientSession, metrics: Metrics
) -> None:
    server.handlers["/rss"] = conditional(dated(60, channel="<ttl>99999999</ttl>"))
    feed = source("forever", server.url("/rss"), interval=10)
    poller = Poller([feed], {}, metrics, LIMITS)
    st = await settled(poller, session, feed)
    assert st.next_poll <= time.time() + 6 * HOUR


async def test_skip_hours_move_the_next_poll_out_of_them(
    server: FeedServer, session: aiohttp.ClientSession, metrics: Metrics
) -> None:
    now = datetime.now(UTC)
    allowed = (now.hour + 2) % 24
    skipped = "".join(f"<hour>{h}</hour>" for h in range(24) if h != allowed)
    server.handlers["/rss"] = conditional(dated(60, channel=f"<skipHours>{skipped}</skipHours>"))
    feed = source("night", server.url("/rss"), interval=10)
    poller = Poller([feed], {}, metrics, LIMITS)
    st = await settled(poller, session, feed)
    assert len(st.skip_hours) == 23
    when = datetime.fromtimestamp(st.next_poll, UTC)
    assert when.hour == allowed and when.minute == 0


async def test_errors_back_off_from_the_adapted_interval(
    server: FeedServer, session: aiohttp.ClientSession, metrics: Metrics
) -> None:
    async def broken(request: web.Request) -> web.StreamResponse:
        return web.Response(status=500)

    server.handlers["/rss"] = broken
    feed = source("slow", server.url("/rss"), interval="15m")
    state = {"slow": FeedState(interval=2 * HOUR, source_url=feed.url)}
    poller = Poller([feed], state, metrics, LIMITS, rng=random.Random(1))
    before = time.time()
    st = await settled(poller, session, feed)
    # not the configured 15 minutes: a feed polled every 2 hours is not polled faster on errors
    assert before + 0.9 * 2 * HOUR <= st.next_poll <= time.time() + 1.1 * 2 * HOUR
    assert st.interval == 2 * HOUR and st.consecutive_errors == 1


async def test_a_new_url_in_the_feed_list_starts_the_feed_afresh(
    server: FeedServer, session: aiohttp.ClientSession, metrics: Metrics
) -> None:
    old = "http://127.0.0.1:9/old.xml"
    feed = source("moved", server.url("/rss"), interval=10)
    state = {
        "moved": FeedState(
            retired=True, source_url=old, etag='"stale"', next_poll=time.time() + 1e6
        ),
        "legacy": FeedState(etag='"kept"', next_poll=time.time() + 1e6),  # before source_url
    }
    legacy = source("legacy", server.url("/legacy"), interval=10)
    poller = Poller([feed, legacy], state, metrics, LIMITS)
    assert poller.due(time.time()) == [feed]
    assert poller.retired() == []
    server.handlers["/rss"] = conditional(dated(60))
    st = await settled(poller, session, feed)
    assert not st.retired and st.source_url == feed.url and st.etag == '"v1"'
    assert server.seen("/rss")[0].headers.get("If-None-Match") is None  # not the old validator


async def test_states_are_read_from_the_store_once(
    server: FeedServer, session: aiohttp.ClientSession, metrics: Metrics
) -> None:
    class Counting(dict[str, FeedState]):
        reads = 0

        def __getitem__(self, key: str) -> FeedState:
            Counting.reads += 1
            return super().__getitem__(key)

    feeds = [source(f"f{i}", server.url("/rss"), interval=10) for i in range(50)]
    store = Counting({f.name: FeedState(next_poll=time.time() + 100) for f in feeds})
    poller = Poller(feeds, store, metrics, LIMITS)
    for _ in range(20):
        poller.due(time.time())
        poller.next_due()
    assert Counting.reads <= 50
    # writes go through to the store
    server.handlers["/rss"] = conditional(dated(60))
    st = await settled(poller, session, feeds[0])
    assert dict.__getitem__(store, "f0") == st


async def test_on_fetched_sees_each_body(
    server: FeedServer, session: aiohttp.ClientSession, metrics: Metrics
) -> None:
    server.handlers["/rss"] = conditional(dated(60))
    feed = source("hub", server.url("/rss"), interval=10)
    seen: list[tuple[str, Fetched]] = []
    poller = Poller([feed], {}, metrics, LIMITS, on_fetched=lambda s, f: seen.append((s.name, f)))
    await settled(poller, session, feed)
    await settled(poller, session, feed)  # 304: nothing new to look at
    assert [(name, f.status) for name, f in seen] == [("hub", 200)]


async def test_the_loop_reports_it_is_alive_even_when_nothing_is_due(
    server: FeedServer, session: aiohttp.ClientSession, metrics: Metrics
) -> None:
    feed = source("later", server.url("/rss"), interval=10)
    poller = Poller([feed], {"later": FeedState(next_poll=time.time() + 3600)}, metrics, LIMITS)
    turns: list[float] = []
    rounds: list[int] = []

    async def hand_on(results: list[PollResult]) -> None:
        rounds.append(len(results))

    stop = asyncio.Event()
    await run_polling(poller, session, hand_on, stop, once=True, idle=lambda: turns.append(1))
    assert turns == [1] and rounds == []
