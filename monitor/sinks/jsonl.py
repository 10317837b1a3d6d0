"""Alerts appended to a JSON-lines file, one object per alert, for machines and archives.

A digest is written as one line per alert it holds, each line the alert's usual record plus
``digest_id``, ``digest_reason`` and ``digest_size`` (see :meth:`JsonlSink.send_digest`)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from monitor.models import Alert, Digest
from monitor.sinks.base import Sink
from monitor.sinks.render import format_term

# Line breaks that json.dumps(ensure_ascii=False) leaves raw inside strings: valid JSON, but
# str.splitlines() (and readers built on it, bench/kafka_throughput.py among them) breaks a line
# there, so a title carrying U+2028 read as two broken records. Written as \u escapes instead.
_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})
# How much of the file's end a sink reads when it first writes (see JsonlSink._fresh): far more
# than the alerts that can be in flight at a crash (one alert or one digest).
_TAIL_BYTES = 1 << 20


def json_line(record: dict[str, Any]) -> str:
    """One record as one line of the file, newline included: no line break inside it."""
    return json.dumps(record, ensure_ascii=False).translate(_BREAKS) + "\n"


def alert_record(alert: Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.id,
        "story_id": alert.story_id,
        "route": alert.route,
        "kind": alert.kind,
        "level": alert.level.name,
        "previous_level": alert.previous_level.name,
        "score": alert.score,
        "title": alert.title,
        "url": alert.url,
        "sources": list(alert.sources),
        "rules": [h.rule_id for h in alert.hits],
        "explanation": [format_term(t) for t in alert.terms],
        "evidence": [
            {
                "rule": h.rule_id,
                "text": h.text,
                "snippet": h.snippet,
                "in_title": h.in_title,
                "articles": h.articles,
            }
            for h in alert.hits
        ],
        "labels": alert.labels,
        "rules_version": alert.rules_version,
        "created_at": alert.created_at.isoformat(),
    }


class JsonlSink(Sink):
    name = "jsonl"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tail: set[tuple[str, str]] | None = None  # see _fresh
        self._cut = False  # the file ends in the middle of a line

    async def _fresh(self, alerts: tuple[Alert, ...]) -> list[Alert]:
        """The alerts not already on the file's last lines.

        Why: the delivery ledger records an alert only once its line is written, so a crash
        (SIGKILL, power loss) in between leaves the line in the file and the alert unrecorded,
        and the runtime sends it again after the restart: the same alert twice in the file
        (shown by tests/reliability/test_embedded_sigkill.py). The file is this sink's own
        record of what it delivered, so the sink checks it: the last lines, read once, when
        this process first writes (what a crash can have left unrecorded is at the end)."""
        if self._tail is None:
            self._tail = await asyncio.to_thread(self._read_tail)
        return [a for a in alerts if (a.id, a.route) not in self._tail]

    def _read_tail(self) -> set[tuple[str, str]]:
        try:
            with self.path.open("rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - _TAIL_BYTES))
                data = f.read()
        except FileNotFoundError:
            return set()
        self._cut = bool(data) and not data.endswith(b"\n")  # a write cut short by a crash
        lines = data.splitlines()[1 if size > _TAIL_BYTES else 0 :]  # the first may be partial
        keys = set()
        for line in lines:
            try:
                record = json.loads(line)
                keys.add((str(record["alert_id"]), str(record["route"])))
            except (ValueError, KeyError, TypeError):
                continue
        return keys

    async def send(self, alert: Alert) -> None:
        if await self._fresh((alert,)):
            await asyncio.to_thread(self._append, json_line(alert_record(alert)))

    async def send_digest(self, digest: Digest) -> None:
        """One line per alert, each tagged with its digest, rather than one line for the digest.

        Why: every line of the file stays one alert with one schema. Consumers that read it
        line by line (``kind``, ``story_id``, ``level``, ``alert_id``: the tests, the benchmarks,
        ``jq`` filters, a loader into a table) keep working unchanged and see every alert,
        whether it went out alone or held in a digest; one that cares about digests groups on
        ``digest_id`` (``digest_size`` tells it when a group is complete). A single digest line
        would instead be a second record type that every reader must learn to tell apart and
        unnest, and old readers would fail on it (no ``kind``) or silently miss its alerts.

        The lines are appended together, in the order the alerts were held, as one block."""
        alerts = digest.alerts
        extra = {
            "digest_id": digest.id,
            "digest_reason": digest.reason,
            "digest_size": len(alerts),
        }
        fresh = await self._fresh(alerts)  # a digest cut short by a crash: the rest of it
        text = "".join(json_line({**alert_record(a), **extra}) for a in fresh)
        if text:
            await asyncio.to_thread(self._append, text)

    def _append(self, text: str) -> None:
        # One write per alert (or per digest) in append mode: a crash never leaves half an
        # alert behind another.
        if self._cut:  # a crash cut the last line short: this record starts a line of its own
            text, self._cut = "\n" + text, False
        with self.path.open("a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
