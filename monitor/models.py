"""The records that flow between stages (and over Kafka topics): frozen pydantic models.

They serialise to JSON unchanged in both runtimes, so a record written by one worker version is
read by the next; new fields always get defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Article(Record):
    """One feed entry, normalised. ``id`` is stable across polls (derived from GUID or URL)."""

    id: str
    source: str  # feed name
    url: str  # canonical URL
    guid: str = ""
    title: str
    body: str = ""
    published: datetime  # UTC; the fetch time when the feed gives none
    fetched_at: datetime  # UTC
    language: str = "en"  # the feed's language tag (feeds.yaml); rules match on its primary code
    reliability: float = 1.0
    labels: tuple[str, ...] = ()  # the feed's labels (feeds.yaml), for rules' source filters


Field_ = Literal["title", "body"]


@dataclass(slots=True)
class Match:
    """A rule that fired on one field of one article, and the words that made it fire.

    A plain slotted dataclass rather than a model (and not frozen, which costs a setattr per
    field): the tagger makes one per rule hit in its hot loop, and pydantic still validates and
    serialises it as a field of :class:`TaggedArticle`. Treat it as immutable."""

    rule_id: str
    phrase: str  # the rule phrase as written by the author
    text: str  # the words as they appear in the article
    field: Field_
    snippet: str = ""  # the words around the hit


class TaggedArticle(Record):
    """An article after ingest: exact-dedupe passed, tagged, signed for near-duplicate search."""

    article: Article
    matches: tuple[Match, ...] = ()
    signature: tuple[int, ...] = ()  # MinHash hash values
    rules_version: str = ""


class Level(IntEnum):
    """Severity levels, ordered. ``none`` means below every threshold."""

    none = 0
    low = 1
    medium = 2
    high = 3
    critical = 4


class Surge(Record):
    """A spike rule was spiking when an article of the story matched it (pipeline.spike)."""

    count: int  # the rule's matches in the window ending at that article
    usual: float  # its average matches per window over the baseline before
    window: float  # the window, in seconds
    at: datetime  # the article's (event) time


class RuleHit(Record):
    """A rule's evidence within a story, aggregated over its articles."""

    rule_id: str
    phrase: str
    text: str
    snippet: str = ""
    in_title: bool = False
    articles: int = 1
    spike: Surge | None = None  # the strongest surge of the rule among the story's articles


class Story(Record):
    """A story: all the copies of one piece of news, however many outlets carried it."""

    id: str
    title: str
    url: str
    first_seen: datetime
    last_seen: datetime
    articles: int = 1
    sources: tuple[str, ...] = ()  # distinct outlets, in order of arrival
    reliability: float = 1.0  # best reliability among its outlets
    hits: tuple[RuleHit, ...] = ()
    first_fetched_at: datetime | None = None


class StoryEvent(Record):
    """What the cluster stage emits for each new article: the story it joined, as it now stands."""

    story: Story
    article: Article
    new_story: bool
    new_source: bool
    rules_version: str = ""
    replayed: bool = False  # the article was already in this story (a redelivery)


class ScoreTerm(Record):
    """One line of a score's explanation."""

    label: str
    value: float
    op: Literal["+", "x"] = "+"


class Score(Record):
    value: float
    level: Level
    terms: tuple[ScoreTerm, ...] = ()


# opened: first time a route hears of the story; escalated: its level rose; updated: more
# coverage at the same level (throttled per route); resolved: the story has gone quiet.
AlertKind = Literal["opened", "escalated", "updated", "resolved"]


class Alert(Record):
    """One message to one route about one story. ``id`` is deterministic: re-processing the
    same story event yields the same id, which is what makes delivery idempotent."""

    id: str
    story_id: str
    route: str
    sink: str
    kind: AlertKind
    level: Level
    previous_level: Level = Level.none
    score: float
    terms: tuple[ScoreTerm, ...] = ()
    title: str
    url: str
    sources: tuple[str, ...] = ()
    hits: tuple[RuleHit, ...] = ()
    created_at: datetime
    fetched_at: datetime | None = None  # when the article that fired it was fetched
    rules_version: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    articles: int = 1  # copies of the story seen so far


class Digest(Record):
    """Several alerts sent to one route as one message: stories that crossed together within a
    group window, or alerts held through quiet hours or a rate limit."""

    id: str
    route: str
    sink: str
    reason: Literal["group", "quiet", "rate", "retry"]
    alerts: tuple[Alert, ...]
    created_at: datetime


class Silence(Record):
    """Alerts matching a rule or a story are not sent until ``until``; they are counted and
    kept (outcome ``silenced``), not lost."""

    id: str
    rule: str | None = None
    story: str | None = None
    route: str | None = None  # None: every route
    until: datetime
    reason: str
    created_at: datetime

    def matches(self, alert: Alert, now: datetime) -> bool:
        if now >= self.until or (self.route and self.route != alert.route):
            return False
        if self.story is not None:
            return alert.story_id == self.story
        return any(h.rule_id == self.rule for h in alert.hits)


# silenced: matched a silence; superseded: a later alert about the same story, held in the
# same digest, replaced it (the digest carries the story's latest state).
# "retry": a retryable failure the runtime is to try again later (monitor.runtime.outflow)
DeliveryOutcome = Literal["ok", "duplicate", "error", "no_route", "silenced", "superseded", "retry"]


class Delivery(Record):
    """What became of one alert on one route."""

    alert_id: str
    route: str
    sink: str
    outcome: DeliveryOutcome
    error: str = ""
    at: datetime
    retry_after: float | None = None  # the destination's word, with outcome "retry"


class DeadAlert(Record):
    """An alert that could not be delivered, kept with the reason."""

    alert: Alert
    delivery: Delivery
