"""The embedded pipeline against a real HTTP server serving the sample feeds: conditional GET,
gzip, a failing feed beside healthy ones, metrics served over HTTP."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from monitor.feeds.sources import load_feeds, sample_feeds_path
from monitor.metrics import Metrics
from monitor.models import Level
from monitor.rules.ruleset import RuleSet
from monitor.runtime.embedded import EmbeddedRuntime
from monitor.settings import Settings
from monitor.sinks.testing import ListSink

SAMPLES = sample_feeds_path().parent


@dataclass
class FeedServer:
    url: str
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)


@pytest.fixture
async def feed_server() -> AsyncIterator[FeedServer]:
    state = FeedServer("")

    async def serve(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        state.requests.append((name, dict(request.headers)))
        if name == "broken.xml":
            return web.Response(status=500, text="upstream exploded")
        path = SAMPLES / name
        if not path.is_file():
            raise web.HTTPNotFound()
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        headers = {
            "ETag": etag,
            "Last-Modified": "Tue, 14 Dec 2021 18:30:00 GMT",
            "Content-Type": "application/rss+xml",
        }
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            body = gzip.compress(body)
        return web.Response(body=body, headers=headers)

    app = web.Application()
    app.router.add_get("/feeds/{name}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}/feeds"
    yield state
    await runner.cleanup()


def feed_list(tmp_path: Path, base: str) -> Path:
    """The bundled feed list, pointed at the HTTP server, plus a broken and a dead feed."""
    lines = ["feeds:"]
    for feed in load_feeds(sample_feeds_path()):
        name = Path(feed.url).name
        lines += [
            f"  - name: {feed.name}",
            f"    url: {base}/{name}",
            f"    reliability: {feed.reliability}",
            "    interval: 60s",
        ]
    lines += [
        "  - name: broken",
        f"    url: {base}/broken.xml",
        "  - name: dead",
        "    url: http://127.0.0.1:9/feed.xml",
    ]
    path = tmp_path / "feeds.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_pipeline_over_http_with_conditional_get(
    tmp_path: Path, feed_server: FeedServer, ruleset: RuleSet
) -> None:
    feeds = load_feeds(feed_list(tmp_path, feed_server.url))
    settings = Settings(state=tmp_path / "state.db", metrics_port=0, fetch_timeout=10)
    metrics = Metrics()
    sink = ListSink()
    runtime = EmbeddedRuntime(settings, ruleset, feeds, metrics, {"archive": sink})

    # the metrics endpoint answers while the pipeline runs: scrape it from inside the run
    # (after the first polling round, which the broken feed has already failed)
    scraped: list[str] = []
    scrapes: list[asyncio.Task[None]] = []
    original = runtime.pipeline.process

    async def scrape() -> None:
        assert runtime.metrics_address
        host, port = runtime.metrics_address
        async with aiohttp.ClientSession() as s, s.get(f"http://{host}:{port}/metrics") as r:
            scraped.append(await r.text())

    def process_and_scrape(article):  # type: ignore[no-untyped-def]
        if not scrapes:
            scrapes.append(asyncio.ensure_future(scrape()))
        return original(article)

    runtime.pipeline.process = process_and_scrape  # type: ignore[method-assign]
    report = await runtime.run(once=True)
    await asyncio.gather(*scrapes)

    assert report.polls["broken"] == "error" and "HTTP 500" in report.errors["broken"]
    assert report.polls["dead"] == "error"
    assert sum(1 for o in report.polls.values() if o == "ok") == 6
    seed = [a for a in sink.alerts if "militarily and technically" in a.title]
    assert [a.kind for a in seed] == ["opened", "escalated"]
    assert seed[-1].level is Level.critical
    assert all(a.route == "archive" for a in sink.alerts)
    assert 'monitor_feed_polls_total{feed="broken",outcome="error"} 1.0' in scraped[0]
    assert (
        metrics.registry.get_sample_value(
            "monitor_feed_polls_total", {"feed": "global-wire", "outcome": "ok"}
        )
        == 1
    )
    assert metrics.registry.get_sample_value("monitor_duplicates_total", {"kind": "near"}) >= 4  # type: ignore[operator]
    # gzip was offered and used
    first_round = [h for n, h in feed_server.requests if n == "global-wire.xml"]
    assert "gzip" in first_round[0].get("Accept-Encoding", "")

    # second run on the same state: validators are sent back, the server answers 304
    feed_server.requests.clear()
    metrics2 = Metrics()
    sink2 = ListSink()
    again = EmbeddedRuntime(
        Settings(state=tmp_path / "state.db"), ruleset, feeds, metrics2, {"archive": sink2}
    )
    # force every feed due now (a real run would wait for each feed's interval)
    for name in list(again.poller.state):
        again.poller.state[name] = again.poller.state[name].model_copy(update={"next_poll": 0})
    report2 = await again.run(once=True)
    conditional = [h for n, h in feed_server.requests if n == "global-wire.xml"]
    assert conditional and conditional[0].get("If-None-Match", "").startswith('"')
    assert conditional[0].get("If-Modified-Since") == "Tue, 14 Dec 2021 18:30:00 GMT"
    assert sum(1 for o in report2.polls.values() if o == "not_modified") == 6
    assert (
        metrics2.registry.get_sample_value(
            "monitor_feed_polls_total", {"feed": "global-wire", "outcome": "not_modified"}
        )
        == 1
    )
    assert sink2.alerts == []


async def test_metrics_are_served_on_loopback_in_prometheus_format(
    tmp_path: Path, ruleset: RuleSet
) -> None:
    feeds = load_feeds(sample_feeds_path())
    runtime = EmbeddedRuntime(
        Settings(state=tmp_path / "s.db", metrics_port=0),
        ruleset,
        feeds,
        None,
        {"archive": ListSink()},
    )
    seen: dict[str, str] = {}

    async def scrape() -> None:
        assert runtime.metrics_address
        host, port = runtime.metrics_address
        assert host == "127.0.0.1"
        async with aiohttp.ClientSession() as s, s.get(f"http://{host}:{port}/metrics") as r:
            seen["text"] = await r.text()
            seen["type"] = r.headers["Content-Type"]

    original = runtime.deliverer.deliver

    async def deliver_then_scrape(alert):  # type: ignore[no-untyped-def]
        outcome = await original(alert)
        if "text" not in seen:
            await scrape()
        return outcome

    runtime.deliverer.deliver = deliver_then_scrape  # type: ignore[method-assign]
    await runtime.run(once=True)
    text = seen["text"]
    assert seen["type"].startswith("text/plain")
    for name in (
        "monitor_feed_polls_total",
        "monitor_articles_ingested_total",
        "monitor_rule_matches_total",
        "monitor_alerts_total",
        "monitor_active_stories",
        "monitor_severity_score_bucket",
        "monitor_rules_loaded",
    ):
        assert name in text, name
