from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.models import Level, RuleHit, Story, StoryEvent
from monitor.pipeline.alerting import Thread, alert_id, decide
from monitor.pipeline.scoring import score_story
from monitor.rules.models import Corroboration, MatchSpec, Route, Rule, Scoring
from tests.unit.pipeline.helpers import T0, article

RULES = {
    "mt": Rule(id="mt", match=MatchSpec(any=["military and technical"]), weight=40),
    "inv": Rule(id="inv", match=MatchSpec(any=["invasion"]), weight=30, labels={"kind": "war"}),
}
SCORING = Scoring(corroboration=Corroboration(per_outlet=10, max=20))
ROUTES = [
    Route(name="all", sink="list", min_level=Level.low),
    Route(name="desk", sink="list", min_level=Level.high),
]


def story(*hits: RuleHit, sources: tuple[str, ...] = ("a",), reliability: float = 1.0) -> Story:
    return Story(
        id="s-1",
        title="t",
        url="u",
        first_seen=T0,
        last_seen=T0,
        sources=sources,
        reliability=reliability,
        hits=hits,
    )


def hit(rule: str, in_title: bool = False) -> RuleHit:
    return RuleHit(rule_id=rule, phrase=rule, text=rule, in_title=in_title)


def test_score_explains_itself_term_by_term() -> None:
    s = score_story(
        story(hit("mt", True), hit("inv"), sources=("a", "b", "c", "d"), reliability=0.8),
        RULES,
        SCORING,
    )
    labels = [t.label for t in s.terms]
    assert labels[0].startswith("mt (headline")
    assert labels[1].startswith("inv (body") and "×0.3" in labels[1]
    # (40*1.5 + 30*0.5) * 0.8 + min(3*10, 20)
    assert s.value == pytest.approx((60 + 9) * 0.8 + 20)
    assert [t.value for t in s.terms] == [60, 9, 0.8, 20]
    assert s.level is Level.high  # 75.2 < 85


def test_no_rule_no_score_whatever_the_corroboration() -> None:
    s = score_story(story(sources=("a", "b", "c")), RULES, SCORING)
    assert s.value == 0 and s.level is Level.none and not s.terms


def test_removed_rules_count_for_nothing() -> None:
    assert score_story(story(hit("gone")), RULES, SCORING).value == 0


def event(s: Story, copy: str = "t") -> StoryEvent:
    return StoryEvent(story=s, article=article(copy), new_story=True, new_source=True)


NOW = datetime(2021, 12, 14, 13, tzinfo=UTC)


def test_opened_once_then_escalated_per_route() -> None:
    threads: dict[str, Thread] = {}
    low = story(hit("inv"))  # 30: low
    first = decide(event(low), RULES, SCORING, ROUTES, threads, NOW)
    assert [(a.route, a.kind, a.level) for a in first] == [("all", "opened", Level.low)]
    assert first[0].labels == {"kind": "war"}
    # the same story, same level, another copy: nothing
    assert decide(event(low, "copy 2"), RULES, SCORING, ROUTES, threads, NOW) == []
    high = story(hit("mt", True), hit("inv"), sources=("a", "b", "c"))  # 60+9+20 = 89
    second = decide(event(high, "copy 3"), RULES, SCORING, ROUTES, threads, NOW)
    assert [(a.route, a.kind, a.level, a.previous_level) for a in second] == [
        ("all", "escalated", Level.critical, Level.low),
        ("desk", "opened", Level.critical, Level.none),
    ]
    assert threads["s-1|all"].first_alert_id == first[0].id
    assert threads["s-1|all"].alerts == 2


def test_alert_ids_are_deterministic() -> None:
    a = decide(event(story(hit("inv"))), RULES, SCORING, ROUTES, {}, NOW)
    b = decide(event(story(hit("inv"))), RULES, SCORING, ROUTES, {}, NOW)
    assert a[0].id == b[0].id == alert_id("s-1", "all", "opened", Level.low)


def test_a_replayed_event_raises_the_same_alert_again() -> None:
    # at-least-once: the event that opened the thread is redelivered after a crash; its alert
    # may never have gone out, so it is raised again with the same id (the ledger drops repeats)
    threads: dict[str, Thread] = {}
    first = decide(event(story(hit("inv"))), RULES, SCORING, ROUTES, threads, NOW)
    again = decide(event(story(hit("inv"))), RULES, SCORING, ROUTES, threads, NOW)
    assert [a.id for a in again] == [a.id for a in first]
    assert threads["s-1|all"].alerts == 1
    # a crash can lose the outputs of several events whose table writes were kept: an older
    # event replayed after a later one changed the thread still raises its own alert again
    high = story(hit("mt", True), hit("inv"), sources=("a", "b", "c"))
    escalation = decide(event(high, "copy 3"), RULES, SCORING, ROUTES, threads, NOW)
    old = decide(event(story(hit("inv"))), RULES, SCORING, ROUTES, threads, NOW)
    assert [a.id for a in old] == [a.id for a in first]
    assert [a.id for a in decide(event(high, "copy 3"), RULES, SCORING, ROUTES, threads, NOW)] == [
        a.id for a in escalation
    ]
    assert threads["s-1|all"].alerts == 2
