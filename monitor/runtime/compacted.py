"""Compacted Kafka topics used as small shared tables (silences, dead alerts, the published
rule set): read one to its end, follow one forever, write a few records, create one.

The Kafka client is imported in each function, not at the top: the modules that use this one
(dead alerts, dead letters, silences) also serve `monitor run`'s state file, and `monitor run`
is installed without the Kafka extra."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from monitor.errors import ConfigError
from monitor.logs import log

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

    from monitor.runtime.topics import TopicSpec

_READ_TIMEOUT = 30.0  # seconds to read a compacted topic to its end
_FOLLOW_MAX_BACKOFF = 30.0


def _unreachable(bootstrap: str, exc: BaseException) -> ConfigError:
    return ConfigError(f"Kafka at {bootstrap} is not reachable: {exc}")


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    from aiokafka import TopicPartition

    parts = consumer.partitions_for_topic(topic)
    if not parts:
        # The consumer's metadata only covers topics it has been told of; `topics()` fetches
        # a separate copy. Refresh the client's own (aiokafka has no public call for this).
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic)
    return [TopicPartition(topic, p) for p in sorted(parts or ())]


async def read_to_end(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of a topic from its beginning to its current end, in order per partition
    (partitions one after the other). A topic that does not exist yet reads as empty."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import KafkaError

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=15000,
    )
    try:
        await consumer.start()
    except KafkaError as exc:
        await consumer.stop()
        raise _unreachable(bootstrap, exc) from None
    try:
        tps = await _partitions(consumer, topic)
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        got: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {tp: [] for tp in tps}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _READ_TIMEOUT

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in tps])

        while await behind():
            if loop.time() > deadline:
                raise ConfigError(
                    f"timed out after {_READ_TIMEOUT:.0f}s reading topic {topic} "
                    f"from Kafka at {bootstrap}"
                )
            batch = await consumer.getmany(*tps, timeout_ms=1000)
            for tp, records in batch.items():
                # written after we looked: not part of this snapshot
                got[tp].extend(r for r in records if r.offset < ends[tp])
        return [r for tp in tps for r in got[tp]]
    except KafkaError as exc:
        raise _unreachable(bootstrap, exc) from None
    finally:
        await consumer.stop()


async def read_latest(bootstrap: str, topic: str) -> dict[str, bytes]:
    """A compacted topic read from the beginning to its current end: key -> latest value, keys
    whose latest value is null left out. A topic that does not exist yet reads as empty."""
    latest: dict[str, bytes] = {}
    for r in await read_to_end(bootstrap, topic):
        if r.key is None:
            continue
        key = r.key.decode("utf-8", "replace")
        if r.value is None:
            latest.pop(key, None)
        else:
            latest[key] = r.value
    return latest


async def open_producer(bootstrap: str) -> AIOKafkaProducer:
    """A started producer whose every send is acknowledged by all in-sync replicas."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, request_timeout_ms=15000
    )
    try:
        await producer.start()
    except KafkaError as exc:
        await producer.stop()
        raise _unreachable(bootstrap, exc) from None
    return producer


async def send(
    producer: AIOKafkaProducer,
    topic: str,
    key: str | None,
    value: bytes | None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """One record, waited for; a null value is a tombstone (a null key: any partition)."""
    from aiokafka.errors import KafkaError

    encoded = key.encode() if key is not None else None
    try:
        await producer.send_and_wait(topic, value, key=encoded, headers=headers)
    except KafkaError as exc:
        raise ConfigError(f"could not write to Kafka topic {topic}: {exc}") from None


async def produce(bootstrap: str, records: list[tuple[str, str, bytes | None]]) -> None:
    """Send (topic, key, value) records in order, each acknowledged before the next."""
    producer = await open_producer(bootstrap)
    try:
        for topic, key, value in records:
            await send(producer, topic, key, value)
    finally:
        await producer.stop()


async def ensure_topic(bootstrap: str, spec: TopicSpec, replication: int) -> None:
    """Create one topic if it is missing (a producer would have the broker create it with its
    defaults: not compacted, so a removed key would come back). Only this topic: the others are
    the worker's business, and their partition counts none of ours."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    try:
        await admin.start()
    except KafkaError as exc:
        await admin.close()
        raise _unreachable(bootstrap, exc) from None
    try:
        if spec.name not in set(await admin.list_topics()):
            topic = NewTopic(
                spec.name, spec.partitions, replication, topic_configs=dict(spec.config)
            )
            response = await admin.create_topics([topic])
            for name, code, *rest in response.topic_errors:
                # already there: made meanwhile by a worker or another `silence add`
                if code not in (0, TopicAlreadyExistsError.errno):
                    error = for_code(code).__name__
                    detail = f" ({rest[0]})" if rest and rest[0] else ""
                    raise ConfigError(
                        f"Kafka at {bootstrap}: cannot create topic {name}: {error}{detail}"
                    )
    except KafkaError as exc:
        raise ConfigError(f"Kafka at {bootstrap}: cannot create topic {spec.name}: {exc}") from None
    finally:
        await admin.close()


async def follow(
    bootstrap: str, topic: str, apply: Callable[[bytes | None, bytes | None], None], what: str
) -> None:
    """Apply every record of a topic, forever: read it from the beginning, then each new record
    as it arrives. A broker that goes away is waited for (with backoff)
    and reading resumes where it stopped, so nothing is applied twice or missed."""
    from aiokafka import AIOKafkaConsumer

    positions: dict[TopicPartition, int] = {}
    delay = 1.0
    while True:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        try:
            await consumer.start()
            tps = await _partitions(consumer, topic)
            if not tps:
                raise LookupError(f"topic {topic} does not exist (yet)")
            consumer.assign(tps)
            for tp in tps:
                if tp in positions:
                    consumer.seek(tp, positions[tp])
                else:
                    await consumer.seek_to_beginning(tp)
            log.info("topic_following", what=what, topic=topic, partitions=len(tps))
            while True:
                batch = await consumer.getmany(*tps, timeout_ms=1000)
                for tp, records in batch.items():
                    for r in records:
                        apply(r.key, r.value)
                        positions[tp] = r.offset + 1
                delay = 1.0  # reading works again: the next failure starts from a short wait
        except Exception as exc:  # CancelledError is not an Exception: cancelling still works
            error = f"{type(exc).__name__}: {exc}"
        finally:
            try:
                await consumer.stop()
            except Exception as exc:  # a consumer that never started may fail to stop
                log.debug("follow_consumer_stop_failed", error=str(exc))
        wait = delay * random.uniform(0.8, 1.2)
        log.warning(
            "topic_follow_failed",
            what=what,
            topic=topic,
            bootstrap=bootstrap,
            error=error,
            retry_in=round(wait, 1),
        )
        await asyncio.sleep(wait)
        delay = min(delay * 2, _FOLLOW_MAX_BACKOFF)
