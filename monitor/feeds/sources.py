"""The feed list (YAML): which outlets to poll, how often, and how far to trust them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor.errors import ConfigError, Issue, RuleLoadError
from monitor.yamlfile import load_model, position

_DURATION = re.compile(r"^\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``"30s"``, ``"15m"``, ``"1h30m"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m and any(m.groups()):
            h, mi, s = (int(g or 0) for g in m.groups())
            return float(h * 3600 + mi * 60 + s)
    raise ValueError("must be a duration such as 30s, 15m, 1h or a number of seconds")


class FeedSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]
    url: str = Field(min_length=1)
    reliability: float = Field(default=1.0, gt=0, le=1)
    language: str = Field(default="en", pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")
    interval: float = Field(default=900.0, ge=10, le=7 * 86400)
    enabled: bool = True

    @field_validator("interval", mode="before")
    @classmethod
    def _duration(cls, v: object) -> float:
        return parse_duration(v)

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        scheme = v.split("://", 1)[0].lower() if "://" in v else ""
        if scheme and scheme not in {"http", "https", "file"}:
            raise ValueError("must be an http(s):// or file:// URL, or a path")
        return v


class FeedList(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    feeds: list[FeedSource] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> FeedList:
        names = [f.name for f in self.feeds]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate feed names: {', '.join(dupes)}")
        return self


def load_feeds(path: Path | str) -> list[FeedSource]:
    """Load a feed list; relative paths in ``url`` resolve against the file's folder."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{file}: feed list not found")
    model, issues, located = load_model(file, FeedList)
    if model is None:
        raise RuleLoadError(issues)
    out = []
    for i, feed in enumerate(model.feeds):
        if "://" not in feed.url:
            target = (file.parent / feed.url).resolve()
            if not target.exists():
                line, col = position(located, ("feeds", i, "url"))
                issues.append(
                    Issue(str(file), line, col, f"feeds[{i}].url", f"no such file: {target}")
                )
            feed = feed.model_copy(update={"url": target.as_uri()})
        if feed.enabled:
            out.append(feed)
    if issues:
        raise RuleLoadError(issues)
    return out


def sample_feeds_path() -> Path:
    """The feed list bundled with the package (a replay of a real escalation)."""
    return Path(__file__).resolve().parent.parent / "samples" / "feeds.yaml"
