"""Dead letters: records a stage could not decode or process, kept with the error so nothing is
lost silently, listed (``monitor articles dead``) and put back through the pipeline on request
(``monitor articles replay``), once the cause is fixed.

* Embedded: the ``dead_articles`` table of the state file (key: article id; the article, the
  stage and the error). A replay moves the article to the ``replay_articles`` table, which
  ``monitor run`` drains at the start and after every polling round; the run that fails on it
  again keeps it anew, with the new error. The failing article's own changes were rolled back,
  so its replay is not taken for a duplicate of itself.
* Kafka: the topic ``news.deadletter`` (append-only, kept forever). A replay sends the kept
  value back to the topic it came from with its key, and appends a marker naming the entry, so
  the listing shows it as replayed. The stages are replay-safe (dedupe recognises a record's own
  earlier occurrence), so the stage that failed runs it as if for the first time; failing again
  makes a new entry, with its new error and position.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from monitor.errors import MonitorError
from monitor.logs import log
from monitor.models import Article
from monitor.runtime.compacted import open_producer, read_to_end, send
from monitor.runtime.topics import Topics
from monitor.state.sqlite import Store

DEAD_ARTICLES = "dead_articles"
REPLAY_ARTICLES = "replay_articles"
KEPT_BYTES = 100_000  # of a dead record's value: a poison record can be near the size limit

ReplayOutcome = Literal["queued", "failed"]


@dataclass(frozen=True)
class DeadLetter:
    """One record set aside. ``id``: the article id (embedded), or ``topic@partition:offset``
    of the record on its own topic (Kafka), unique and stable."""

    id: str
    stage: str
    error: str
    at: datetime | None
    topic: str = ""
    key: str | None = None
    value: str = ""  # the record as it was (Kafka); the article as JSON (embedded)
    raw: bytes | None = None  # the record's very bytes, when they are not UTF-8 text
    truncated: bool = False
    replayed: datetime | None = None

    @property
    def title(self) -> str:
        """The article's title when the value is one (what an operator recognises)."""
        try:
            data = json.loads(self.value)
        except ValueError:
            return ""
        if isinstance(data, dict):
            inner = data.get("article", data)
            if isinstance(inner, dict) and isinstance(inner.get("title"), str):
                return str(inner["title"])
        return ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "stage": self.stage,
            "error": self.error,
            "at": self.at.isoformat() if self.at else None,
            "topic": self.topic,
            "key": self.key,
            "title": self.title,
            "value": self.value,
            "truncated": self.truncated,
            "replayed": self.replayed.isoformat() if self.replayed else None,
        }


@dataclass(frozen=True)
class Replayed:
    entry: DeadLetter
    outcome: ReplayOutcome
    error: str = ""


class UnknownDeadLetter(MonitorError):
    pass


def select(entries: Sequence[DeadLetter], wanted: str) -> DeadLetter:
    for entry in entries:
        if entry.id == wanted:
            return entry
    raise UnknownDeadLetter(f"no dead letter {wanted!r}")


def kept_value(raw: bytes) -> dict[str, object]:
    """A dead record's value as kept on news.deadletter: readable text when it is UTF-8, else
    base64 (so a replay sends back the very bytes), cut to :data:`KEPT_BYTES`."""
    cut = raw[:KEPT_BYTES]
    try:
        value: dict[str, object] = {"value": cut.decode("utf-8")}
    except UnicodeDecodeError:
        value = {
            "value": cut.decode("utf-8", "replace"),
            "value_base64": base64.b64encode(cut).decode(),
        }
    # `monitor articles replay` refuses a value cut short
    return {**value, "truncated": len(raw) > KEPT_BYTES}


