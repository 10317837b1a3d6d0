"""What a rule author may write, as typed models. Unknown keys are errors (a typo must not pass
silently as an ignored option)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from monitor.durations import parse_duration
from monitor.models import Level

RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=80)]
Phrase = Annotated[str, Field(min_length=1, max_length=200)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Near(Strict):
    """Proximity: some ``any`` hit must have one of ``terms`` within ``within`` words of it."""

    terms: list[Phrase] = Field(min_length=1)
    within: int = Field(default=10, ge=1, le=200)


class MatchSpec(Strict):
    any: list[Phrase] = Field(default_factory=list)
    all: list[Phrase] = Field(default_factory=list)
    none: list[Phrase] = Field(default_factory=list)
    near: Near | None = None

    @model_validator(mode="after")
    def _needs_something(self) -> MatchSpec:
        if not self.any and not self.all:
            raise ValueError("needs at least one phrase in 'any' or 'all'")
        if self.near is not None and not self.any:
            raise ValueError("'near' applies to 'any' hits: add 'any' phrases")
        return self


class Rule(Strict):
    id: RuleId
    description: str = ""
    match: MatchSpec
    weight: float = Field(gt=0, le=1000)
    labels: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True


class RuleTest(Strict):
    """An example article and the rule ids it must (exactly) trigger."""

    text: str | None = None
    title: str | None = None
    body: str | None = None
    expect: list[RuleId]

    @model_validator(mode="after")
    def _one_form(self) -> RuleTest:
        if self.text is None and self.title is None and self.body is None:
            raise ValueError("give 'text', or 'title' and/or 'body'")
        if self.text is not None and (self.title is not None or self.body is not None):
            raise ValueError("give either 'text' or 'title'/'body', not both")
        return self

    @property
    def as_title_body(self) -> tuple[str, str]:
        # A bare 'text' is treated as a headline: that is how desks paste examples.
        if self.text is not None:
            return self.text, ""
        return self.title or "", self.body or ""


class RuleFile(Strict):
    rules: list[Rule] = Field(default_factory=list)
    tests: list[RuleTest] = Field(default_factory=list)


class Corroboration(Strict):
    per_outlet: float = Field(default=10, ge=0)
    max: float = Field(default=30, ge=0)


class Thresholds(Strict):
    low: float = Field(default=20, gt=0)
    medium: float = Field(default=40, gt=0)
    high: float = Field(default=60, gt=0)
    critical: float = Field(default=85, gt=0)

    @model_validator(mode="after")
    def _rising(self) -> Thresholds:
        if not self.low < self.medium < self.high < self.critical:
            raise ValueError("thresholds must rise: low < medium < high < critical")
        return self

    def level(self, score: float) -> Level:
        for name in ("critical", "high", "medium", "low"):
            if score >= getattr(self, name):
                return Level[name]
        return Level.none


class Scoring(Strict):
    """How a story's score is computed from its rule hits (alert_rules/scoring.yaml)."""

    levels: Thresholds = Field(default_factory=Thresholds)
    title_boost: float = Field(default=1.5, ge=1, le=10)
    additional_rule_factor: float = Field(default=0.3, ge=0, le=1)
    corroboration: Corroboration = Field(default_factory=Corroboration)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class RateLimit(Strict):
    """At most ``count`` messages per ``per`` on a route; more are held and go out as one
    digest when the route may send again (never dropped)."""

    count: int = Field(ge=1)
    per: Duration


class QuietHours(Strict):
    """Between ``start`` and ``end`` (wall clock in ``timezone``) only critical alerts go out;
    the others are held and sent as one digest when quiet hours end."""

    start: time
    end: time
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {v!r} (use an IANA name like Europe/London)"
            ) from None
        return v

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("start and end are equal: quiet hours would be empty")
        return self

    def active(self, now: datetime) -> bool:
        local = now.astimezone(ZoneInfo(self.timezone)).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # spans midnight

    def ends_after(self, now: datetime) -> datetime:
        """The next moment quiet hours end, after ``now`` (UTC)."""
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        for day in range(3):
            candidate = datetime.combine(local.date() + timedelta(days=day), self.end, zone)
            if candidate > local:
                return candidate.astimezone(UTC)
        raise AssertionError("unreachable: quiet hours end within two days")


class Route(Strict):
    """Sends a story's alerts to one sink once the story reaches ``min_level``, with the
    route's delivery policy: grouping, update throttle, resolution, rate limit, quiet hours."""

    name: RuleId
    sink: str = Field(min_length=1)
    min_level: Level = Level.medium
    # Alerts arriving within this window of the first held one go out as one digest (0: off).
    group_window: Duration = timedelta(0)
    # `updated` alerts (more coverage, same level): at most one per story per interval.
    # Absent: the route hears only of openings and escalations.
    repeat_interval: Duration | None = None
    # `resolved` once a story has had no new article for this long. Absent: never.
    resolve_after: Duration | None = None
    rate_limit: RateLimit | None = None
    quiet_hours: QuietHours | None = None

    @field_validator("repeat_interval", "resolve_after")
    @classmethod
    def _positive(cls, v: timedelta | None) -> timedelta | None:
        if v is not None and v <= timedelta(0):
            raise ValueError("must be longer than 0s (leave it out to turn it off)")
        return v

    @field_validator("min_level", mode="before")
    @classmethod
    def _level_by_name(cls, v: object) -> object:
        if isinstance(v, Level) and v is not Level.none:
            return v
        name = v.strip().lower() if isinstance(v, str) else None
        if name not in {"low", "medium", "high", "critical"}:
            raise ValueError("must be one of low, medium, high, critical")
        return Level[name]


class RoutesFile(Strict):
    routes: list[Route] = Field(default_factory=list)
