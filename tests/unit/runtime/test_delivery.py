"""Delivery semantics: once per (alert id, route), bounded retries honouring Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime

from monitor.errors import RetryableSinkError, SinkError
from monitor.metrics import Metrics
from monitor.models import Alert, Level
from monitor.runtime.delivery import Deliverer, RetryPolicy
from monitor.sinks.testing import ListSink

NOW = datetime(2021, 12, 14, tzinfo=UTC)


def alert(aid: str = "a1") -> Alert:
    return Alert(
        id=aid,
        story_id="s1",
        route="desk",
        sink="list",
        kind="opened",
        level=Level.high,
        score=70,
        title="t",
        url="https://x.example/",
        created_at=NOW,
    )


class Flaky(ListSink):
    """Fails the first ``failures`` sends with the given error, then delivers."""

    def __init__(self, failures: int, error: Exception) -> None:
        super().__init__()
        self.failures, self.error, self.calls = failures, error, 0

    async def send(self, a: Alert) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        await super().send(a)


def deliverer(sink: ListSink, ledger: dict[str, float], waits: list[float]) -> Deliverer:
    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    return Deliverer({"desk": sink}, ledger, Metrics(), RetryPolicy(attempts=4), sleep)


async def test_retries_with_backoff_then_delivers_once() -> None:
    sink, ledger, waits = Flaky(2, RetryableSinkError("503")), {}, []  # type: ignore[var-annotated]
    d = deliverer(sink, ledger, waits)
    assert (await d.deliver(alert())).outcome == "ok"
    assert len(sink.alerts) == 1 and len(waits) == 2
    assert 0.8 <= waits[0] <= 1.2 and 1.6 <= waits[1] <= 2.4  # exponential, with jitter
    # the same alert again (a replay): never sent twice
    assert (await d.deliver(alert())).outcome == "duplicate"
    assert len(sink.alerts) == 1


async def test_retry_after_is_honoured() -> None:
    sink, waits = Flaky(1, RetryableSinkError("429", retry_after=7)), []  # type: ignore[var-annotated]
    assert (await deliverer(sink, {}, waits).deliver(alert())).outcome == "ok"
    assert waits == [7]


async def test_attempts_are_bounded_and_the_alert_is_reported_not_dropped() -> None:
    sink, ledger, waits = Flaky(99, RetryableSinkError("500")), {}, []  # type: ignore[var-annotated]
    result = await deliverer(sink, ledger, waits).deliver(alert())
    assert result.outcome == "error" and "500" in result.error
    assert sink.calls == 4 and len(waits) == 3 and ledger == {}


async def test_permanent_errors_are_not_retried() -> None:
    sink, waits = Flaky(99, SinkError("404 no_service")), []  # type: ignore[var-annotated]
    result = await deliverer(sink, {}, waits).deliver(alert())
    assert result.outcome == "error" and sink.calls == 1 and waits == []
