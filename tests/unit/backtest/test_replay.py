"""One rule set over the sample feeds: the pipeline's own stages, on the news' clock."""

from __future__ import annotations

from monitor.backtest.replay import CATCH_ALL, placement_mismatches, replay
from monitor.metrics import Metrics
from monitor.models import Article, Level
from monitor.rules.ruleset import RuleSet
from monitor.runtime.stages import Pipeline
from tests.unit.backtest.conftest import Derive


def test_replay_counts_what_the_pipeline_does(ruleset: RuleSet, samples: list[Article]) -> None:
    ticks: list[int] = []
    run = replay(ruleset, samples, lambda: ticks.append(1))
    assert len(ticks) == len(samples) == run.articles
    # the same stage code driven directly, as the embedded runtime drives it
    pipe = Pipeline(ruleset, ruleset.routes, {}, {}, {}, {}, Metrics())
    levels: dict[str, Level] = {}
    for a in samples:
        for alert in pipe.process(a):
            levels[alert.story_id] = max(levels.get(alert.story_id, Level.none), alert.level)
    assert run.stories == pipe.counts.stories
    assert {k: s.level for k, s in run.alerted.items()} == levels
    for rule_id, n in run.matched.items():
        assert (
            pipe.metrics.registry.get_sample_value("monitor_rule_matches_total", {"rule": rule_id})
            == n
        )
    seed = [s for s in run.alerted.values() if "militarily and technically" in s.title]
    assert len(seed) == 1
    assert seed[0].level is Level.critical
    assert "military-technical-response" in seed[0].rules


def test_the_clock_is_publication_time(ruleset: RuleSet, samples: list[Article]) -> None:
    """Wall time would pass in milliseconds: no `updated` (repeat_interval) and no `resolved`
    (resolve_after) alert could ever fire. On the news' clock they do."""
    run = replay(ruleset, samples)
    assert run.alerts.get("updated", 0) > 0
    assert run.alerts.get("resolved", 0) > 0
    assert run.alerts["opened"] >= len(run.alerted)


def test_story_ids_line_up_between_rule_sets(
    ruleset: RuleSet, derive: Derive, samples: list[Article]
) -> None:
    """Clustering ignores the rules: with none of them, every article lands in the same
    story, under the same id (the first article's)."""
    full = replay(ruleset, samples)
    bare = replay(derive(drop=tuple(ruleset.by_id)), samples)
    assert not bare.alerted
    assert bare.placement == full.placement
    assert placement_mismatches(full, bare) == 0
    first = {}
    for a in samples:
        first.setdefault(full.placement[a.id], a.id)
    assert all(story == f"s-{aid}" for story, aid in first.items())


def test_a_rule_set_without_routes_still_alerts(derive: Derive, samples: list[Article]) -> None:
    run = replay(derive(routes=False), samples)
    assert run.routes == [CATCH_ALL.name]
    assert run.alerted
