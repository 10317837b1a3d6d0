"""Story alert lifecycle and routing: which routes hear about a story event, and as what.

Per (story, route), a *thread*:
  * ``opened`` the first time the story reaches the route's level;
  * ``escalated`` each time its level rises above what that route was last told;
  * ``updated`` when more copies arrive at the same level, at most once per the route's
    ``repeat_interval`` (no interval: no updates);
  * ``resolved`` by :func:`sweep` once the story has had no new article for the route's
    ``resolve_after``. A resolved story that comes back is ``opened`` again, in the same thread.

Alert ids are derived from (story, route, kind, level, position in the thread), so replaying an
event after a crash yields the same ids and the delivery ledger drops the repeats.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from monitor.models import Alert, AlertKind, Level, Score, StoryEvent
from monitor.pipeline.cluster import STORY_WINDOW
from monitor.pipeline.scoring import score_story
from monitor.rules.models import Route, Rule, Scoring

# A thread quiet this long is forgotten: its story has been closed by the story index long
# before (STORY_WINDOW), so later copies make a new story with a new thread.
THREAD_RETENTION = 2 * STORY_WINDOW
HISTORY = 16  # alerts remembered per thread for replays; a thread rarely raises more
# A replayed resolution sweep cannot tell it already ran: for this long after a story is
# resolved, each sweep raises its `resolved` alert again, and the ledger drops the repeats.
RESOLVED_REPLAY = timedelta(minutes=5)


class Thread(BaseModel):
    """What a route has been told about a story."""

    model_config = ConfigDict(frozen=True)
    level: Level
    first_alert_id: str
    alerts: int = 1
    last_sent: datetime
    # The recent story events that raised an alert here, with the alert each raised: a replay
    # of one of them (at-least-once redelivery after a crash) raises the same alert again,
    # with the same id, for the delivery ledger to drop if it did go out. Several, not just the
    # last: a crash can lose the output of a batch of events whose table writes were kept.
    history: tuple[tuple[str, Alert], ...] = ()
    last_activity: datetime | None = None  # when the story last had a new article
    articles_told: int = 1  # the story's article count when the route was last told
    resolved: bool = False

    @property
    def active_since(self) -> datetime:
        return self.last_activity or self.last_sent

    @property
    def last_alert(self) -> Alert | None:
        return self.history[-1][1] if self.history else None

    def raised(self, token: str) -> Alert | None:
        for seen, alert in self.history:
            if seen == token:
                return alert
        return None

    def remember(self, token: str, alert: Alert) -> tuple[tuple[str, Alert], ...]:
        return (*self.history, (token, alert))[-HISTORY:]


def alert_id(story_id: str, route: str, kind: str, level: Level, seq: int = 1) -> str:
    """Deterministic: the ``seq``-th alert of a story's thread on a route."""
    key = f"{story_id}|{route}|{kind}|{level.name}|{seq}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


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
        replayed = thread.raised(token) if thread is not None else None
        if replayed is not None:
            out.append(replayed)  # a replay: the same alert again, thread unchanged
            continue
        kind: AlertKind | None
        previous = Level.none
        if thread is None or thread.resolved:
            kind = "opened"
        elif score.level > thread.level:
            kind, previous = "escalated", thread.level
        elif (
            route.repeat_interval is not None
            and not event.replayed
            and story.articles > thread.articles_told
            and now - thread.last_sent >= route.repeat_interval
        ):
            kind, previous = "updated", thread.level
        else:
            kind = None
        if kind is None:
            assert thread is not None
            if not event.replayed:  # keeps the story from resolving while copies still arrive
                threads[key] = thread.model_copy(update={"last_activity": now})
            continue
        seq = thread.alerts + 1 if thread else 1
        # (a story back after `resolved` is opened again: seq gives it a new id, same thread)
        aid = alert_id(story.id, route.name, kind, score.level, seq)
        alert = _alert(event, route, kind, score, previous, now, labels, aid)
        out.append(alert)
        threads[key] = Thread(
            level=score.level,
            first_alert_id=thread.first_alert_id if thread else aid,
            alerts=seq,
            last_sent=now,
            history=thread.remember(token, alert) if thread else ((token, alert),),
            last_activity=now,
            articles_told=story.articles,
        )
    return out


def sweep(
    threads: MutableMapping[str, Thread],
    routes: Sequence[Route],
    now: datetime,
    owns: Callable[[str], bool] = lambda story_id: True,
    replay_resolved: bool = False,
) -> list[Alert]:
    """``resolved`` alerts for stories quiet beyond their route's ``resolve_after``, and
    threads quiet beyond THREAD_RETENTION forgotten. ``owns`` limits the sweep to the stories
    this process may write (in Kafka: those of one partition). ``replay_resolved``: where a
    crash can keep a sweep's table writes but lose its output (Kafka), raise recent
    resolutions again for the ledger to drop."""
    by_name = {r.name: r for r in routes}
    out: list[Alert] = []
    for key in list(threads):
        story_id, _, route_name = key.rpartition("|")
        # Filter on the key before reading: a Faust table reads a key in the partition of the
        # record being processed, and another partition's key is not found there.
        if not owns(story_id):
            continue
        thread = threads.get(key)
        if thread is None:
            continue
        quiet = now - thread.active_since
        if quiet >= THREAD_RETENTION:
            del threads[key]
            continue
        route = by_name.get(route_name)
        last = thread.last_alert
        recent = last is not None and now - last.created_at < RESOLVED_REPLAY
        if replay_resolved and thread.resolved and last is not None and recent:
            out.append(last)  # in case the sweep that resolved it lost its output in a crash
            continue
        if (
            route is None
            or route.resolve_after is None
            or thread.resolved
            or last is None
            or quiet < route.resolve_after
        ):
            continue
        seq = thread.alerts + 1
        alert = last.model_copy(
            update={
                "id": alert_id(story_id, route_name, "resolved", thread.level, seq),
                "kind": "resolved",
                "previous_level": thread.level,
                "created_at": now,
                "fetched_at": None,  # not caused by an article: no end-to-end latency
            }
        )
        out.append(alert)
        threads[key] = thread.model_copy(
            update={
                "alerts": seq,
                "last_sent": now,
                "history": thread.remember(f"resolved|{seq}", alert),
                "resolved": True,
            }
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
    aid: str,
) -> Alert:
    story = event.story
    return Alert(
        id=aid,
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
        articles=story.articles,
    )
