"""The one sink interface every destination implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

from monitor.models import Alert


class Sink(ABC):
    """Delivers alerts somewhere. ``send`` raises :class:`monitor.errors.SinkError` (or any
    exception) on failure; the delivery stage counts, retries and sets aside — sinks stay simple."""

    name: str = "sink"

    @abstractmethod
    async def send(self, alert: Alert) -> None: ...

    async def close(self) -> None:  # noqa: B027 - optional hook, most sinks hold nothing
        """Release connections and flush buffers."""
