"""A story's thread on a route: opened, escalated, updated (throttled), resolved, reopened."""

from __future__ import annotations

from datetime import timedelta

from monitor.models import Alert, Level, RuleHit, Story, StoryEvent
from monitor.pipeline.alerting import THREAD_RETENTION, Thread, decide, sweep
from monitor.rules.models import MatchSpec, Route, Rule, Scoring
from tests.unit.pipeline.helpers import T0, article

RULES = {"inv": Rule(id="inv", match=MatchSpec(any=["invasion"]), weight=50)}
SCORING = Scoring()
ROUTE = Route(
    name="desk",
    sink="list",
    min_level=Level.low,
    repeat_interval="1h",
    resolve_after="6h",
)
QUIET_ROUTE = Route(name="plain", sink="list", min_level=Level.low)


def event(copy: int, sources: int = 1) -> StoryEvent:
    story = Story(
        id="s-1",
        title="Invasion fears grow",
        url="https://a.example/1",
        first_seen=T0,
        last_seen=T0,
        articles=copy,
        sources=tuple(f"o{i}" for i in range(sources)),
        hits=(RuleHit(rule_id="inv", phrase="invasion", text="invasion", in_title=True),),
    )
    return StoryEvent(
        story=story, article=article(f"copy {copy}"), new_story=copy == 1, new_source=True
    )


def run(ev: StoryEvent, threads: dict[str, Thread], minutes: float) -> list[Alert]:
    return decide(
        ev, RULES, SCORING, [ROUTE, QUIET_ROUTE], threads, T0 + timedelta(minutes=minutes)
    )


def test_updates_are_throttled_to_the_repeat_interval() -> None:
    threads: dict[str, Thread] = {}
    assert [a.kind for a in run(event(1), threads, 0)] == ["opened", "opened"]
    # copies within the hour: silence on both routes
    assert run(event(2), threads, 10) == []
    assert run(event(3), threads, 50) == []
    # after the interval, one update on the route that asks for them, none on the other
    updated = run(event(4), threads, 61)
    assert [(a.route, a.kind, a.articles) for a in updated] == [("desk", "updated", 4)]
    assert run(event(5), threads, 90) == []
    again = run(event(6), threads, 122)
    assert [a.kind for a in again] == ["updated"]
    assert len({a.id for a in updated + again}) == 2  # each update its own id


def test_a_replayed_update_keeps_its_id() -> None:
    threads: dict[str, Thread] = {}
    run(event(1), threads, 0)
    first = run(event(2), threads, 61)
    replay = run(event(2), threads, 62)
    assert [a.id for a in replay] == [a.id for a in first]


def test_resolved_after_quiet_then_reopened_in_the_same_thread() -> None:
    threads: dict[str, Thread] = {}
    opened = run(event(1), threads, 0)
    run(event(2), threads, 30)  # activity: the quiet clock restarts
    routes = [ROUTE, QUIET_ROUTE]
    assert sweep(threads, routes, T0 + timedelta(hours=6)) == []  # 5.5 h quiet
    resolved = sweep(threads, routes, T0 + timedelta(hours=6, minutes=31))
    assert [(a.route, a.kind, a.level) for a in resolved] == [("desk", "resolved", opened[0].level)]
    assert resolved[0].title == "Invasion fears grow"
    assert sweep(threads, routes, T0 + timedelta(hours=9)) == []  # once
    back = run(event(3), threads, 60 * 10)
    desk = next(a for a in back if a.route == "desk")
    assert desk.kind == "opened" and desk.id != opened[0].id
    assert threads["s-1|desk"].first_alert_id == opened[0].id  # one thread in mail and Slack


def test_long_quiet_threads_are_forgotten() -> None:
    threads: dict[str, Thread] = {}
    run(event(1), threads, 0)
    later = T0 + THREAD_RETENTION + timedelta(minutes=1)
    sweep(threads, [ROUTE, QUIET_ROUTE], later)
    assert threads == {}


def test_sweep_only_touches_owned_stories() -> None:
    threads: dict[str, Thread] = {}
    run(event(1), threads, 0)
    late = T0 + timedelta(hours=7)
    assert sweep(threads, [ROUTE], late, owns=lambda story: story != "s-1") == []
    assert len(sweep(threads, [ROUTE], late)) == 1
