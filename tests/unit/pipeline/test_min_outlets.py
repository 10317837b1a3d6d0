"""min_outlets: a rule counts towards a story's score once enough distinct outlets carry it."""

from __future__ import annotations

import pytest

from monitor.metrics import Metrics
from monitor.models import Level, RuleHit, Story
from monitor.pipeline.scoring import score_story
from monitor.rules.models import MatchSpec, Route, Rule, Scoring
from monitor.rules.ruleset import RuleSet
from monitor.runtime.stages import Pipeline
from tests.unit.pipeline.helpers import article, story_of

SCORING = Scoring()  # levels 20/40/60/85, corroboration 10 per outlet up to 30
RULES = {
    "rumour": Rule(
        id="rumour", match=MatchSpec(any=["coup"]), weight=40, min_outlets=3
    ),  # alone: nothing until 3 outlets
    "unrest": Rule(id="unrest", match=MatchSpec(any=["unrest"]), weight=20),
}


def story(*rules: str, outlets: int) -> Story:
    return story_of(*(RuleHit(rule_id=r, phrase=r, text=r) for r in rules), outlets=outlets)


def test_rule_counts_for_nothing_below_its_outlets() -> None:
    for outlets in (1, 2):
        s = score_story(story("rumour", outlets=outlets), RULES, SCORING)
        assert s.value == 0 and s.level is Level.none and not s.terms


def test_rule_counts_in_full_from_its_outlets() -> None:
    s = score_story(story("rumour", outlets=3), RULES, SCORING)
    assert s.value == pytest.approx(40 + 20)  # weight + corroboration for 2 more outlets
    assert s.terms[0].label.startswith("rumour (body")


def test_a_waiting_rule_is_explained_beside_the_rules_that_count() -> None:
    s = score_story(story("rumour", "unrest", outlets=2), RULES, SCORING)
    assert s.value == pytest.approx(20 + 10)
    assert [t.label for t in s.terms][-1] == "rumour: waits for 3 outlets (2 so far)"
    assert s.terms[-1].value == 0


def test_min_outlets_is_validated() -> None:
    with pytest.raises(ValueError):
        Rule(id="r", match=MatchSpec(any=["x"]), weight=1, min_outlets=0)
    assert Rule(id="r", match=MatchSpec(any=["x"]), weight=1).min_outlets == 1


BODY = (
    "Soldiers surrounded the presidential palace before dawn and state television went off the "
    "air, in what officials described as an attempted coup; the capital's airport was closed and "
    "gunfire was heard near the parliament building amid unrest in the main square."
)
TITLE = "Soldiers surround the presidential palace"  # no rule in the headline: no title boost


def pipeline(*rules: Rule) -> Pipeline:
    ruleset = RuleSet(list(rules), Scoring(), [])
    routes = [Route(name="desk", sink="list", min_level=Level.low)]
    return Pipeline(ruleset, routes, {}, {}, {}, {}, Metrics())


def test_the_alert_opens_when_the_third_outlet_joins() -> None:
    pipe = pipeline(RULES["rumour"])
    kinds = []
    for i, source in enumerate(("a", "b", "c", "d")):
        a = article(TITLE, BODY, source=source, minutes=10 * i)
        kinds.append([(x.kind, x.level.name) for x in pipe.process(a)])
    # 40 + 2 x 10 corroboration = 60 at the third outlet: high at once
    assert kinds[:3] == [[], [], [("opened", "high")]]
    assert kinds[3] == []  # a fourth outlet: 70, still high (no repeat_interval: no update)


def test_a_waiting_rule_escalates_a_story_when_its_outlets_arrive() -> None:
    pipe = pipeline(RULES["rumour"], RULES["unrest"])
    kinds = []
    for i, source in enumerate(("a", "b", "c")):
        a = article(TITLE, BODY, source=source, minutes=10 * i)
        kinds.append([(x.kind, x.level.name) for x in pipe.process(a)])
    # 1: unrest 20 (low); 2: 20 + 10 = 30 (low, no repeat); 3: 40 + 20x0.3 + 20 = 66 (high)
    assert kinds == [[("opened", "low")], [], [("escalated", "high")]]


def test_near_duplicates_from_one_outlet_do_not_count_as_more_outlets() -> None:
    pipe = pipeline(RULES["rumour"])
    out = []
    for i in range(4):
        a = article(
            TITLE,
            BODY + f" Update {i}.",
            source="a",
            url=f"https://a.example/{i}",
            minutes=i,
        )
        out += pipe.process(a)
    assert out == []
    [only] = pipe.stories.values()
    assert only.articles == 4 and only.sources == ("a",)
