"""``--input kafka:TOPIC``: the articles on a topic of the scale-out runtime.

Read without a consumer group (a backtest must not move the workers' committed offsets, nor
join their group), every partition from ``--since`` (``offsets_for_times``) or its beginning,
up to the end offsets taken at the start: records produced meanwhile are not waited for.

``offsets_for_times`` goes by the *record* timestamp (when the poller produced it), which is
never before the article's publication: starting there loses no article published since
``--since``; the window is then applied to publication times, like every other input.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from monitor.backtest.sources import InputError, Loaded, Window, in_order
from monitor.models import Article

_STALL = 30.0  # seconds without progress towards the end offsets before giving up


def load_topic(
    spec: str, topic: str, window: Window, bootstrap: str | None, prefix: str = ""
) -> Loaded:
    if not topic:
        raise InputError(f"--input {spec!r}: give a topic, e.g. kafka:news.articles")
    if not bootstrap:
        raise InputError(
            f"--input {spec!r}: MONITOR_KAFKA_BOOTSTRAP is not set (e.g. 127.0.0.1:9092)"
        )
    # aiokafka logs its connection retries as errors; the failure is reported once, below
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    full = prefix + topic
    try:
        articles, undecodable = asyncio.run(_read(spec, bootstrap, full, window))
    except KafkaError as exc:
        raise InputError(f"--input {spec!r}: Kafka at {bootstrap}: {exc}") from None
    notes = [f"read topic {full} at {bootstrap}"] if full != topic else []
    if undecodable:
        notes.append(f"{undecodable} record(s) on {full} were not articles; skipped")
    return Loaded(spec, in_order(articles, window), undecodable, notes)


async def _read(spec: str, bootstrap: str, topic: str, window: Window) -> tuple[list[Article], int]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=10_000
    )
    try:
        await asyncio.wait_for(consumer.start(), 15)
    except (TimeoutError, KafkaError) as exc:
        await consumer.stop()
        raise InputError(
            f"--input {spec!r}: no Kafka broker reachable at {bootstrap} ({exc or 'timed out'})"
        ) from None
    try:
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise InputError(f"--input {spec!r}: no topic {topic} at {bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        starts = await _starts(consumer, tps, ends, window)
        for tp in tps:
            consumer.seek(tp, starts[tp])
        pending = {tp for tp in tps if starts[tp] < ends[tp]}
        return await _drain(spec, consumer, pending, ends)
    finally:
        await consumer.stop()


async def _starts(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    ends: dict[TopicPartition, int],
    window: Window,
) -> dict[TopicPartition, int]:
    if window.since is None:
        return dict(await consumer.beginning_offsets(tps))
    ms = int(window.since.timestamp() * 1000)
    found = await consumer.offsets_for_times(dict.fromkeys(tps, ms))
    # None: no record at or after that time in this partition, so nothing to read there
    return {tp: ends[tp] if found.get(tp) is None else found[tp].offset for tp in tps}


async def _drain(
    spec: str,
    consumer: AIOKafkaConsumer,
    pending: set[TopicPartition],
    ends: dict[TopicPartition, int],
) -> tuple[list[Article], int]:
    articles: list[Article] = []
    undecodable = 0
    last_progress = time.monotonic()
    while pending:
        batch = await consumer.getmany(*pending, timeout_ms=1000)
        for tp, records in batch.items():
            for record in records:
                if record.offset >= ends[tp]:
                    break
                try:
                    articles.append(Article.model_validate_json(record.value or b""))
                except ValidationError:  # not JSON, not an article, or a tombstone
                    undecodable += 1
            last_progress = time.monotonic()
        for tp in list(pending):
            # position, not the last offset seen: compaction and transaction markers leave gaps
            if await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)
        if pending and time.monotonic() - last_progress > _STALL:
            names = ", ".join(str(p) for p in sorted(tp.partition for tp in pending))
            raise InputError(
                f"--input {spec!r}: partition(s) {names} gave no records for {_STALL:.0f}s "
                "before their end offsets"
            )
    return articles, undecodable