def _time(text: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return None


# --- embedded ----------------------------------------------------------------------------------


def keep_article(store: Store, article: Article, stage: str, error: str) -> None:
    """Set a failing article aside (the caller commits)."""
    store.table(DEAD_ARTICLES)[article.id] = {
        "stage": stage,
        "error": error[:2000],
        "at": datetime.now(UTC).isoformat(),
        "article": article.model_dump(mode="json"),
    }


def sqlite_dead_letters(store: Store) -> list[DeadLetter]:
    out = []
    for key, row in store.table(DEAD_ARTICLES).items():
        # rows written before the stage and error were kept are the bare article
        article = row.get("article", row) if isinstance(row, dict) else row
        out.append(
            DeadLetter(
                id=key,
                stage=str(row.get("stage", "process")) if isinstance(row, dict) else "process",
                error=str(row.get("error", "")) if isinstance(row, dict) else "",
                at=_time(row.get("at")) if isinstance(row, dict) else None,
                value=json.dumps(article),
            )
        )
    return sorted(out, key=lambda e: (e.at or datetime.min.replace(tzinfo=UTC), e.id))


def sqlite_replay(store: Store, entries: Sequence[DeadLetter]) -> list[Replayed]:
    """Move each entry's article to the replay table for ``monitor run`` (committed after each,
    so a running process picks it up at its next round)."""
    dead, replay = store.table(DEAD_ARTICLES), store.table(REPLAY_ARTICLES)
    results = []
    for entry in entries:
        try:
            article = Article.model_validate_json(entry.value)
        except ValidationError as exc:
            results.append(Replayed(entry, "failed", f"not an article: {exc.errors()[0]['msg']}"))
            continue
        replay[entry.id] = article.model_dump(mode="json")
        dead.pop(entry.id, None)
        store.commit()
        results.append(Replayed(entry, "queued"))
    return results


def queued_replays(store: Store) -> list[Article]:
    """The articles queued for replay; the runtime removes each in the transaction that
    processes it (a crash before then leaves it queued)."""
    table = store.table(REPLAY_ARTICLES)
    out = []
    for key in list(table):
        try:
            out.append(Article.model_validate(table[key]))
        except ValidationError as exc:  # cannot be processed: back with the dead, not lost
            log.warning("replay_undecodable", article_id=key, error=str(exc)[:300])
            store.table(DEAD_ARTICLES)[key] = {
                "stage": "replay",
                "error": f"not an article: {exc.errors()[0]['msg']}",
                "at": datetime.now(UTC).isoformat(),
                "article": table.pop(key),
            }
    store.commit()
    return out


# --- Kafka -------------------------------------------------------------------------------------


def _short(topic: str, names: Topics) -> str:
    return topic.removeprefix(names.prefix)


def fold(records: Iterable[dict[str, Any]], names: Topics) -> list[DeadLetter]:
    """Dead-letter records (and replay markers) in topic order -> one entry per failed record:
    a record dead-lettered twice (a worker restarted before committing) is listed once."""
    entries: dict[str, DeadLetter] = {}
    replayed: dict[str, datetime | None] = {}
    for r in records:
        if "replayed" in r:
            replayed[str(r["replayed"])] = _time(r.get("at"))
            continue
        ident = f"{_short(str(r.get('topic', '')), names)}@{r.get('partition')}:{r.get('offset')}"
        value = str(r.get("value", ""))
        raw = None
        if isinstance(r.get("value_base64"), str):
            try:
                raw = base64.b64decode(r["value_base64"], validate=True)
            except binascii.Error:
                raw = None
        entries.setdefault(
            ident,
            DeadLetter(
                id=ident,
                stage=str(r.get("stage", "")),
                error=str(r.get("error", "")),
                at=_time(r.get("at")),
                topic=str(r.get("topic", "")),
                key=r.get("key") or None,
                value=value,
                raw=raw,
                truncated=bool(r.get("truncated", len(value) >= KEPT_BYTES)),
            ),
        )
    out = []
    for ident, entry in entries.items():
        if ident in replayed:
            entry = dataclasses.replace(entry, replayed=replayed[ident])
        out.append(entry)
    return out


async def kafka_dead_letters(bootstrap: str, names: Topics) -> list[DeadLetter]:
    records = []
    for r in await read_to_end(bootstrap, names.dead_letters):
        try:
            record = json.loads(r.value or b"")
        except ValueError:
            continue  # not ours: the topic is written only by the workers and this module
        if isinstance(record, dict):
            records.append(record)
    return fold(records, names)


async def kafka_replay(
    bootstrap: str, names: Topics, entries: Sequence[DeadLetter]
) -> list[Replayed]:
    results: list[Replayed] = []
    producer = await open_producer(bootstrap)
    try:
        for entry in entries:
            if entry.truncated:
                error = f"only the first {KEPT_BYTES:,} bytes of the record were kept"
                results.append(Replayed(entry, "failed", error))
                continue
            try:
                value = entry.raw if entry.raw is not None else entry.value.encode()
                await send(producer, entry.topic, entry.key, value)
                marker = {"replayed": entry.id, "at": datetime.now(UTC).isoformat()}
                await send(producer, names.dead_letters, entry.id, json.dumps(marker).encode())
            except MonitorError as exc:
                results.append(Replayed(entry, "failed", str(exc)))
                continue
            results.append(Replayed(entry, "queued"))
    finally:
        await producer.stop()
    return results
