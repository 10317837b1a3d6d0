"""Rule edits under a running `monitor run` take effect without a restart; a broken edit
changes nothing and is reported."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest
from aiohttp import web

from monitor.feeds.sources import load_feeds
from monitor.metrics import Metrics
from monitor.rules.ruleset import load_ruleset
from monitor.runtime.embedded import EmbeddedRuntime
from monitor.settings import Settings
from monitor.sinks.testing import ListSink
from tests.conftest import RULES, until

ZEPPELIN_RULE = """\
rules:
  - id: zeppelin-sighting
    match:
      any: ["zeppelin"]
    weight: 70
tests:
  - text: "Zeppelin seen over the harbour"
    expect: [zeppelin-sighting]
"""


def rss(items: list[tuple[str, str]]) -> str:
    now = format_datetime(datetime.now(UTC))
    entries = "".join(
        f"<item><title>{title}</title><link>https://news.example/{slug}</link>"
        f"<guid>https://news.example/{slug}</guid><pubDate>{now}</pubDate>"
        f"<description>{title}. More to follow.</description></item>"
        for slug, title in items
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{entries}</channel></rss>'


@pytest.fixture
async def feed() -> AsyncIterator[tuple[str, list[tuple[str, str]]]]:
    items: list[tuple[str, str]] = []

    async def serve(request: web.Request) -> web.Response:
        return web.Response(text=rss(items), content_type="application/rss+xml")

    app = web.Application()
    app.router.add_get("/feed.xml", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/feed.xml", items
    await runner.cleanup()


async def test_a_rule_edit_applies_to_the_next_articles_without_a_restart(
    tmp_path: Path, feed: tuple[str, list[tuple[str, str]]], capfd: pytest.CaptureFixture[str]
) -> None:
    url, items = feed
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    (rules / "routes.yaml").write_text("routes:\n  - {name: archive, sink: list, min_level: low}\n")
    feeds_file = tmp_path / "feeds.yaml"
    feeds_file.write_text(f"feeds:\n  - name: harbour-news\n    url: {url}\n    interval: 10s\n")
    settings = Settings(state=tmp_path / "s.db", rules=rules, rules_reload_interval=0.2)
    metrics = Metrics()
    sink = ListSink()
    first = load_ruleset(rules)
    runtime = EmbeddedRuntime(settings, first, load_feeds(feeds_file), metrics, {"archive": sink})
    items.append(("z1", "Zeppelin sighting over the capital"))
    run = asyncio.create_task(runtime.run())

    def reloads(outcome: str) -> float:
        value = metrics.registry.get_sample_value(
            "monitor_rule_reloads_total", {"outcome": outcome}
        )
        return value or 0.0

    try:
        await until(lambda: runtime.pipeline.counts.articles == 1, 20, "the first article")
        assert sink.alerts == []  # no rule speaks of zeppelins yet

        (rules / "zeppelins.yaml").write_text(ZEPPELIN_RULE)
        await until(lambda: reloads("ok") == 1, 10, "the reload")
        second = runtime.pipeline.ruleset.version
        assert second != first.version

        items.append(("z2", "Second zeppelin reported drifting north over farmland"))
        await until(lambda: len(sink.alerts) == 1, 30, "an alert from the new rule")
        alert = sink.alerts[0]
        assert "zeppelin" in alert.title.lower()
        assert [h.rule_id for h in alert.hits] == ["zeppelin-sighting"]
        assert alert.rules_version == second  # the version that fired it travels with it

        # a broken edit: rejected, counted, and the rules in force stay
        (rules / "zeppelins.yaml").write_text(ZEPPELIN_RULE.replace("weight: 70", "weight: lots"))
        await until(lambda: reloads("error") == 1, 10, "the rejected reload")
        assert runtime.pipeline.ruleset.version == second
        captured = capfd.readouterr()
        logged = captured.out + captured.err
        assert "rules_reload_rejected" in logged
        assert f"{rules / 'zeppelins.yaml'}:5:" in logged  # the problem, as path:line:col
        items.append(("z3", "Third zeppelin lands in a stadium car park"))
        await until(lambda: len(sink.alerts) == 2, 30, "an alert under the rules still in force")
        assert sink.alerts[1].rules_version == second
    finally:
        runtime._stop.set()
        await asyncio.wait_for(run, 30)
