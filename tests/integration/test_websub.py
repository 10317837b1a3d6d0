"""WebSub against a real local hub: a small aiohttp app that takes subscription requests,
verifies our intent with a GET to our callback, and pushes signed content to it — our
callback served over real sockets on 127.0.0.1 as the runtime will serve it."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.errors import FeedError
from monitor.feeds.fetch import FetchLimits
from monitor.feeds.netguard import GuardedSessions
from monitor.feeds.websub import (
    Discovery,
    Subscriber,
    Subscription,
    discover,
    parse_link_headers,
    sign,
    signature_ok,
)
from monitor.metrics import Metrics
from tests.conftest import until
from tests.integration.websub_hub import LocalHub, serve

FEED = "wire"
TOPIC = "https://news.example/rss"
DOC = b'<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title><item><title>Troops cross border</title></item></channel></rss>'


# --- our side -----------------------------------------------------------------------------


@dataclass
class Side:
    """Our subscriber, its callback server and what reached ``on_content``."""

    subscriber: Subscriber
    runner: web.AppRunner
    base: str
    received: list[tuple[str, bytes]]
    registry: CollectorRegistry
    stop: asyncio.Event
    task: asyncio.Task[None]

    def count(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(f"monitor_websub_{name}_total", labels) or 0.0

    async def close(self) -> None:
        self.stop.set()
        await self.task
        await self.runner.cleanup()


Factory = Callable[..., Awaitable[Side]]


@pytest.fixture
async def ours() -> AsyncIterator[Factory]:
    sessions = GuardedSessions(FetchLimits(total_timeout=5, connect_timeout=2, read_timeout=2))
    sides: list[Side] = []

    async def make(
        store: dict[str, Subscription] | None = None,
        port: int = 0,
        on_content: Callable[[str, bytes], Awaitable[None]] | None = None,
        **options: Any,
    ) -> Side:
        received: list[tuple[str, bytes]] = []

        async def record(feed: str, body: bytes) -> None:
            received.append((feed, body))

        registry = CollectorRegistry()
        options.setdefault("allow_http_hubs", True)  # the local hub speaks plain http
        subscriber = Subscriber(
            "http://127.0.0.1",  # until the port is known
            store if store is not None else {},
            on_content or record,
            sessions.get,
            metrics=Metrics(registry),
            **options,
        )
        runner, base = await serve(subscriber.app(), port)
        subscriber.callback_base = base
        stop = asyncio.Event()
        side = Side(
            subscriber,
            runner,
            base,
            received,
            registry,
            stop,
            asyncio.create_task(subscriber.run(stop)),
        )
        sides.append(side)
        return side

    try:
        yield make
    finally:
        for side in sides:
            if not side.stop.is_set():
                await side.close()
        await sessions.close()


def offered(hub: LocalHub) -> Discovery:
    feed = (
        '<?xml version="1.0"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">'
        f'<channel><title>Wire</title><atom:link rel="hub" href="{hub.base}/"/>'
        f'<atom:link rel="self" href="{TOPIC}" type="application/rss+xml"/>'
        "<item><title>x</title></item></channel></rss>"
    ).encode()
    found = discover(feed, "https://news.example/feed-moved-here")
    assert found is not None
    return found


async def subscribed(hub: LocalHub, side: Side, feed: str = FEED) -> Subscription:
    side.subscriber.offer(feed, offered(hub), allow_private=True)
    await until(lambda: side.subscriber.active(feed) and len(hub.subs) == 1)
    return side.subscriber.store[feed]


# --- discovery ----------------------------------------------------------------------------


def test_discovery_in_an_rss_feed_ignores_links_inside_items() -> None:
    rss = b"""<?xml version="1.0"?>
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>
  <title>Wire</title><link>https://news.example/</link>
  <atom:link href="https://news.example/rss" rel="self" type="application/rss+xml"/>
  <atom:link rel='hub' href='https://pubsubhubbub.appspot.com/'/>
  <atom:link rel="hub" href="/hub?x=1&amp;y=2"/>
  <item><title>a</title><atom:link rel="hub" href="https://evil.example/hub"/></item>
