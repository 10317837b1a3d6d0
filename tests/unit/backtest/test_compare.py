"""Two replays compared: gains, losses and level changes, attributed to rules."""

from __future__ import annotations

from monitor.backtest.compare import LEVELS, Pair, compare
from monitor.backtest.replay import replay
from monitor.models import Article, Level
from monitor.rules.models import MatchSpec, Rule
from monitor.rules.ruleset import RuleSet
from tests.unit.backtest.conftest import Derive


def test_same_rules_change_nothing(ruleset: RuleSet, samples: list[Article]) -> None:
    run = replay(ruleset, samples)
    cmp = compare(ruleset, ruleset, run, replay(ruleset, samples))
    assert (cmp.gained, cmp.lost, cmp.level_changes) == ([], [], [])
    assert not any(r.differs for r in cmp.rules)
    assert {r.status for r in cmp.rules} == {"unchanged"}
    assert not cmp.scoring_changed and not cmp.routes_changed
    assert cmp.mismatched_articles == 0
    assert sum(cmp.levels("new").values()) == len(run.alerted)


def test_a_new_rule_gains_stories_under_its_name(
    ruleset: RuleSet, derive: Derive, samples: list[Article]
) -> None:
    # "price war" is a trap the starter rules rightly ignore; a careless rule would not
    careless = Rule(id="price-war", match=MatchSpec(any=["price war"]), weight=50)
    new_rules = derive(add=(careless,))
    cmp = compare(ruleset, new_rules, replay(ruleset, samples), replay(new_rules, samples))
    assert cmp.gained, "the price-war article should alert now"
    assert all("price-war" in c.new_rules and c.old is Level.none for c in cmp.gained)
    assert any("price war" in c.title.lower() for c in cmp.gained)
    row = next(r for r in cmp.rules if r.rule == "price-war")
    assert row.status == "added"
    assert row.gained == len(cmp.gained)
    assert row.articles.old == 0 and row.articles.new >= 1
    assert cmp.rules[0].differs  # rows that differ come first
    assert cmp.lost == []


def test_a_removed_rule_loses_its_stories(
    ruleset: RuleSet, derive: Derive, samples: list[Article]
) -> None:
    old = replay(ruleset, samples)
    rule = "embassy-evacuation"
    alone = {k for k, s in old.alerted.items() if s.rules == {rule}}  # no other rule alerts
    assert alone
    new_rules = derive(drop=(rule,))
    cmp = compare(ruleset, new_rules, old, replay(new_rules, samples))
    assert {c.story_id for c in cmp.lost} == alone
    assert all(c.old_rules == (rule,) and c.new is Level.none for c in cmp.lost)
    row = next(r for r in cmp.rules if r.rule == rule)
    assert row.status == "removed"
    assert row.stories == Pair(len(alone), 0)
    assert row.lost == len(alone)
    assert sum(row.levels[lv].old for lv in LEVELS) == row.stories.old


def test_a_heavier_rule_changes_levels(
    ruleset: RuleSet, derive: Derive, samples: list[Article]
) -> None:
    rule = "troop-buildup"
    new_rules = derive(weights={rule: ruleset.by_id[rule].weight * 3})
    cmp = compare(ruleset, new_rules, replay(ruleset, samples), replay(new_rules, samples))
    assert cmp.level_changes
    assert all(c.new > c.old and rule in c.rules for c in cmp.level_changes)
    row = next(r for r in cmp.rules if r.rule == rule)
    assert row.status == "changed"
    assert row.level_changes == len(cmp.level_changes)
    # the highest new level first
    tops = [max(c.old, c.new) for c in cmp.level_changes]
    assert tops == sorted(tops, reverse=True)
