"""What a rule author may write, as typed models. Unknown keys are errors (a typo must not pass
silently as an ignored option)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from monitor import durations
from monitor.durations import parse_duration
from monitor.models import Level
from monitor.pipeline.text import LANGUAGES, language_code
from monitor.rules.phrases import Phrase

RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=80)]
# A feed name or a feed label (feeds.yaml): the same alphabet as feed names.
FeedRef = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=64)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Near(Strict):
    """Proximity: some ``any`` hit must have one of ``terms`` within ``within`` words of it."""

    terms: list[Phrase] = Field(min_length=1)
    within: int = Field(default=10, ge=1, le=200)


class MatchSpec(Strict):
    """Which words make a rule fire. Each phrase is a plain string (stemmed) or a mapping
    ``{phrase: strikes, exact: true}`` / ``{phrase: US, case: sensitive}``: see
    :mod:`monitor.rules.phrases`.

    ``any``: one of these; ``all``: every one of these, anywhere in the article; ``none``:
    cancels the hits it overlaps ("home invasion"); ``near``: an ``any`` hit counts only with
    one of ``near.terms`` within ``near.within`` words."""

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


class SourceFilter(Strict):
    """Which feeds a rule listens to, by feed name or feed label (``labels`` in feeds.yaml)::

        sources: {only: [wires, reuters-world]}     # only these feeds / feeds with this label
        sources: {except: [tabloids]}               # every feed but these
        sources: {only: [wires], except: [tass]}    # both: wires, but not tass

    A feed is named when its name or any of its labels is in the list."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, serialize_by_alias=True
    )

    only: list[FeedRef] = Field(
        default_factory=list, description="Feed names or labels: the rule sees only these."
    )
    except_: list[FeedRef] = Field(
        default_factory=list,
        alias="except",
        description="Feed names or labels the rule never sees.",
    )

    @model_validator(mode="after")
    def _says_something(self) -> SourceFilter:
        if not self.only and not self.except_:
            raise ValueError("give 'only' and/or 'except' (feed names or labels)")
        return self

    def allows(self, source: str, labels: Sequence[str] = ()) -> bool:
        names = {source, *labels}
        if self.only and names.isdisjoint(self.only):
            return False
        return names.isdisjoint(self.except_)


class Rule(Strict):
    """One alert rule. Beyond ``match`` and ``weight``, all optional::

        language: fr        # phrases stemmed in French; matches French articles only
        exact: true         # every phrase matches its literal word forms (a phrase may
                            # say exact: false); default false: stemmed
        sources: {only: [wires]}      # or {except: [...]}: see SourceFilter
        min_outlets: 3      # counts towards a story's score once 3 distinct outlets carry it
        spike: {window: 1h, baseline: 24h, factor: 3, min_count: 5}   # see Spike

    ``language`` is an ISO 639-1 code (en, ru, fr, de, es, ... : see
    monitor.pipeline.text.LANGUAGES); a rule matches articles whose feed has that language
    (feeds.yaml ``language``, default en; "en-GB" counts as en). Without it a rule is English:
    it matches English articles, and those of feeds that do not say their language."""

    id: RuleId
    description: str = ""
    match: MatchSpec
    weight: float = Field(gt=0, le=1000)
    labels: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True
    language: str = Field(default="en", description="ISO 639-1 code: en, ru, fr, de, es, ...")
    exact: bool = Field(
        default=False, description="Phrases match their literal word forms (no stemming)."
    )
    sources: SourceFilter | None = None
    min_outlets: int = Field(
        default=1, ge=1, le=100, description="Counts once a story has this many outlets."
    )
    spike: Spike | None = None

    @field_validator("language")
    @classmethod
    def _known_language(cls, v: str) -> str:
        code = language_code(v)
        if code not in LANGUAGES:
            raise ValueError(
                f"no stemmer for language {v!r}; use one of {', '.join(sorted(LANGUAGES))}"
            )
        return code


LevelName = Literal["low", "medium", "high", "critical", "none"]


