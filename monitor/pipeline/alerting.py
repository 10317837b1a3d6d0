"""Story alert lifecycle and routing: which routes hear about a story event, and as what.

Per (story, route): ``opened`` the first time the story reaches the route's level, ``escalated``
each time its level rises above what that route was last told. More copies at the same level
send nothing. Alert ids are derived from (story, route, kind, level), so replaying an event after
a crash yields the same ids and the delivery ledger drops the repeats.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, MutableMapping, Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from monitor.models import Alert, AlertKind, Level, Score, StoryEvent
from monitor.pipeline.scoring import score_story
from monitor.rules.models import Route, Rule, Scoring


class Thread(BaseModel):
    """What a route has been told about a story."""

    model_config = ConfigDict(frozen=True)
    level: Level
    first_alert_id: str
    alerts: int = 1
    last_sent: datetime
    # The story event that last changed this thread, and what it raised: a replay of that
    # event (at-least-once redelivery after a crash) raises the same alert again, with the
    # same id, for the delivery ledger to drop if it did go out.
    last_event: str = ""
    last_kind: str = "opened"
    previous_level: Level = Level.none


def alert_id(story_id: str, route: str, kind: str, level: Level) -> str:
    return hashlib.sha256(f"{story_id}|{route}|{kind}|{level.name}".encode()).hexdigest()[:24]


def decide(
    event: StoryEvent,
    rules: Mapping[str, Rule],
    scoring: Scoring,
    routes: Sequence[Route],
    threads: MutableMapping[str, Thread],
    now: datetime,
) -> list[Alert]:
    story = event.story
    score = score_story(story, rules, scoring)
    if score.level is Level.none:
        return []
    labels: dict[str, str] = {}
    for hit in story.hits:
        rule = rules.get(hit.rule_id)
        if rule:
            labels.update(rule.labels)
    out: list[Alert] = []
    token = event_token(event)
    for route in routes:
        if score.level < route.min_level:
            continue
        key = f"{story.id}|{route.name}"
        thread = threads.get(key)
        kind: AlertKind
        if thread is None:
            kind, previous = "opened", Level.none
        elif score.level > thread.level:
            kind, previous = "escalated", thread.level
        elif thread.last_event == token and thread.level == score.level:
            kind = "escalated" if thread.last_kind == "escalated" else "opened"
            previous = thread.previous_level
            out.append(_alert(event, route, kind, score, previous, now, labels))
            continue  # a replay: same alert again, thread unchanged
        else:
            continue
        alert = _alert(event, route, kind, score, previous, now, labels)
        out.append(alert)
        aid = alert.id
        threads[key] = Thread(
            level=score.level,
            first_alert_id=thread.first_alert_id if thread else aid,
            alerts=(thread.alerts + 1) if thread else 1,
            last_sent=now,
            last_event=token,
            last_kind=kind,
            previous_level=previous,
        )
    return out


def event_token(event: StoryEvent) -> str:
    """Identifies one story event: the article occurrence that caused it."""
    return f"{event.article.id}|{event.article.fetched_at.isoformat()}"


def _alert(
    event: StoryEvent,
    route: Route,
    kind: AlertKind,
    score: Score,
    previous: Level,
    now: datetime,
    labels: dict[str, str],
) -> Alert:
    story = event.story
    return Alert(
        id=alert_id(story.id, route.name, kind, score.level),
        story_id=story.id,
        route=route.name,
        sink=route.sink,
        kind=kind,
        level=score.level,
        previous_level=previous,
        score=score.value,
        terms=score.terms,
        title=story.title,
        url=story.url,
        sources=story.sources,
        hits=story.hits,
        created_at=now,
        fetched_at=event.article.fetched_at,
        rules_version=event.rules_version,
        labels=labels,
    )