</channel></rss>"""
    found = discover(rss, "https://news.example/feed")
    assert found == Discovery(
        hubs=("https://pubsubhubbub.appspot.com/", "https://news.example/hub?x=1&y=2"),
        topic="https://news.example/rss",
    )


def test_discovery_in_an_atom_feed_ignores_entries_own_self_links() -> None:
    atom = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <entry><link rel="self" href="https://blog.example/posts/1"/></entry>
  <link rel="hub" href="https://hub.example/"/>
  <link rel="self" href="https://blog.example/atom"/>
</feed>"""
    found = discover(atom, "https://blog.example/feed")
    assert found == Discovery(("https://hub.example/",), "https://blog.example/atom")


def test_link_headers_come_before_the_document() -> None:
    headers = ['<https://hub.example/>; rel="hub", </topic.xml>; rel="self"']
    found = discover(
        DOC.replace(b"<channel>", b'<channel><link rel="hub" href="https://other/"/>'),
        "https://news.example/rss",
        headers,
    )
    assert found == Discovery(("https://hub.example/",), "https://news.example/topic.xml")
    assert parse_link_headers(['<a>; rel="hub self"; title="x, y"', "<b>;rel=next"]) == [
        ("a", frozenset({"hub", "self"})),
        ("b", frozenset({"next"})),
    ]


def test_no_hub_is_no_discovery_and_the_topic_defaults_to_the_url_fetched() -> None:
    assert discover(DOC, "https://news.example/rss") is None
    assert discover(b"", "https://news.example/rss") is None
    page = b'<html><head><link rel="hub" href="https://hub.example/"></head><body></body></html>'
    assert discover(page, "https://news.example/rss") == Discovery(
        ("https://hub.example/",), "https://news.example/rss"
    )


@pytest.mark.parametrize("method", ["sha1", "sha256", "sha384", "sha512"])
def test_signatures(method: str) -> None:
    good = sign(DOC, "s3cret", method)
    assert signature_ok(good, DOC, "s3cret")
    assert signature_ok(good.upper().replace(method.upper(), method), DOC, "s3cret")
    assert not signature_ok(good, DOC + b" ", "s3cret")
    assert not signature_ok(good, DOC, "other")
    assert not signature_ok(good.replace(method, "md5"), DOC, "s3cret")
    for bad in (None, "", method, f"{method}=", "garbage", f"{method}=zz\u00e9"):
        assert not signature_ok(bad, DOC, "s3cret")


# --- subscribing and receiving ------------------------------------------------------------


async def test_a_subscription_is_verified_and_signed_content_reaches_on_content(
    hub: LocalHub, ours: Factory
) -> None:
    side = await ours(lease_seconds=600)
    sub = await subscribed(hub, side)
    [request] = hub.requests
    assert request["hub.mode"] == "subscribe"
    assert request["hub.topic"] == TOPIC  # the rel="self" URL, not the one fetched
    assert request["hub.lease_seconds"] == "600"
    assert request["hub.secret"] == sub.secret and len(sub.secret.encode()) < 200
    callback = request["hub.callback"]
    assert callback == f"{side.base}/websub/{FEED}/{sub.token}"
    assert len(sub.token) >= 24  # unguessable
    assert sub.state == "active" and sub.lease_seconds == 600
    assert sub.expires_at == pytest.approx(time.time() + 600, abs=5)
    assert hub.verifications[0][1:3] == (200, True)
    assert side.count("verifications", mode="subscribe", outcome="accepted") == 1

    for method in ("sha1", "sha256", "sha384", "sha512"):
        assert await hub.publish(DOC + method.encode(), method) == [202]
    assert side.received == [
        (FEED, DOC + m.encode()) for m in ("sha1", "sha256", "sha384", "sha512")
    ]
    assert side.count("notifications", feed=FEED, outcome="ok") == 4


async def test_a_bad_or_missing_signature_is_acknowledged_and_ignored(
    hub: LocalHub, ours: Factory
) -> None:
    side = await ours()
    await subscribed(hub, side)
    assert await hub.publish(DOC, secret="not-the-secret") == [202]  # 2xx: tells a forger nothing
    assert await hub.publish(DOC, signed=False) == [202]
    assert side.received == []
    assert side.count("notifications", feed=FEED, outcome="bad_signature") == 1
    assert side.count("notifications", feed=FEED, outcome="unsigned") == 1
    assert await hub.publish(DOC) == [202]
    assert side.received == [(FEED, DOC)]


