"""Alerts appended to a JSON-lines file, one object per alert, for machines and archives.

A digest is written as one line per alert it holds, each line the alert's usual record plus
``digest_id``, ``digest_reason`` and ``digest_size`` (see :meth:`JsonlSink.send_digest`)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from monitor.models import Alert, Digest
from monitor.sinks.base import Sink
from monitor.sinks.render import format_term


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

    async def send(self, alert: Alert) -> None:
        line = json.dumps(alert_record(alert), ensure_ascii=False) + "\n"
        await asyncio.to_thread(self._append, line)

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
        text = "".join(
            json.dumps({**alert_record(a), **extra}, ensure_ascii=False) + "\n" for a in alerts
        )
        if text:
            await asyncio.to_thread(self._append, text)

    def _append(self, text: str) -> None:
        # One write per alert (or per digest) in append mode: a crash never leaves half an
        # alert behind another.
        with self.path.open("a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
