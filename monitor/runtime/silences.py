"""Silences, in both runtimes: made by ``monitor silence add``, read by the dispatcher.

* Embedded: the ``silences`` table of the state file (silence id -> Silence). ``monitor run``
  reads it afresh for every alert, so a silence added from another process applies at once.
* Kafka: the compacted topic ``news.silences`` (key: silence id; value: Silence JSON; a null
  value removes it). Every worker follows the whole topic into memory (:func:`follow_silences`).

The module also holds the small Kafka helpers the ``silence`` and ``alerts`` commands share:
read a compacted topic to its end (the latest value per key) and produce a few records.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import Iterable, MutableMapping
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from pydantic import ValidationError

from monitor.errors import ConfigError
from monitor.logs import log
from monitor.models import Silence
from monitor.runtime.topics import Topics
from monitor.state.sqlite import Store

SILENCES_TABLE = "silences"
SILENCED_TABLE = "silenced_alerts"
_READ_TIMEOUT = 30.0  # seconds to read a compacted topic to its end
_FOLLOW_MAX_BACKOFF = 30.0


# --- making and showing silences ---------------------------------------------------------------


def new_silence_id() -> str:
    return f"sil-{secrets.token_hex(4)}"


def new_silence(
    *,
    rule: str | None,
    story: str | None,
    route: str | None,
    duration: timedelta,
    reason: str,
    now: datetime | None = None,
) -> Silence:
    """A silence of one rule or one story (exactly one), from now for ``duration``."""
    if (rule is None) == (story is None):
        raise ValueError("a silence names exactly one of a rule or a story")
    if duration <= timedelta(0):
        raise ValueError("a silence must last longer than 0s")
    if not reason.strip():
        raise ValueError("a silence needs a reason")
    now = now or datetime.now(UTC)
    return Silence(
        id=new_silence_id(),
        rule=rule,
        story=story,
        route=route or None,
        until=now + duration,
        reason=reason.strip(),
        created_at=now,
    )


def is_active(silence: Silence, now: datetime) -> bool:
    return silence.until > now


def ordered(silences: Iterable[Silence]) -> list[Silence]:
    return sorted(silences, key=lambda s: (s.created_at, s.id))


# --- embedded: the state file ------------------------------------------------------------------


def sqlite_add(store: Store, silence: Silence) -> None:
    store.models(SILENCES_TABLE, Silence)[silence.id] = silence
    store.commit()


def sqlite_silences(store: Store) -> list[Silence]:
    return ordered(store.models(SILENCES_TABLE, Silence).values())


def sqlite_remove(store: Store, silence_id: str) -> Silence | None:
    """Remove a silence; returns it, or None when there is no such silence."""
    table = store.models(SILENCES_TABLE, Silence)
    silence = table.get(silence_id)
    if silence is None:
        return None
    del table[silence_id]
    store.commit()
    return silence


def silenced_counts(store: Store) -> dict[str, int]:
    """Silence id -> how many alerts it has kept from being sent (rows of silenced_alerts)."""
    counts: dict[str, int] = {}
    for row in store.table(SILENCED_TABLE).values():
        silence_id = row.get("silence_id") if isinstance(row, dict) else None
        if isinstance(silence_id, str):
            counts[silence_id] = counts.get(silence_id, 0) + 1
    return counts


# --- Kafka: compacted topics -------------------------------------------------------------------


def _unreachable(bootstrap: str, exc: BaseException) -> ConfigError:
    return ConfigError(f"Kafka at {bootstrap} is not reachable: {exc}")


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        # The consumer's metadata only covers topics it has been told of; `topics()` fetches
        # a separate copy. Refresh the client's own (aiokafka has no public call for this).
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic)
    return [TopicPartition(topic, p) for p in sorted(parts or ())]


async def read_latest(bootstrap: str, topic: str) -> dict[str, bytes]:
    """A compacted topic read from the beginning to its current end: key -> latest value, keys
    whose latest value is null left out. A topic that does not exist yet reads as empty."""
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
            return {}
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        latest: dict[str, bytes] = {}
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
            for records in batch.values():
                for r in records:
                    if r.offset >= ends[TopicPartition(r.topic, r.partition)]:
                        continue  # written after we looked: not part of this snapshot
                    if r.key is None:
                        continue
                    key = r.key.decode("utf-8", "replace")
                    if r.value is None:
                        latest.pop(key, None)
                    else:
                        latest[key] = r.value
        return latest
    except KafkaError as exc:
        raise _unreachable(bootstrap, exc) from None
    finally:
        await consumer.stop()


async def open_producer(bootstrap: str) -> AIOKafkaProducer:
    """A started producer whose every send is acknowledged by all in-sync replicas."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, request_timeout_ms=15000
    )
    try:
        await producer.start()
    except KafkaError as exc:
        await producer.stop()
        raise _unreachable(bootstrap, exc) from None
    return producer


