"""Delivery: hand an alert to its route's sink once, and remember that it was sent.

The ledger (alert id + route -> time sent) is what turns at-least-once processing into
effectively-once for people: an alert replayed after a crash or rebalance finds its id there.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime

from monitor.logs import log
from monitor.metrics import Metrics
from monitor.models import Alert, Delivery, DeliveryOutcome
from monitor.sinks.base import Sink


def ledger_key(alert: Alert) -> str:
    return f"{alert.id}|{alert.route}"


class Deliverer:
    """Sends each alert to its route's sink, at most once per (alert id, route). A failed
    delivery comes back as ``Delivery(outcome="error")`` for the runtime to set aside (a table
    in the embedded runtime, a dead-letter topic in Kafka): nothing is dropped here."""

    def __init__(
        self,
        sinks: Mapping[str, Sink],  # route name -> sink
        ledger: MutableMapping[str, float],
        metrics: Metrics,
    ) -> None:
        self.sinks = sinks
        self.ledger = ledger
        self.metrics = metrics

    async def deliver(self, alert: Alert) -> Delivery:
        key = ledger_key(alert)
        sink = self.sinks.get(alert.route)
        if sink is None:
            # The route was dropped (reload, missing settings): set the alert aside, never lose it.
            self.metrics.dead_letters.labels("deliver").inc()
            return self._result(alert, "", "no_route", f"route {alert.route!r} is not active")
        if key in self.ledger:
            self.metrics.deliveries.labels(sink.name, "duplicate").inc()
            return self._result(alert, sink.name, "duplicate")
        started = time.monotonic()
        try:
            await sink.send(alert)
        except Exception as exc:
            self.metrics.deliveries.labels(sink.name, "error").inc()
            self.metrics.dead_letters.labels("deliver").inc()
            log.error(
                "delivery_failed",
                alert_id=alert.id,
                story_id=alert.story_id,
                route=alert.route,
                sink=sink.name,
                error=str(exc),
            )
            return self._result(alert, sink.name, "error", f"{type(exc).__name__}: {exc}")
        self.ledger[key] = time.time()
        self.metrics.deliveries.labels(sink.name, "ok").inc()
        self.metrics.delivery_duration.labels(sink.name).observe(time.monotonic() - started)
        if alert.fetched_at is not None:
            latency = (datetime.now(UTC) - alert.fetched_at).total_seconds()
            self.metrics.end_to_end.observe(max(0.0, latency))
        log.debug(
            "alert_delivered",
            alert_id=alert.id,
            story_id=alert.story_id,
            route=alert.route,
            kind=alert.kind,
            level=alert.level.name,
        )
        return self._result(alert, sink.name, "ok")

    @staticmethod
    def _result(alert: Alert, sink: str, outcome: DeliveryOutcome, error: str = "") -> Delivery:
        return Delivery(
            alert_id=alert.id,
            route=alert.route,
            sink=sink,
            outcome=outcome,
            error=error,
            at=datetime.now(UTC),
        )