async def test_a_verification_for_a_topic_or_callback_not_ours_gets_404(
    hub: LocalHub, ours: Factory
) -> None:
    side = await ours()
    sub = await subscribed(hub, side)
    callback = f"{side.base}/websub/{FEED}/{sub.token}"
    challenge = "abc-123_XYZ=."
    good = {"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.challenge": challenge}
    good["hub.lease_seconds"] = "100"
    assert hub.session is not None
    async with hub.session.get(callback, params=good) as resp:  # a hub's re-confirmation
        assert (resp.status, await resp.text()) == (200, challenge)
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.content_type == "text/plain"
    for url, params in [
        (callback, {**good, "hub.topic": "https://news.example/other"}),  # unknown topic
        (callback, {**good, "hub.mode": "unsubscribe"}),  # an unsubscription we never asked
        (callback, {**good, "hub.challenge": "<script>alert(1)</script>"}),
        (callback, {**good, "hub.mode": "nonsense"}),
        (f"{side.base}/websub/{FEED}/{'x' * len(sub.token)}", good),  # wrong token
        (f"{side.base}/websub/other-feed/{sub.token}", good),  # wrong feed
    ]:
        async with hub.session.get(url, params=params) as resp:
            assert resp.status == 404, params
    assert side.subscriber.active(FEED)
    assert side.count("verifications", mode="subscribe", outcome="refused") >= 3


async def test_the_lease_is_renewed_before_it_expires(hub: LocalHub, ours: Factory) -> None:
    hub.lease = 2  # the hub grants 2 s, whatever we ask
    side = await ours(renew_margin=0.8)
    first = await subscribed(hub, side)
    verified_at = hub.verifications[0][3]
    await until(lambda: len([v for v in hub.verifications if v[2]]) >= 3, within=8)
    renewals = hub.request_times
    assert len(renewals) >= 3
    # each renewal was asked for before the lease it renews ran out (2 s after verification)
    assert renewals[1] - verified_at < 2.0
    assert renewals[1] - verified_at >= 0.8  # and not long before: 0.8 s ahead of expiry
    assert all(form["hub.mode"] == "subscribe" for form in hub.requests)
    # same callback and secret: a renewal overrides the subscription, it does not add one
    assert {form["hub.callback"] for form in hub.requests} == {
        f"{side.base}/websub/{FEED}/{first.token}"
    }
    assert {form["hub.secret"] for form in hub.requests} == {first.secret}
    assert side.subscriber.active(FEED)
    assert await hub.publish(DOC) == [202] and side.received == [(FEED, DOC)]


async def test_subscriptions_and_secrets_survive_a_restart(hub: LocalHub, ours: Factory) -> None:
    store: dict[str, Subscription] = {}
    side = await ours(store)
    sub = await subscribed(hub, side)
    port = urlsplit(side.base).port
    await side.close()
    assert store[FEED] == sub

    again = await ours(store, port=port)
    again.subscriber.offer(FEED, offered(hub), allow_private=True)  # the first poll after
    assert await hub.publish(DOC) == [202]
    assert again.received == [(FEED, DOC)]
    assert len(hub.requests) == 1  # nothing changed: no new subscription


async def test_a_failing_hub_is_retried(hub: LocalHub, ours: Factory) -> None:
    hub.fail = 2
    side = await ours(retry_max=0.1)
    side.subscriber.offer(FEED, offered(hub), allow_private=True)
    await until(lambda: side.subscriber.active(FEED), within=8)
    assert [r["hub.mode"] for r in hub.requests] == ["subscribe"] * 3
    assert side.subscriber.store[FEED].last_error == ""
    assert side.count("requests", mode="subscribe", outcome="error") == 2


async def test_a_request_the_hub_never_verifies_is_sent_again_less_and_less_often(
    hub: LocalHub, ours: Factory
) -> None:
    hub.silent = True  # as when our callback URL does not reach us from outside
    side = await ours(verify_timeout=0.15, retry_max=10)
    side.subscriber.offer(FEED, offered(hub), allow_private=True)
    await until(lambda: len(hub.requests) >= 4, within=8)
    times = hub.request_times
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.14 and gaps[1] >= 0.28 and gaps[2] >= 0.56  # doubling waits
    assert not side.subscriber.active(FEED)
    assert side.subscriber.store[FEED].state == "subscribing"


async def test_a_denied_subscription_takes_no_content(hub: LocalHub, ours: Factory) -> None:
    side = await ours()
    sub = await subscribed(hub, side)
    hub_sub = next(iter(hub.subs.values()))
    assert await hub.deny("topic not allowed") == [200]
    state = side.subscriber.store[FEED]
    assert state.state == "denied" and "topic not allowed" in state.last_error
    assert not side.subscriber.active(FEED)
    hub.subs[hub_sub.callback] = hub_sub  # a hub that pushes anyway
    assert await hub.publish(DOC) == [410]
    assert side.received == []
    assert sub.token == state.token


