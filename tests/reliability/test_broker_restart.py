"""The Kafka broker stopped and started again while feeds are publishing: the poller and the
worker ride the outage out in place (neither exits) and afterwards every article the feeds
served is published, every published article decided, and no alert sent twice."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.models import Article
from tests.conftest import REPO
from tests.integration.kafka_support import (
    Decided,
    Deployment,
    TopicTail,
    corpus_articles,
    undecided,
)
from tests.reliability.broker import PrivateBroker
from tests.reliability.feeds import FeedServer, items_from
from tests.reliability.support import (
    Scenario,
    check_kafka_invariants,
    seeded,
    settle_deliveries,
    wait_until,
)

ARTICLES = 800
RATE = 25  # items appearing in the feeds per second: about half a minute of news


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    b = PrivateBroker(tmp_path)
    b.start(first=True)
    yield b
    b.remove()


def published_articles(d: Deployment) -> list[Article]:
    tail = TopicTail(d.bootstrap, d.topic("news.articles"))
    try:
        return [Article.model_validate_json(v) for _, v in tail.read()]
    finally:
        tail.close()


def test_broker_restart_mid_stream(
    broker: PrivateBroker, tmp_path: Path, scenario: Scenario
) -> None:
    rng = seeded(scenario)
    d = Deployment(tmp_path, broker.bootstrap)
    server = FeedServer(items_from(corpus_articles(ARTICLES), 4, rate=RATE, start=2.0)).start()
    feeds = server.feed_list(tmp_path / "feeds.yaml", interval="10s")
    state = str(tmp_path / "poller.db")
    poller = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "poll", "--feeds", str(feeds), "--state", state],
        cwd=REPO,
        env=d.env,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "poller.log").open("w"),
        text=True,
    )
    worker = d.start_worker("w1")
    decided = Decided(d)
    try:
        into = rng.uniform(6.0, 14.0)
        wait_until(lambda: len(decided()) > 50, 90, "the first decisions", d)
        time.sleep(into)
        before = len(decided())
        shown = len(server.shown())
        decided.close()
        stopped = time.monotonic()
        broker.stop()
        down = rng.uniform(2.0, 10.0)
        time.sleep(down)
        broker.start()
        outage = time.monotonic() - stopped
        assert worker.poll() is None, f"the worker exited {worker.returncode}\n{d.log_tail()}"
        assert poller.poll() is None, "the poller exited during the outage"
        scenario.note(
            f"broker down {outage:.0f}s ({down:.1f}s stopped + its restart), "
            f"{before} articles decided and {shown}/{ARTICLES} shown when it stopped"
        )
        decided = Decided(d)
        wait_until(lambda: len(server.shown()) == ARTICLES, 120, "the feeds' last items")
        time.sleep(12)  # a polling round after the last item appeared (interval 10 s)

        def caught_up() -> bool:
            urls = {a.url for a in published_articles(d)}
            return {i.link for i in server.shown()} <= urls

        wait_until(caught_up, 120, "every served item published", d, every=3.0)
        published = published_articles(d)
        wait_until(lambda: not undecided(published, decided()), 180, "every article decided", d)
        settle_deliveries(d, "archive")
        assert worker.poll() is None and poller.poll() is None, "a process exited"
    finally:
        decided.close()
        if poller.poll() is None:
            poller.send_signal(signal.SIGTERM)
        out, _ = poller.communicate(timeout=60)
        d.stop()
        server.stop()
    records = len(published_articles(d))
    check_kafka_invariants(d, published, decided.ids, scenario)
    scenario.note(
        f"{records} article records on news.articles for {len({a.id for a in published})} "
        f"articles (each poll re-publishes what its feed shows; exact dedupe drops the copies)"
    )
    assert poller.returncode == 0, out
