"""The feed intake wired into a running pipeline (``monitor run``'s runtime), over real sockets:
full text for a teaser feed makes a body-only phrase alert; article links into a private
network are refused unless the feed is allowed them; a feed that advertises a WebSub hub is
subscribed to, and what the hub pushes is alerted on within seconds, long before the feed's
next poll."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from monitor.feeds.sources import load_feeds
from monitor.feeds.websub import Subscription
from monitor.metrics import Metrics
from monitor.models import Article
from monitor.rules.ruleset import RuleSet
from monitor.runtime.embedded import EmbeddedRuntime
from monitor.runtime.kafka_poll import run_poller
from monitor.settings import Settings
from monitor.sinks.testing import ListSink
from monitor.state.sqlite import Store
from tests.conftest import free_port, until
from tests.integration.kafka_support import Deployment, read_all
from tests.integration.websub_hub import LocalHub

PARAGRAPHS = [
    "Moscow said on Monday it would not leave the West's refusal of its security demands "
    "unanswered.",
    "The foreign ministry said Russia would have to respond with retaliatory military and "
    "technical measures to what it called the unfriendly course of NATO.",
    "Diplomats in Brussels said the alliance would not accept any veto over its open-door "
    "policy and that talks would continue in Geneva next week.",
]
TEASER = "Moscow said on Monday it would not leave the West's refusal…"
PUSHED_TITLE = "Russian troops cross the border in a full-scale invasion of Ukraine"


@dataclass
class Site:
    base: str = ""
    hits: list[str] = field(default_factory=list)
    hub: str = ""
    more: list[str] = field(default_factory=list)  # items the teaser feed serves besides its own


def rss(items: str, head: str = "") -> str:
    return (
        '<?xml version="1.0"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">'
        f"<channel><title>T</title>{head}{items}</channel></rss>"
    )


def item(title: str, link: str, description: str) -> str:
    return (
        f"<item><title>{title}</title><link>{link}</link><guid>{link}</guid>"
        f"<description>{description}</description>"
        "<pubDate>Mon, 20 Dec 2021 10:00:00 GMT</pubDate></item>"
    )


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    state = Site()

    async def teasers(request: web.Request) -> web.StreamResponse:
        state.hits.append(request.path)
        own = item("Kremlin warns of a response", f"{state.base}/news/warns", TEASER)
        body = rss(own + "".join(state.more))
        return web.Response(text=body, content_type="application/rss+xml")

    async def pushing(request: web.Request) -> web.StreamResponse:
        state.hits.append(request.path)
        head = (
            f'<atom:link rel="hub" href="{state.hub}/"/>'
            f'<atom:link rel="self" href="{state.base}/pushing.rss"/>'
        )
        body = rss(item("Quiet day at the port", f"{state.base}/news/port", "Nothing."), head)
        return web.Response(text=body, content_type="application/rss+xml")

    async def page(request: web.Request) -> web.StreamResponse:
        state.hits.append(request.path)
        paras = "".join(f"<p>{p}</p>" for p in PARAGRAPHS)
        html = (
            "<html><head><title>Kremlin warns</title></head><body><nav>Home | World</nav>"
            f"<article><h1>Kremlin warns of a response</h1>{paras}</article></body></html>"
        )
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/teasers.rss", teasers)
    app.router.add_get("/pushing.rss", pushing)
    app.router.add_get("/news/{slug}", page)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    state.base = f"http://{host}:{port}"
    yield state
    await runner.cleanup()


def feed_file(tmp_path: Path, site: Site) -> Path:
    """Two teaser feeds as local files (a file URL names no private host, so it allows
    nothing by itself), both linking to a page on 127.0.0.1: one allowed private addresses,
    one not; the HTTP teaser feed (its URL a private address: allowed); the WebSub feed."""
    for name in ("guarded", "trusted"):
        link = f"{site.base}/news/{name}"
        (tmp_path / f"{name}.rss").write_text(rss(item(f"Page of {name}", link, TEASER)))
    path = tmp_path / "feeds.yaml"
    path.write_text(
        "feeds:\n"
        "  - {name: teasers, url: " + site.base + "/teasers.rss, interval: 1h,"
        " fetch_article: true}\n"
        "  - {name: guarded, url: guarded.rss, interval: 1h, fetch_article: true}\n"
        "  - {name: trusted, url: trusted.rss, interval: 1h, fetch_article: true,"
        " allow_private: true}\n"
        "  - {name: pushing, url: " + site.base + "/pushing.rss, interval: 1h}\n"
    )
    return path


async def test_full_text_guard_and_websub_in_a_running_pipeline(
    tmp_path: Path, site: Site, hub: LocalHub, ruleset: RuleSet
) -> None:
    site.hub = hub.base
    feeds = load_feeds(feed_file(tmp_path, site))
    port = free_port()
    settings = Settings(
        state=tmp_path / "state.db",
        rules_reload_interval=0,
        websub_callback_url=f"http://127.0.0.1:{port}",
        websub_port=port,
        websub_allow_http_hubs=True,  # the local hub speaks plain http
    )
    metrics = Metrics()
    sink = ListSink()
    runtime = EmbeddedRuntime(settings, ruleset, feeds, metrics, {"archive": sink})
    running = asyncio.create_task(runtime.run())
    try:
        # full text: the phrase is only on the page, and it alerts
        await until(lambda: any("Kremlin" in a.title for a in sink.alerts), 20, "the alert")
        [warns] = [a for a in sink.alerts if "Kremlin" in a.title]
        [hit] = [h for h in warns.hits if h.rule_id == "military-technical-response"]
        assert not hit.in_title  # found in the page's text, not in the teaser or the title
        assert "/news/warns" in site.hits

        def pages(feed: str, outcome: str) -> float:
            labels = {"feed": feed, "outcome": outcome}
            return metrics.registry.get_sample_value("monitor_fulltext_pages_total", labels) or 0

        # the guard: a page on a private address, for a feed not allowed one, is not fetched
        await until(lambda: pages("guarded", "refused") == 1, 10, "the guarded page refused")
        assert "/news/guarded" not in site.hits
        await until(lambda: pages("trusted", "extended") == 1, 10, "the trusted page")
        assert "/news/trusted" in site.hits

        # WebSub: the hub verified our subscription; what it pushes arrives within seconds
        await until(lambda: len(hub.subs) == 1, 20, "the hub's verification")
        [sub] = hub.subs.values()
        assert sub.topic == f"{site.base}/pushing.rss" and sub.secret
        polls_before = site.hits.count("/pushing.rss")
        pushed = rss(item(PUSHED_TITLE, f"{site.base}/news/invasion", PUSHED_TITLE))
        started = time.monotonic()
        assert await hub.publish(pushed.encode()) == [202]
        await until(lambda: any(a.title == PUSHED_TITLE for a in sink.alerts), 10, "the push")
        print(f"pushed article alerted {time.monotonic() - started:.2f}s after the push")
        assert site.hits.count("/pushing.rss") == polls_before  # no poll brought it
        # a forged push (wrong secret) is acknowledged and ignored
        forged = rss(item("Forged headline about an invasion", f"{site.base}/f", "x"))
        assert await hub.publish(forged.encode(), secret="not-the-secret") == [202]
        # a signed billion-laughs document: refused unread, acknowledged (pushing it again
        # would not help), and the runtime goes on
        lol = '<!ENTITY a "' + "ha" * 50_000 + '">'
        bomb = f'<?xml version="1.0"?><!DOCTYPE rss [{lol}]><rss><channel><title>{"&a;" * 20_000}'
        assert await hub.publish(bomb.encode()) == [202]
        await asyncio.sleep(0.5)
        assert not any("Forged" in a.title for a in sink.alerts)
        assert not running.done()
    finally:
        runtime._stop.set()
        await running
    for outcome in ("ok", "bad_signature", "unreadable"):
        labels = {"feed": "pushing", "outcome": outcome}
        assert metrics.registry.get_sample_value("monitor_websub_notifications_total", labels) == 1
    # the subscription (its secret too) is kept in the state file for the next start
    store = Store(tmp_path / "state.db")
    try:
        kept = store.models("websub", Subscription).get("pushing")
    finally:
        store.close()
    assert kept is not None and kept.state == "active" and kept.secret == sub.secret


async def test_article_pages_are_not_fetched_again_after_a_restart(
    tmp_path: Path, site: Site, ruleset: RuleSet
) -> None:
    """A teaser feed that changed after a restart: only its new article's page is fetched (the
    others went through before; a copy of them is dropped as a duplicate whatever its body)."""
    feeds_yaml = tmp_path / "feeds.yaml"
    feeds_yaml.write_text(
        "feeds:\n  - {name: teasers, url: " + site.base + "/teasers.rss, fetch_article: true}\n"
    )
    state = tmp_path / "state.db"

    async def run_once() -> tuple[Metrics, ListSink]:
        metrics, sink = Metrics(), ListSink()
        runtime = EmbeddedRuntime(
            Settings(state=state, rules_reload_interval=0),
            ruleset,
            load_feeds(feeds_yaml),
            metrics,
            {"archive": sink},
        )
        await runtime.run(once=True)
        return metrics, sink

    def pages(metrics: Metrics, outcome: str) -> float:
        labels = {"feed": "teasers", "outcome": outcome}
        return metrics.registry.get_sample_value("monitor_fulltext_pages_total", labels) or 0

    first, sink = await run_once()
    assert site.hits.count("/news/warns") == 1 and pages(first, "extended") == 1
    assert any("Kremlin" in a.title for a in sink.alerts)

    # the feed changes while the process is down; the restart polls it at once
    site.more.append(item("Second story on the port", f"{site.base}/news/second", TEASER))
    store = Store(state)
    store.table("feeds").clear()  # due now (the first run scheduled it an hour on)
    store.close()
    second, _ = await run_once()
    assert site.hits.count("/teasers.rss") == 2
    assert site.hits.count("/news/warns") == 1, "a page handed on before was fetched again"
    assert pages(second, "skipped") == 1
    assert site.hits.count("/news/second") == 1 and pages(second, "extended") == 1


async def test_a_push_reaches_kafka_within_seconds(
    tmp_path: Path, site: Site, hub: LocalHub, deployment: Deployment
) -> None:
    """`monitor poll` (the Kafka runtime's poller) takes pushes the same way: what the hub
    pushes is on news.articles within seconds, acknowledged by Kafka before the hub's 202."""
    site.hub = hub.base
    feeds = [f for f in load_feeds(feed_file(tmp_path, site)) if f.name == "pushing"]
    port = free_port()
    settings = Settings(
        state=tmp_path / "poller.db",
        kafka_bootstrap=deployment.bootstrap,
        kafka_topic_prefix=deployment.prefix,
        kafka_partitions=1,
        websub_callback_url=f"http://127.0.0.1:{port}",
        websub_port=port,
        websub_allow_http_hubs=True,
    )
    topic = deployment.topic("news.articles")

    async def titles() -> list[str]:
        records = await read_all(deployment.bootstrap, topic)
        return [Article.model_validate_json(v).title for _, v in records if v]

    polling = asyncio.create_task(run_poller(settings, feeds, once=False))
    try:
        await until(lambda: len(hub.subs) == 1, 30, "the hub's verification")
        # the subscription starts during the first poll, so it may be verified before the
        # poll's article is acknowledged: wait for that article first
        for _ in range(100):
            if await titles():
                break
            await asyncio.sleep(0.1)
        assert await titles() == ["Quiet day at the port"]  # the first poll's article
        pushed = rss(item(PUSHED_TITLE, f"{site.base}/news/invasion", PUSHED_TITLE))
        started = time.monotonic()
        assert await hub.publish(pushed.encode()) == [202]
        # acknowledged by Kafka before the hub got its answer
        assert PUSHED_TITLE in await titles()
        print(f"pushed article on Kafka {time.monotonic() - started:.2f}s after the push")
        assert site.hits.count("/pushing.rss") == 1  # no poll brought it
    finally:
        polling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await polling
