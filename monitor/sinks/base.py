"""The one sink interface every destination implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

from monitor.models import Alert, Digest


class Sink(ABC):
    """Delivers alerts somewhere. ``send`` and ``send_digest`` raise
    :class:`monitor.errors.SinkError` (or any exception) on failure; the delivery stage counts,
    retries and sets aside — sinks stay simple.

    ``send`` gets one alert of any kind (opened, escalated, updated, resolved). ``send_digest``
    gets several alerts for one route as one message (a group window, quiet hours or a rate
    limit held them), at most one per story, each the story's latest state."""

    name: str = "sink"

    @abstractmethod
    async def send(self, alert: Alert) -> None: ...

    @abstractmethod
    async def send_digest(self, digest: Digest) -> None: ...

    async def close(self) -> None:  # noqa: B027 - optional hook, most sinks hold nothing
        """Release connections and flush buffers."""
