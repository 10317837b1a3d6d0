"""What the reliability scenarios share: the seeded randomness, waiting, and the two invariants
checked against a Kafka deployment."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from monitor.models import Article
from tests.integration.kafka_support import (
    Deployment,
    TopicTail,
    delivered_twice,
    jsonl_lines,
    undecided,
)


@dataclass
class Scenario:
    name: str
    published: int = 0  # distinct articles published
    decided: int = 0  # of those, the ones that reached a decision (alert or not)
    delivered: int = 0  # alert deliveries seen at the destinations
    duplicates: int = 0  # (alert id, route) delivered more than once
    lost: int = 0  # published articles that reached no decision
    seconds: float = 0.0
    outcome: str = "?"
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(text)


def seeded(scenario: Scenario) -> random.Random:
    """A random generator whose seed is in the report: MONITOR_RELIABILITY_SEED=<seed> replays
    a run's random choices (kill points, fault timings)."""
    given = os.environ.get("MONITOR_RELIABILITY_SEED")
    seed = int(given) if given else random.SystemRandom().randrange(1 << 31)
    scenario.note(f"seed {seed} (MONITOR_RELIABILITY_SEED={seed} repeats this run's choices)")
    return random.Random(seed)


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    d: Deployment | None = None,
    every: float = 1.0,
) -> float:
    """Seconds it took; fails after ``timeout`` (with the workers' last log lines)."""
    started = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - started
        if d is not None:
            for proc in d.workers:
                if proc.poll() is not None and proc.returncode not in (0, -9, -15):
                    raise AssertionError(f"a worker exited {proc.returncode}\n{d.log_tail()}")
        if time.monotonic() - started > timeout:
            tail = d.log_tail() if d is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")
        time.sleep(every)


def jsonl_alerts(path: Path) -> list[dict[str, object]]:
    return jsonl_lines(path)


def alert_keys(d: Deployment, route: str) -> set[tuple[str, str]]:
    """(alert id, route) of every alert for ``route`` on news.alerts, replays folded."""
    tail = TopicTail(d.bootstrap, d.topic("news.alerts"))
    try:
        keys = set()
        for _, value in tail.read():
            try:
                alert = json.loads(value)
                if alert["route"] == route:
                    keys.add((str(alert["id"]), route))
            except (ValueError, TypeError, KeyError):
                continue  # a poison record a test put there
        return keys
    finally:
        tail.close()


def settle_deliveries(d: Deployment, route: str, timeout: float = 60) -> None:
    """Wait until every alert raised for ``route`` (the JSON-lines sink) is in the file."""

    def done() -> bool:
        delivered = {(str(a["alert_id"]), str(a["route"])) for a in d.alerts()}
        return alert_keys(d, route) <= delivered

    wait_until(done, timeout, f"every {route} alert delivered", d, every=2.0)


def check_kafka_invariants(
    d: Deployment, published: list[Article], decided: set[str], scenario: Scenario
) -> list[dict[str, object]]:
    """Every published article reached a decision; no alert id went twice to a route. Counts
    into the report first, so a failure shows them too."""
    alerts = d.alerts()
    twice = delivered_twice(alerts)
    lost = undecided(published, decided)
    distinct = {a.id for a in published}
    scenario.published = len(distinct)
    scenario.decided = len(distinct) - len(lost)
    scenario.delivered = len(alerts)
    scenario.duplicates = sum(n - 1 for n in twice.values())
    scenario.lost = len(lost)
    assert not twice, f"delivered more than once: {twice}"
    assert not lost, f"{len(lost)} articles never reached a decision: {sorted(lost)[:10]}"
    return alerts
