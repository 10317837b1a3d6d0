"""``monitor poll``: the pollers of the scale-out runtime publish articles to ``news.articles``.

Same fetching, conditional GET and feed state as the embedded runtime (the Poller and a SQLite
state file); a round's feed states are saved only after Kafka has acknowledged every article of
the round, so a crash re-fetches rather than loses.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

from monitor.feeds.intake import Intake
from monitor.feeds.poller import PollResult, in_order
from monitor.feeds.sources import FeedSource, poll_deadline
from monitor.health import Health, Heartbeat, Server
from monitor.logs import log
from monitor.metrics import Metrics
from monitor.runtime.signals import stop_on_signals
from monitor.runtime.topics import Topics, ensure_topics
from monitor.settings import Settings
from monitor.state.lock import running_on
from monitor.state.sqlite import Store

_BROKER_DEADLINE = 60.0  # seconds without a broker round trip before the poller is not ready


@dataclass
class PollReport:
    published: int = 0
    polls: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def producer(bootstrap: str) -> AIOKafkaProducer:
    # Idempotent (no duplicates from the producer's own retries), acks from all replicas,
    # compressed: feed text compresses well.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        compression_type="gzip",
        linger_ms=20,
    )


async def run_poller(
    settings: Settings, feeds: list[FeedSource], once: bool, metrics: Metrics | None = None
) -> PollReport:
    with running_on(settings.state, "monitor poll"):  # one poller per feed-state file
        return await _run_poller(settings, feeds, once, metrics)


async def _run_poller(
    settings: Settings, feeds: list[FeedSource], once: bool, metrics: Metrics | None
) -> PollReport:
    assert settings.kafka_bootstrap, "MONITOR_KAFKA_BOOTSTRAP is required"
    metrics = metrics or Metrics()
    report = PollReport()
    names = Topics(settings.kafka_topic_prefix)
    await ensure_topics(
        settings.kafka_bootstrap, settings.kafka_partitions, settings.kafka_replication, names
    )
    store = Store(settings.state)
    intake = Intake(settings, feeds, store, metrics)
    poller = intake.poller
    stop = asyncio.Event()
    kafka = producer(settings.kafka_bootstrap)
    await kafka.start()
    polled, broker = Heartbeat(), Heartbeat()
    broker.beat()  # the producer just connected
    health = Health()
    health.add("feeds", polled.check(poll_deadline(feeds), "a polling round"))
    health.add("kafka", broker.check(_BROKER_DEADLINE, "a broker round trip"))
    server = None
    if settings.metrics_port is not None:
        server = Server(metrics.registry, health)
        await server.start(settings.metrics_host, settings.metrics_port)

    async def watch_broker() -> None:
        while True:
            await asyncio.sleep(_BROKER_DEADLINE / 4)
            try:
                await kafka.client.force_metadata_update()
                broker.beat()
            except Exception as exc:  # readiness shows it; the poller itself carries on
                log.warning("broker_unreachable", error=str(exc))

    watcher = asyncio.create_task(watch_broker())

    async def hand_on(results: list[PollResult]) -> None:
        articles = in_order(results)
        pending = [
            await kafka.send(names.articles, a.model_dump_json().encode(), key=a.id.encode())
            for a in articles
        ]
        await asyncio.gather(*pending)  # every article acknowledged before the feed state moves
        poller.settle(results)
        store.commit()
        polled.beat()
        broker.beat()
        report.published += len(articles)
        for r in results:
            report.polls[r.feed] = r.outcome
            if r.error:
                report.errors[r.feed] = r.error
        log.info("round_published", articles=len(articles), feeds=len(results))

    try:
        with stop_on_signals(stop):
            await intake.run(hand_on, stop, once, idle=polled.beat)
    finally:
        watcher.cancel()
        await kafka.stop()
        store.close()
        if server is not None:
            await server.stop()
    return report
