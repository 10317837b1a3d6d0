"""A sink that keeps alerts in a list: for tests and backtests (nothing leaves the process)."""

from __future__ import annotations

from monitor.models import Alert, Digest
from monitor.sinks.base import Sink


class ListSink(Sink):
    """``alerts``: every alert received, whether sent alone or inside a digest (in arrival
    order); ``digests``: the digests themselves."""

    name = "list"

    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        self.digests: list[Digest] = []

    async def send(self, alert: Alert) -> None:
        self.alerts.append(alert)

    async def send_digest(self, digest: Digest) -> None:
        self.digests.append(digest)
        self.alerts.extend(digest.alerts)
