"""Delivery: hand an alert to its route's sink once, and remember that it was sent.

The ledger (alert id + route -> time sent) is what turns at-least-once processing into
effectively-once for people: an alert replayed after a crash or rebalance finds its id there.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.errors import RetryableSinkError
from monitor.logs import log
from monitor.metrics import Metrics
from monitor.models import Alert, Delivery, DeliveryOutcome, Digest
from monitor.settings import Settings
from monitor.sinks.base import Sink


def ledger_key(alert: Alert) -> str:
    return f"{alert.id}|{alert.route}"


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter; a destination's Retry-After wins
    (capped at ``max_delay``). After ``attempts`` the alert is set aside, not dropped."""

    attempts: int = 8
    base_delay: float = 1.0
    max_delay: float = 60.0
    jitter: float = 0.2

    @classmethod
    def of(cls, settings: Settings) -> RetryPolicy:
        return cls(attempts=settings.delivery_attempts, max_delay=settings.delivery_max_delay)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_delay)
        backoff = min(self.base_delay * 2.0 ** (attempt - 1), self.max_delay)
        return backoff * random.uniform(1 - self.jitter, 1 + self.jitter)


class Deliverer:
    """Sends each alert to its route's sink, at most once per (alert id, route). A failed
    delivery comes back as ``Delivery(outcome="error")`` for the runtime to set aside (a table
    in the embedded runtime, a dead-letter topic in Kafka): nothing is dropped here.

    ``inline_retries``: retry a failing destination here, waiting out the backoff (the
    embedded runtime, whose routes each have a delivery lane of their own), or try once and
    answer ``outcome="retry"`` for the caller to hold the alert and try again later (the
    Kafka deliver agent, which handles every route in turn: waiting here would hold up the
    others for minutes)."""

    def __init__(
        self,
        sinks: Mapping[str, Sink],  # route name -> sink
        ledger: MutableMapping[str, float],
        metrics: Metrics,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        inline_retries: bool = True,
    ) -> None:
        self.sinks = sinks
        self.inline_retries = inline_retries
        self.ledger = ledger
        self.metrics = metrics
        self.retry = retry or RetryPolicy()
        metrics.start_series(sinks=sorted({s.name for s in sinks.values()}), pipeline=True)
        self._sleep = sleep

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
            await self._send_with_retries(sink, alert.id, alert.route, lambda: sink.send(alert))
        except RetryableSinkError as exc:
            if not self.inline_retries:
                return self._later(alert, sink.name, exc)
            return self._failed(alert, sink.name, exc)
        except Exception as exc:
            return self._failed(alert, sink.name, exc)
        self.ledger[key] = time.time()
        self.metrics.deliveries.labels(sink.name, "ok").inc()
        self.metrics.delivery_duration.labels(sink.name).observe(time.monotonic() - started)
        if alert.fetched_at is not None:
            latency = (datetime.now(UTC) - alert.fetched_at).total_seconds()
            self.metrics.end_to_end.observe(max(0.0, latency))
        log.info(
            "alert_delivered",
            alert_id=alert.id,
            story_id=alert.story_id,
            route=alert.route,
            kind=alert.kind,
            alert_level=alert.level.name,
        )
        return self._result(alert, sink.name, "ok")

    async def deliver_digest(self, digest: Digest) -> list[Delivery]:
        """One message for several alerts; each alert gets its own outcome (and ledger entry)."""
        fresh = [a for a in digest.alerts if ledger_key(a) not in self.ledger]
        sink = self.sinks.get(digest.route)
        done = [
            self._result(a, sink.name if sink else "", "duplicate")
            for a in digest.alerts
            if a not in fresh
        ]
        if len(fresh) <= 1 or sink is None:
            return done + [await self.deliver(a) for a in fresh]
        digest = digest.model_copy(update={"alerts": tuple(fresh)})
        started = time.monotonic()
        try:
            await self._send_with_retries(
                sink, digest.id, digest.route, lambda: sink.send_digest(digest)
            )
        except RetryableSinkError as exc:
            if not self.inline_retries:
                return done + [self._later(a, sink.name, exc) for a in fresh]
            return done + self._digest_failed(digest, fresh, sink.name, exc)
        except Exception as exc:
            return done + self._digest_failed(digest, fresh, sink.name, exc)
        now = time.time()
        elapsed = time.monotonic() - started
        for a in fresh:
            self.ledger[ledger_key(a)] = now
        self.metrics.deliveries.labels(sink.name, "ok").inc(len(fresh))
        self.metrics.digests.labels(digest.route, digest.reason).inc()
        self.metrics.delivery_duration.labels(sink.name).observe(elapsed)
        log.info("digest_delivered", digest_id=digest.id, route=digest.route, alerts=len(fresh))
        return done + [self._result(a, sink.name, "ok") for a in fresh]

    def _failed(self, alert: Alert, sink: str, exc: Exception) -> Delivery:
        return self.failed(alert, sink, f"{type(exc).__name__}: {exc}")

    def failed(self, alert: Alert, sink: str, error: str, attempts: int = 0) -> Delivery:
        """A delivery given up on: counted, logged, and its result for the caller to keep."""
        self.metrics.deliveries.labels(sink, "error").inc()
        self.metrics.dead_letters.labels("deliver").inc()
        log.error(
            "delivery_failed",
            alert_id=alert.id,
            story_id=alert.story_id,
            route=alert.route,
            sink=sink,
            attempts=attempts or None,
            error=error,
        )
        return self._result(alert, sink, "error", error)

    def _digest_failed(
        self, digest: Digest, fresh: list[Alert], sink: str, exc: Exception
    ) -> list[Delivery]:
        self.metrics.deliveries.labels(sink, "error").inc(len(fresh))
        self.metrics.dead_letters.labels("deliver").inc(len(fresh))
        log.error(
            "digest_delivery_failed",
            digest_id=digest.id,
            route=digest.route,
            sink=sink,
            alerts=len(fresh),
            error=str(exc),
        )
        error = f"{type(exc).__name__}: {exc}"
        return [self._result(a, sink, "error", error) for a in fresh]

    def _later(self, alert: Alert, sink: str, exc: RetryableSinkError) -> Delivery:
        """A retryable failure the caller holds and tries again later (not inline_retries)."""
        self.metrics.deliveries.labels(sink, "retry").inc()
        error = f"{type(exc).__name__}: {exc}"
        result = self._result(alert, sink, "retry", error)
        return result.model_copy(update={"retry_after": exc.retry_after})

    def settle(self, alert: Alert, outcome: DeliveryOutcome) -> Delivery:
        """An alert that is not to be sent (silenced, superseded within a digest): recorded in
        the ledger so a replay cannot send it later, and counted."""
        sink = self.sinks.get(alert.route)
        name = sink.name if sink else ""
        self.ledger.setdefault(ledger_key(alert), time.time())
        self.metrics.deliveries.labels(name, outcome).inc()
        return self._result(alert, name, outcome)

    async def _send_with_retries(
        self, sink: Sink, what: str, route: str, send: Callable[[], Awaitable[None]]
    ) -> None:
        attempts = self.retry.attempts if self.inline_retries else 1
        for attempt in range(1, attempts + 1):
            try:
                await send()
                return
            except RetryableSinkError as exc:
                if attempt == attempts:
                    raise
                wait = self.retry.delay(attempt, exc.retry_after)
                self.metrics.deliveries.labels(sink.name, "retry").inc()
                log.warning(
                    "delivery_retry",
                    alert_id=what,
                    route=route,
                    sink=sink.name,
                    attempt=attempt,
                    wait=round(wait, 2),
                    error=str(exc),
                )
                await self._sleep(wait)

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