class RuleTest(Strict):
    """An example article, the rule ids it must (exactly) trigger and, optionally, the level a
    story made of this one article reaches (``none``: below every threshold)."""

    text: str | None = Field(default=None, description="A headline (instead of title/body).")
    title: str | None = None
    body: str | None = None
    expect: list[RuleId] = Field(description="Exactly the rules that must fire ([]: none).")
    level: LevelName | None = Field(
        default=None,
        description="The level a story of this one article reaches (reliability 1, one outlet).",
    )
    language: str | None = Field(
        default=None,
        description="The example's language (ISO 639-1). Default: that of the rules it expects "
        "when they share one, else en.",
    )

    @field_validator("language")
    @classmethod
    def _known_language(cls, v: str | None) -> str | None:
        if v is None:
            return v
        code = language_code(v)
        if code not in LANGUAGES:
            raise ValueError(
                f"no stemmer for language {v!r}; use one of {', '.join(sorted(LANGUAGES))}"
            )
        return code

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


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    WithJsonSchema(durations.JSON_SCHEMA, mode="validation"),
]
# A wall-clock time as written in YAML: "22:00", "07:30" (seconds optional).
ClockTime = Annotated[
    time,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$",
            "description": "A time of day, 24-hour clock: 22:00 or 07:30.",
        },
        mode="validation",
    ),
]


class Spike(Strict):
    """Breaking-news detection for a rule: its matches in the last ``window`` against its usual
    rate over the ``baseline`` before that window. The rule is *spiking* when

        matches in the window >= max(min_count, factor x usual matches per window)

    and every article matching it meanwhile gives its story a ``bonus`` score term ("spike: 14
    in the last hour vs 2.1/h usual"), so stories alert earlier in a surge. Counted in event time
    (when articles were published), in buckets of a twelfth of the window (coarser when the
    baseline is over ~50 windows: a rule keeps at most 600 buckets); a rule is judged only once
    it has been counted for window + baseline (before that there is no "usual"). All optional::

        spike: {window: 1h, baseline: 24h, factor: 3, min_count: 5, bonus: 20}"""

    window: Duration = Field(default=timedelta(hours=1))
    baseline: Duration = Field(default=timedelta(hours=24))
    factor: float = Field(default=3.0, ge=1, le=1000)
    min_count: int = Field(default=5, ge=1, le=1_000_000)
    bonus: float = Field(default=20.0, ge=0, le=1000)

    @model_validator(mode="after")
    def _spans(self) -> Spike:
        if self.window < timedelta(minutes=1):
            raise ValueError("window must be at least 1m")
        if self.baseline < 2 * self.window:
            raise ValueError("baseline must be at least twice the window")
        if self.baseline > timedelta(days=60):
            raise ValueError("baseline must be at most 60d")
        return self

    @property
    def bucket_seconds(self) -> int:
        """Counting resolution: a twelfth of the window (at least a minute), coarser when
        window + baseline would need more than 600 buckets (state stays small)."""
        span = int((self.window + self.baseline).total_seconds())
        return max(60, int(self.window.total_seconds()) // 12, -(-span // 600))


class RateLimit(Strict):
    """At most ``count`` messages per ``per`` on a route; more are held and go out as one
    digest when the route may send again (never dropped)."""

    count: int = Field(ge=1)
    per: Duration


class QuietHours(Strict):
    """Between ``start`` and ``end`` (wall clock in ``timezone``) only critical alerts go out;
    the others are held and sent as one digest when quiet hours end."""

    start: ClockTime
    end: ClockTime
    timezone: str = "UTC"

    @field_validator("start", "end")
    @classmethod
    def _wall_clock(cls, v: time) -> time:
        # "22:00Z" parses as a time with an offset; the zone is `timezone`'s job
        if v.tzinfo is not None:
            raise ValueError("write the time without a zone (22:00); set `timezone` instead")
        return v

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
    min_level: Annotated[
        Level,
        WithJsonSchema({"enum": ["low", "medium", "high", "critical"]}, mode="validation"),
    ] = Level.medium
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
