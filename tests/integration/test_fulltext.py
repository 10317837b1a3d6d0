"""Full text in the poll flow, over real sockets: a teaser-only feed on a local server is polled
through the address guard (allowed 127.0.0.1, as a test feed must be), each article's page is
fetched and extracted, and a rule that only the full text can satisfy now fires — while a page
that fails keeps its teaser and its article."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.feeds.fetch import FetchLimits
from monitor.feeds.fulltext import FullText, FullTextLimits
from monitor.feeds.netguard import GuardedSessions
from monitor.feeds.poller import Poller, in_order
from monitor.feeds.sources import FeedSource
from monitor.metrics import Metrics
from monitor.rules.ruleset import RuleSet

RULE = "military-technical-response"
PAGES = {
    "/news/kremlin-warns": (
        "Kremlin warns of a response",
        [
            "Moscow said on Monday it would not leave the West's refusal of its security "
            "demands unanswered.",
            "The foreign ministry said Russia would have to respond with retaliatory military "
            "and technical measures to what it called the unfriendly course of NATO.",
            "Diplomats in Brussels said the alliance would not accept any veto over its "
            "open-door policy and that talks would continue in Geneva next week.",
        ],
    ),
    "/news/markets": (
        "Markets steady",
        [
            "European shares were little changed on Tuesday as investors waited for central "
            "bank decisions later in the week.",
            "Energy stocks rose with the price of oil while technology shares slipped.",
        ],
    ),
}


@dataclass
class Site:
    base: str = ""
    hits: list[str] = field(default_factory=list)


def teaser(paragraphs: list[str]) -> str:
    return paragraphs[0][:70] + "…"


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    state = Site()

    async def feed(request: web.Request) -> web.StreamResponse:
        state.hits.append(request.path)
        items = "".join(
            f"<item><title>{title}</title><link>{state.base}{path}</link>"
            f"<guid>{path}</guid><description>{teaser(paras)}</description></item>"
            for path, (title, paras) in PAGES.items()
        )
        items += (
            "<item><title>Broken page</title>"
            f"<link>{state.base}/news/broken</link><description>A teaser only.</description>"
            "</item>"
        )
        body = f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>{items}</channel></rss>'
        return web.Response(text=body, content_type="application/rss+xml")

    async def article(request: web.Request) -> web.StreamResponse:
        state.hits.append(request.path)
        if request.path not in PAGES:
            return web.Response(status=500, text="upstream exploded")
        title, paragraphs = PAGES[request.path]
        body = "".join(f"<p>{p}</p>" for p in paragraphs)
        page = (
            f"<html><head><title>{title}</title></head><body><nav>Home | World | Sport</nav>"
            f"<article><h1>{title}</h1>{body}</article><footer>© Example</footer></body></html>"
        )
        return web.Response(text=page, content_type="text/html")

    app = web.Application()
    app.router.add_get("/rss", feed)
    app.router.add_get("/news/{slug}", article)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site_ = web.TCPSite(runner, "127.0.0.1", 0)
    await site_.start()
    host, port = runner.addresses[0][:2]
    state.base = f"http://{host}:{port}"
    yield state
    await runner.cleanup()


LIMITS = FetchLimits(total_timeout=5.0, connect_timeout=2.0, read_timeout=2.0)


async def test_a_teaser_feed_gets_full_text_and_a_rule_fires_on_it(
    site: Site, ruleset: RuleSet
) -> None:
    source = FeedSource(name="teasers", url=f"{site.base}/rss", interval=60)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    full_text = FullText(FullTextLimits(host_delay=0.05), metrics)
    async with GuardedSessions(LIMITS) as sessions:
        # first as a feed without fetch_article: the teasers only
        plain = Poller([source], {}, metrics, LIMITS, full_text=full_text)
        teasers = list((await plain.poll(sessions.get, source)).articles)
        assert len(site.hits) == 1  # the feed only: no page fetched for it
        site.hits.clear()
        # then with fetch_article (a private address written in its URL allows the pages)
        source = source.model_copy(update={"fetch_article": True})
        poller = Poller([source], {}, metrics, LIMITS, full_text=full_text)
        result = await poller.poll(sessions.get, source)
        assert result.outcome == "ok", result.error
        enriched = list(result.articles)
    assert [a.id for a in enriched] == [a.id for a in teasers]  # none lost, none reordered
    by_title = {a.title: a for a in enriched}
    warns = by_title["Kremlin warns of a response"]
    assert warns.body == "\n".join(PAGES["/news/kremlin-warns"][1])
    assert by_title["Markets steady"].body == "\n".join(PAGES["/news/markets"][1])
    assert by_title["Broken page"].body == "A teaser only."  # the page failed: teaser kept

    before = {a.title: a for a in teasers}["Kremlin warns of a response"]
    assert RULE not in {m.rule_id for m in ruleset.tagger.tag(before.title, before.body)}
    matches = ruleset.tagger.tag(warns.title, warns.body, source=warns.source)
    assert any(m.rule_id == RULE and m.field == "body" for m in matches)

    assert len(in_order([result.model_copy(update={"articles": enriched})])) == 3
    assert sorted(site.hits) == sorted(["/rss", "/news/broken", *PAGES])

    def pages(outcome: str) -> float:
        labels = {"feed": "teasers", "outcome": outcome}
        return registry.get_sample_value("monitor_fulltext_pages_total", labels) or 0.0

    assert (pages("extended"), pages("http_error")) == (2, 1)


async def test_without_allow_private_the_local_feed_itself_is_refused(site: Site) -> None:
    """What a test feed on 127.0.0.1 gets without ``allow_private``: the guard refuses it."""
    source = FeedSource(name="teasers", url=f"{site.base}/rss", interval=60)
    poller = Poller([source], {}, Metrics(CollectorRegistry()), LIMITS)
    async with GuardedSessions(LIMITS) as sessions:
        result = await poller.poll(sessions.get(allow_private=False), source)
    assert result.outcome == "error"
    assert "loopback" in result.error
    assert site.hits == []
