"""A sink that keeps alerts in a list: for tests and backtests (nothing leaves the process)."""

from __future__ import annotations

from monitor.models import Alert
from monitor.sinks.base import Sink


class ListSink(Sink):
    name = "list"

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    async def send(self, alert: Alert) -> None:
        self.alerts.append(alert)