async def send(producer: AIOKafkaProducer, topic: str, key: str, value: bytes | None) -> None:
    """One record, waited for; a null value is a tombstone."""
    try:
        await producer.send_and_wait(topic, value, key=key.encode())
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


def decode_silence(key: str, value: bytes) -> Silence | None:
    try:
        return Silence.model_validate_json(value)
    except (ValidationError, ValueError) as exc:
        log.warning("silence_undecodable", key=key, error=str(exc)[:300])
        return None


async def kafka_silences(bootstrap: str, topic: str) -> list[Silence]:
    latest = await read_latest(bootstrap, topic)
    found = (decode_silence(k, v) for k, v in latest.items())
    return ordered(s for s in found if s is not None)


async def ensure_silences_topic(bootstrap: str, names: Topics, replication: int) -> None:
    """Create the silences topic if it is missing (a producer would have the broker create it
    with its defaults: not compacted, so a removed silence would come back). Only this topic:
    the others are the worker's business, and their partition counts none of ours."""
    spec = next(s for s in names.specs(1) if s.name == names.silences)
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


async def kafka_add(bootstrap: str, names: Topics, replication: int, silence: Silence) -> None:
    await ensure_silences_topic(bootstrap, names, replication)
    await produce(bootstrap, [(names.silences, silence.id, silence.model_dump_json().encode())])


async def kafka_remove(bootstrap: str, topic: str, silence_id: str) -> Silence | None:
    """Write the tombstone of a silence; returns it, or None when there is no such silence."""
    current = {s.id: s for s in await kafka_silences(bootstrap, topic)}
    silence = current.get(silence_id)
    if silence is None:
        return None
    await produce(bootstrap, [(topic, silence_id, None)])
    return silence


# --- Kafka: every worker follows the silences --------------------------------------------------


def apply_record(
    into: MutableMapping[str, Silence], key: bytes | None, value: bytes | None
) -> None:
    """One record of the silences topic: a silence added (or replaced), or removed (null)."""
    if key is None:
        log.warning("silence_without_key")
        return
    name = key.decode("utf-8", "replace")
    if value is None:
        if into.pop(name, None) is not None:
            log.info("silence_removed", silence_id=name)
        return
    silence = decode_silence(name, value)
    if silence is not None:
        into[name] = silence
        log.info("silence_followed", silence_id=name, until=silence.until.isoformat())


async def follow_silences(bootstrap: str, topic: str, into: dict[str, Silence]) -> None:
    """Keep ``into`` equal to the silences topic, forever: read it from the beginning, then
    apply each new record as it arrives. A broker that goes away is waited for (with backoff)
    and reading resumes where it stopped, so nothing is applied twice or missed."""
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
            log.info("silences_following", topic=topic, partitions=len(tps))
            while True:
                batch = await consumer.getmany(*tps, timeout_ms=1000)
                for tp, records in batch.items():
                    for r in records:
                        apply_record(into, r.key, r.value)
                        positions[tp] = r.offset + 1
                delay = 1.0  # reading works again: the next failure starts from a short wait
        except Exception as exc:  # CancelledError is not an Exception: cancelling still works
            error = f"{type(exc).__name__}: {exc}"
        finally:
            try:
                await consumer.stop()
            except Exception as exc:  # a consumer that never started may fail to stop
                log.debug("silences_consumer_stop_failed", error=str(exc))
        wait = delay * random.uniform(0.8, 1.2)
        log.warning(
            "silences_follow_failed",
            topic=topic,
            bootstrap=bootstrap,
            error=error,
            retry_in=round(wait, 1),
        )
        await asyncio.sleep(wait)
        delay = min(delay * 2, _FOLLOW_MAX_BACKOFF)
