"""Alerts appended to a JSON-lines file, one object per alert, for machines and archives."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from monitor.models import Alert
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

    def _append(self, line: str) -> None:
        # One write per line in append mode: a crash never leaves half an alert behind another.
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
