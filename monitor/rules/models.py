"""What a rule author may write, as typed models. Unknown keys are errors (a typo must not pass
silently as an ignored option)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


class Route(Strict):
    """Sends a story's alerts to one sink once the story reaches ``min_level``."""

    name: RuleId
    sink: str = Field(min_length=1)
    min_level: Level = Level.medium

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