async def test_a_feed_that_stops_advertising_its_hub_is_unsubscribed(
    hub: LocalHub, ours: Factory
) -> None:
    side = await ours()
    sub = await subscribed(hub, side)
    callback = f"{side.base}/websub/{FEED}/{sub.token}"
    side.subscriber.offer(FEED, None)
    await until(lambda: not hub.subs)
    assert hub.requests[-1]["hub.mode"] == "unsubscribe"
    assert hub.requests[-1]["hub.callback"] == callback
    assert FEED not in side.subscriber.store
    assert hub.session is not None
    async with hub.session.post(
        callback, data=DOC, headers={"X-Hub-Signature": sign(DOC, sub.secret)}
    ) as resp:
        assert resp.status == 410  # gone: the hub may drop it
    assert side.received == []


async def test_retain_unsubscribes_feeds_no_longer_listed(hub: LocalHub, ours: Factory) -> None:
    side = await ours()
    await subscribed(hub, side)
    side.subscriber.retain([FEED])
    assert side.subscriber.active(FEED)
    side.subscriber.retain([])
    await until(lambda: not hub.subs)
    assert not side.subscriber.store


async def test_a_new_hub_replaces_the_old_subscription(hub: LocalHub, ours: Factory) -> None:
    side = await ours()
    old = await subscribed(hub, side)
    moved = Discovery((hub.base + "/",), "https://news.example/rss2")
    side.subscriber.offer(FEED, moved, allow_private=True)
    await until(
        lambda: (
            side.subscriber.active(FEED)
            and side.subscriber.store[FEED].topic == moved.topic
            and len(hub.subs) == 1
        )
    )
    new = side.subscriber.store[FEED]
    assert (new.token, new.secret) != (old.token, old.secret)
    modes = [(r["hub.mode"], r["hub.topic"]) for r in hub.requests]
    assert ("unsubscribe", TOPIC) in modes and ("subscribe", moved.topic) in modes


async def test_oversized_content_is_refused_and_a_processing_failure_is_a_500(
    hub: LocalHub, ours: Factory
) -> None:
    calls = 0

    async def explode(feed: str, body: bytes) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("parser bug")

    side = await ours(max_bytes=1000, on_content=explode)
    await subscribed(hub, side)
    assert await hub.publish(b"x" * 2000) == [413]
    assert await hub.publish(DOC) == [500]  # the hub retries later; polling covers meanwhile
    assert calls == 1
    assert side.count("notifications", feed=FEED, outcome="too_large") == 1
    assert side.count("notifications", feed=FEED, outcome="error") == 1


async def test_unreadable_content_is_acknowledged_so_the_hub_does_not_push_it_again(
    hub: LocalHub, ours: Factory
) -> None:
    async def unreadable(feed: str, body: bytes) -> None:
        raise FeedError(feed, "not a feed: no entries and no channel")

    side = await ours(on_content=unreadable)
    await subscribed(hub, side)
    assert await hub.publish(b"<html>garbage</html>") == [202]
    assert side.count("notifications", feed=FEED, outcome="unreadable") == 1
    assert side.count("notifications", feed=FEED, outcome="error") == 0


def test_the_callback_base_must_be_an_http_url() -> None:
    async def nothing(feed: str, body: bytes) -> None:
        pass

    def no_session(private: bool) -> aiohttp.ClientSession:
        raise AssertionError

    with pytest.raises(ValueError, match="callback base"):
        Subscriber("ftp://monitor.example", {}, nothing, no_session)


def test_http_hubs_are_upgraded_to_https_unless_allowed() -> None:
    async def nothing(feed: str, body: bytes) -> None:
        pass

    def no_session(private: bool) -> aiohttp.ClientSession:
        raise AssertionError

    store: dict[str, Subscription] = {}
    subscriber = Subscriber("https://monitor.example/", store, nothing, no_session)
    subscriber.offer(FEED, Discovery(("http://hub.example/",), TOPIC))
    assert store[FEED].hub == "https://hub.example/"
    assert subscriber.callback_url(store[FEED]).startswith("https://monitor.example/websub/wire/")
    subscriber.offer("other", Discovery(("gopher://hub.example/",), TOPIC))
    assert "other" not in store
