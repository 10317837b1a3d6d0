"""Silences, in both runtimes: made by ``monitor silence add``, read by the dispatcher.

* Embedded: the ``silences`` table of the state file (silence id -> Silence). ``monitor run``
  reads it afresh for every alert, so a silence added from another process applies at once.
* Kafka: the compacted topic ``news.silences`` (key: silence id; value: Silence JSON; a null
  value removes it). Every worker follows the whole topic into memory (:func:`follow_silences`).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, MutableMapping
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from monitor.logs import log
from monitor.models import Silence
from monitor.runtime.compacted import ensure_topic, follow, produce, read_latest
from monitor.runtime.topics import Topics
from monitor.state.sqlite import Store

SILENCES_TABLE = "silences"
SILENCED_TABLE = "silenced_alerts"


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


# --- Kafka -----------------------------------------------------------------------------------


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
    spec = next(s for s in names.specs(1) if s.name == names.silences)
    await ensure_topic(bootstrap, spec, replication)


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
    """Keep ``into`` equal to the silences topic, forever (see compacted.follow)."""
    await follow(bootstrap, topic, lambda key, value: apply_record(into, key, value), "silences")
