"""The feed list (YAML): which outlets to poll, how often, and how far to trust them."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from monitor import durations
from monitor.durations import parse_duration
from monitor.errors import ConfigError, Issue, RuleLoadError
from monitor.yamlfile import Located, load_model, position

_DUPLICATE = "duplicate feed name"


def names_private_host(url: str) -> bool:
    """Whether a URL names a loopback or private host literally (``localhost``, an RFC 1918 or
    loopback address): an operator who writes one means it. Names that merely resolve to one
    do not count: what a name resolves to can change under us."""
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return (ip.is_private or ip.is_loopback) and not ip.is_link_local


class FeedSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # The same alphabet as rule ids (and as the loader's error message says): '.' included.
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=64)]
    url: str = Field(min_length=1)
    reliability: float = Field(default=1.0, gt=0, le=1)
    language: str = Field(default="en", pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")
    # Seconds; written as a duration (15m, 1h) or a number of seconds.
    interval: Annotated[float, WithJsonSchema(durations.JSON_SCHEMA, mode="validation")] = Field(
        default=900.0, ge=10, le=7 * 86400
    )
    enabled: bool = True
    # Groups the feed belongs to (wires, state-media, ru, ...): rules name feeds or labels in
    # `sources: {only: [...]}` / `{except: [...]}`. Carried onto each Article.
    labels: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=64)]] = Field(
        default_factory=list
    )
    # The feed carries only teasers: fetch each new article's page and take its main text, so
    # rules see the body (monitor/feeds/fulltext.py).
    fetch_article: bool = False
    # May this feed's polls, article pages and WebSub hub reach private addresses (an intranet
    # feed)? Link-local and cloud metadata addresses stay refused whatever it says. A feed URL
    # written with a private address (127.0.0.1, 10.1.2.3, localhost) allows it by itself: the
    # operator has said so by writing it (monitor/feeds/netguard.py).
    allow_private: bool = False
    # Subscribe to the WebSub hub the feed advertises (when MONITOR_WEBSUB_CALLBACK_URL is set).
    websub: bool = True

    @property
    def private_allowed(self) -> bool:
        """Whether fetches for this feed may reach private addresses (see ``allow_private``)."""
        return self.allow_private or names_private_host(self.url)

    @field_validator("interval", mode="before")
    @classmethod
    def _duration(cls, v: object) -> float:
        return parse_duration(v).total_seconds()

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
            raise ValueError(f"{_DUPLICATE}s: {', '.join(dupes)}")
        return self


def load_feeds(path: Path | str) -> list[FeedSource]:
    """Load a feed list; relative paths in ``url`` resolve against the file's folder.

    Every problem comes back in one :class:`RuleLoadError`, each located at ``path:line:col``:
    a duplicate name points at the second entry, a missing file at its ``url``, and both are
    found even when other entries have errors of their own."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{file}: feed list not found")
    model, issues, located = load_model(file, FeedList)
    # The model's own duplicate check cannot say where the duplicate is; ours below can.
    issues = [i for i in issues if not i.message.startswith(_DUPLICATE)]
    issues += _raw_issues(file, located)
    if model is None or issues:
        raise RuleLoadError(sorted(issues, key=lambda i: (i.line, i.col)))
    out = []
    for feed in model.feeds:
        if "://" not in feed.url:
            feed = feed.model_copy(update={"url": (file.parent / feed.url).resolve().as_uri()})
        if feed.enabled:
            out.append(feed)
    return out


def _raw_issues(file: Path, located: Located) -> list[Issue]:
    """Duplicate names and missing local files, read from the raw YAML so that they are
    reported alongside (not after fixing) the entries' other errors."""
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []  # load_model has reported it
    feeds = data.get("feeds") if isinstance(data, dict) else None
    if not isinstance(feeds, list):
        return []
    issues: list[Issue] = []
    first: dict[str, int] = {}
    for i, entry in enumerate(feeds):
        if not isinstance(entry, dict):
            continue
        name, url = entry.get("name"), entry.get("url")
        if isinstance(name, str) and name:
            if name in first:
                line, col = position(located, ("feeds", i, "name"))
                message = f"{_DUPLICATE} {name!r} (first at feeds[{first[name]}])"
                issues.append(Issue(str(file), line, col, f"feeds[{i}].name", message))
            else:
                first[name] = i
        if isinstance(url, str) and url.strip() and "://" not in url:
            target = (file.parent / url).resolve()
            if not target.exists():
                line, col = position(located, ("feeds", i, "url"))
                issues.append(
                    Issue(str(file), line, col, f"feeds[{i}].url", f"no such file: {target}")
                )
    return issues


def sample_feeds_path() -> Path:
    """The feed list bundled with the package (a replay of a real escalation)."""
    return Path(__file__).resolve().parent.parent / "samples" / "feeds.yaml"


def poll_deadline(feeds: list[FeedSource]) -> float:
    """Seconds without a completed polling round after which a process is not ready: three of
    its most frequent feed's intervals (one slow round is not an outage), at least a minute."""
    intervals = [f.interval for f in feeds if f.enabled] or [900.0]
    return max(60.0, 3 * min(intervals))
