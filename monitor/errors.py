"""Every error the monitor raises on purpose derives from :class:`MonitorError`.

The tree::

    MonitorError
    ├── ConfigError            a settings or feed-list problem a user must fix
    │   └── RuleLoadError      rule, route, scoring files: every issue found, located
    ├── FeedError              one feed could not be fetched or parsed (the others carry on)
    │   ├── FetchError         network, HTTP status, size caps, timeouts
    │   └── ParseError         the bytes are not a feed
    ├── StateError             the state store is unreadable or from an incompatible version
    └── SinkError              a sink could not deliver an alert (not worth retrying)
        ├── RetryableSinkError the destination may accept it later (5xx, 429, timeouts)
        └── SinkConfigError    a sink's settings are missing or invalid (the route is skipped)
"""

from __future__ import annotations

from dataclasses import dataclass


class MonitorError(Exception):
    """Root of the monitor's own errors."""


class ConfigError(MonitorError):
    """A configuration file or setting is invalid."""


@dataclass(frozen=True)
class Issue:
    """One problem in a configuration file, located so an editor can jump to it."""

    path: str
    line: int
    col: int
    field: str
    message: str
    severity: str = "error"  # "error" | "warning"
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.path}:{self.line}:{self.col}: {self.field}: {self.message}"
        if self.severity != "error":
            text = f"{text} [{self.severity}]"
        if self.hint:
            text = f"{text} (hint: {self.hint})"
        return text


class RuleLoadError(ConfigError):
    """Rule, route or scoring files are invalid; ``issues`` lists every problem, in one pass."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class FeedError(MonitorError):
    """A feed failed; the poller logs it, counts it and carries on with the others."""

    def __init__(self, feed: str, message: str, outcome: str = "error") -> None:
        self.feed = feed
        self.outcome = outcome  # metric label: "error" | "timeout"
        super().__init__(f"feed {feed!r}: {message}")


class FetchError(FeedError):
    """The feed's URL could not be fetched."""


class ParseError(FeedError):
    """The fetched bytes are not a usable feed."""


class StateError(MonitorError):
    """The state store cannot be used."""


class SinkError(MonitorError):
    """A sink failed to deliver an alert."""


class RetryableSinkError(SinkError):
    """A failure worth retrying; ``retry_after`` is the destination's own wait, if it said."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class SinkConfigError(SinkError):
    """A sink's settings are missing or invalid."""
