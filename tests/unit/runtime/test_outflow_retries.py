"""Retries that do not wait in line (the Kafka deliver agent's way): a failing destination's
alert is held for its backoff and tried again when due, while other routes' alerts go out at
once; alerts arriving for the failing route meanwhile join it; out of attempts, the alert is
dead, never dropped; and nothing is sent twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.errors import RetryableSinkError
from monitor.metrics import Metrics
from monitor.models import Alert, DeadAlert, Level
from monitor.pipeline.dispatch import Dispatcher
from monitor.rules.models import Route
from monitor.runtime.delivery import Deliverer, RetryPolicy
from monitor.runtime.outflow import Outflow
from monitor.sinks.testing import ListSink

NOW = datetime(2021, 12, 14, 12, tzinfo=UTC)


def alert(aid: str, route: str, story: str = "s1") -> Alert:
    return Alert(
        id=aid,
        story_id=story,
        route=route,
        sink="list",
        kind="opened",
        level=Level.high,
        score=70,
        title=f"title {aid}",
        url="https://x.example/",
        created_at=NOW,
    )


class Down(ListSink):
    """Refuses every send while ``down``; counts the tries."""

    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__()
        self.down, self.tries, self.retry_after = True, 0, retry_after

    async def send(self, a: Alert) -> None:
        self.tries += 1
        if self.down:
            raise RetryableSinkError("connection refused", self.retry_after)
        await super().send(a)

    async def send_digest(self, digest):  # type: ignore[no-untyped-def]
        self.tries += 1
        if self.down:
            raise RetryableSinkError("connection refused", self.retry_after)
        await super().send_digest(digest)


class Setup:
    def __init__(self, attempts: int = 4, retry_after: float | None = None) -> None:
        self.email, self.slack = Down(retry_after), ListSink()
        self.slack.name = "slack-list"
        self.ledger: dict[str, float] = {}
        self.dead: list[DeadAlert] = []
        self.held: dict = {}  # type: ignore[type-arg]

        async def no_waiting(seconds: float) -> None:
            raise AssertionError(f"the deliverer waited {seconds}s in line")

        self.deliverer = Deliverer(
            {"email": self.email, "slack": self.slack},
            self.ledger,
            Metrics(),
            RetryPolicy(attempts=attempts, base_delay=1.0, max_delay=60.0, jitter=0.0),
            no_waiting,
            inline_retries=False,
        )
        routes = [Route(name="email", sink="list"), Route(name="slack", sink="list")]
        self.dispatcher = Dispatcher(routes, self.held, {})

        async def keep(dead: DeadAlert) -> None:
            self.dead.append(dead)

        self.outflow = Outflow(self.dispatcher, self.deliverer, {}, keep, Metrics())


async def test_a_failing_route_holds_its_alert_and_the_others_go_out_at_once() -> None:
    s = Setup()
    [first] = await s.outflow.admit(alert("e1", "email"), NOW)
    assert first.outcome == "retry" and s.email.tries == 1
    [other] = await s.outflow.admit(alert("k1", "slack"), NOW)
    assert other.outcome == "ok" and [a.id for a in s.slack.alerts] == ["k1"]
    # not due before its backoff (1 s), then tried again: still down, held longer (2 s)
    assert await s.outflow.flush(NOW + timedelta(seconds=0.5)) == []
    [again] = await s.outflow.flush(NOW + timedelta(seconds=1))
    assert again.outcome == "retry" and s.email.tries == 2
    assert await s.outflow.flush(NOW + timedelta(seconds=2.5)) == []
    # an alert arriving for the failing route meanwhile joins the held one
    assert await s.outflow.admit(alert("e2", "email", story="s2"), NOW + timedelta(seconds=2)) == []
    assert {h.alert.id: h.reason for h in s.held.values()} == {"e1": "retry", "e2": "retry"}
    s.email.down = False
    sent = await s.outflow.flush(NOW + timedelta(seconds=3))
    assert {d.alert_id for d in sent if d.outcome == "ok"} == {"e1", "e2"}
    assert s.email.digests and {a.id for a in s.email.digests[0].alerts} == {"e1", "e2"}
    assert s.email.digests[0].reason == "retry"
    assert s.held == {} and s.dead == []
    assert set(s.ledger) == {"e1|email", "e2|email", "k1|slack"}
    # a replay after a crash sends nothing twice
    [replayed] = await s.outflow.admit(alert("e1", "email"), NOW + timedelta(seconds=9))
    assert replayed.outcome == "duplicate"


async def test_out_of_attempts_the_alert_is_dead_not_dropped() -> None:
    s = Setup(attempts=3)
    await s.outflow.admit(alert("e1", "email"), NOW)
    at = NOW
    for _ in range(2):
        at += timedelta(seconds=60)
        results = await s.outflow.flush(at)
    assert [r.outcome for r in results] == ["error"]
    assert s.email.tries == 3
    [dead] = s.dead
    assert dead.alert.id == "e1" and "connection refused" in dead.delivery.error
    assert s.held == {} and "e1|email" not in s.ledger
    assert await s.outflow.flush(at + timedelta(hours=1)) == []  # nothing left to try


@pytest.mark.parametrize("retry_after", [7.0, 600.0])
async def test_the_destinations_retry_after_sets_the_wait_capped(retry_after: float) -> None:
    s = Setup(retry_after=retry_after)
    await s.outflow.admit(alert("e1", "email"), NOW)
    [held] = s.held.values()
    assert held.reason == "retry" and held.attempts == 1
    assert held.release_at == NOW + timedelta(seconds=min(retry_after, 60.0))
