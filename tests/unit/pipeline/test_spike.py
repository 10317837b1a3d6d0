"""Spike rules: a rule's matches per window against its usual rate, in event time."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from monitor.metrics import Metrics
from monitor.models import Article, Level, RuleHit, Surge
from monitor.pipeline.ingest import tag_article
from monitor.pipeline.scoring import score_story, spike_label
from monitor.pipeline.spike import SpikeCounts, count_article, mark_story
from monitor.rules.models import MatchSpec, Route, Rule, Scoring, Spike
from monitor.rules.ruleset import RuleSet
from monitor.runtime.stages import Pipeline
from tests.unit.pipeline.helpers import T0, article, story_of

H = timedelta(hours=1)


def spike_rule(rid: str = "inv", **spike: Any) -> Rule:
    return Rule(
        id=rid,
        match=MatchSpec(any=["invasion"]),
        weight=10,
        spike=Spike.model_validate({"window": "1h", "baseline": "24h", **spike}),
    )


def at(when: timedelta, source: str = "wire", *, fetched: timedelta | None = None) -> Article:
    a = article(f"item at {when}", source=source)
    return a.model_copy(
        update={"published": T0 + when, "fetched_at": T0 + (when if fetched is None else fetched)}
    )


def feed(
    rules: list[Rule], table: dict[str, SpikeCounts], times: list[timedelta], hit: bool = True
) -> list[dict[str, Surge]]:
    matched = {r.id for r in rules} if hit else set()
    return [count_article(rules, at(t), matched, table) for t in times]


def steady(per_hour: int, hours: int, start: timedelta = timedelta(0)) -> list[timedelta]:
    """``per_hour`` matches in each hour, spread evenly, from ``start``."""
    step = H / per_hour
    return [
        start + h * H + i * step + timedelta(seconds=30)
        for h in range(hours)
        for i in range(per_hour)
    ]


def test_config_defaults_and_checks() -> None:
    s = Spike()
    assert (s.window, s.baseline, s.factor, s.min_count, s.bonus) == (H, 24 * H, 3, 5, 20)
    assert s.bucket_seconds == 300  # a twelfth of the hour
    assert (
        Spike.model_validate({"window": "10m", "baseline": "7d"}).bucket_seconds == 1009
    )  # <= 600 buckets
    with pytest.raises(ValueError, match="twice the window"):
        Spike.model_validate({"window": "1h", "baseline": "90m"})
    with pytest.raises(ValueError, match="at least 1m"):
        Spike.model_validate({"window": "30s", "baseline": "1h"})


def test_a_surge_over_the_usual_rate_spikes() -> None:
    rule = spike_rule()
    table: dict[str, SpikeCounts] = {}
    assert not any(feed([rule], table, steady(2, 25)))  # 2/h for a day: usual
    surge = feed([rule], table, steady(6, 1, start=25 * H))
    # the 6th match in the hour reaches max(5, 3 x 2.0)
    assert [bool(s) for s in surge] == [False] * 5 + [True]
    mark = surge[-1]["inv"]
    assert (mark.count, mark.usual, mark.window) == (6, 2.0, 3600.0)
    assert spike_label(mark) == "spike: 6 in the last hour vs 2.0/h usual"


def test_a_quiet_rule_spikes_at_min_count() -> None:
    rule = spike_rule(min_count=5)
    table: dict[str, SpikeCounts] = {}
    feed([rule], table, [timedelta(0)], hit=False)  # counting starts; nothing matches for a day
    feed([rule], table, [26 * H], hit=False)
    results = feed([rule], table, [26 * H + i * timedelta(minutes=5) for i in range(5)])
    assert [bool(r) for r in results] == [False, False, False, False, True]
    assert results[-1]["inv"].usual == 0


def test_no_spike_while_warming_up() -> None:
    # Counting began at the first article; the first window + baseline has no usual rate yet.
    rule = spike_rule()
    table: dict[str, SpikeCounts] = {}
    assert not any(feed([rule], table, steady(20, 1)))
    assert not any(feed([rule], table, steady(20, 1, start=24 * H - timedelta(minutes=10))))
    assert any(feed([rule], table, steady(20, 1, start=25 * H)))


def test_the_baseline_excludes_the_current_window() -> None:
    # A surge does not raise its own bar: 30 matches in the hour against a usual 1/h.
    rule = spike_rule()
    table: dict[str, SpikeCounts] = {}
    feed([rule], table, steady(1, 25))
    surge = feed([rule], table, steady(30, 1, start=25 * H))
    assert surge[-1]["inv"].count == 30 and surge[-1]["inv"].usual == 1.0


def test_counting_is_in_event_time() -> None:
    rule = spike_rule()
    table: dict[str, SpikeCounts] = {}
    feed([rule], table, steady(2, 25))
    # six articles of the last hour fetched late, at once: counted at their published times,
    # they are a surge of that hour whatever the fetch time
    late = [
        count_article([rule], at(25 * H + i * timedelta(minutes=9), fetched=27 * H), {"inv"}, table)
        for i in range(6)
    ]
    assert late[-1]
    # six articles published a day ago and backfilled now land a day ago: no surge at the
    # present (and they cannot be judged: their baseline was not watched)
    table2: dict[str, SpikeCounts] = {}
    feed([rule], table2, steady(2, 55))
    old = [
        count_article(
            [rule], at(30 * H + i * timedelta(minutes=9), fetched=55 * H), {"inv"}, table2
        )
        for i in range(6)
    ]
    assert not old[0] and old[-1]  # a surge *then*: the usual 2 + 6 in that hour
    assert old[-1]["inv"].at == T0 + 30 * H + timedelta(minutes=45)
    now = count_article([rule], at(55 * H + timedelta(minutes=1)), {"inv"}, table2)
    assert not now
    # and before the rule was watched for window + baseline, nothing is judged
    early = [
        count_article(
            [rule], at(20 * H + i * timedelta(minutes=5), fetched=55 * H), {"inv"}, table2
        )
        for i in range(8)
    ]
    assert not any(early)


def test_a_future_date_counts_at_the_fetch_time() -> None:
    rule = spike_rule()
    table: dict[str, SpikeCounts] = {}
    feed([rule], table, steady(2, 25))
    before = dict(table["inv"].counts)
    count_article([rule], at(26 * H, fetched=25 * H + timedelta(minutes=1)), {"inv"}, table)
    after = dict(table["inv"].counts)
    fetch_bucket = int((T0 + 25 * H + timedelta(minutes=1)).timestamp()) // 300
    assert max(after) == fetch_bucket > max(before)  # the fetch's bucket, not a day ahead
    assert after[fetch_bucket] == 1


def test_state_is_small_and_survives_a_restart() -> None:
    rule = spike_rule()
    table: dict[str, SpikeCounts] = {}
    feed([rule], table, steady(12, 72))
    # only window + baseline of buckets is kept: 12 + 288
    assert len(table["inv"].counts) <= 300
    # a restart: the table is read back from its JSON; counting carries on identically
    restored = {k: SpikeCounts.model_validate_json(v.model_dump_json()) for k, v in table.items()}
    assert restored == table
    burst = steady(40, 1, start=72 * H)
    assert feed([rule], restored, burst) == feed([rule], table, burst)


def test_a_rule_whose_buckets_change_starts_afresh() -> None:
    table: dict[str, SpikeCounts] = {}
    feed([spike_rule()], table, steady(2, 30))
    changed = spike_rule(window="2h", baseline="2d")
    [result] = feed([changed], table, [30 * H + timedelta(minutes=1)])
    assert not result
    assert table["inv"].bucket == changed.spike.bucket_seconds  # type: ignore[union-attr]
    assert table["inv"].since == T0 + 30 * H + timedelta(minutes=1)
    assert table["inv"].counts == ((table["inv"].counts[0][0], 1),)


def test_only_matching_rules_count() -> None:
    a, b = spike_rule("a"), spike_rule("b")
    table: dict[str, SpikeCounts] = {}
    for t in steady(2, 3):
        count_article([a, b], at(t), {"a"}, table)
    assert sum(n for _, n in table["a"].counts) == 6
    assert table["b"].counts == ()  # watched since the start, never matched


story_with = story_of


def surge(count: int, usual: float = 1.0) -> Surge:
    return Surge(count=count, usual=usual, window=3600, at=T0)


def test_mark_story_keeps_the_strongest_surge() -> None:
    s = story_with(
        RuleHit(rule_id="inv", phrase="i", text="i"), RuleHit(rule_id="x", phrase="x", text="x")
    )
    s1 = mark_story(s, {"inv": surge(6)})
    assert s1.hits[0].spike == surge(6) and s1.hits[1].spike is None
    assert mark_story(s1, {"inv": surge(5)}) is s1
    assert mark_story(s1, {"inv": surge(9)}).hits[0].spike == surge(9)


def test_scoring_adds_the_largest_spike_bonus_once() -> None:
    rules = {
        "inv": spike_rule("inv", bonus=20),
        "shell": spike_rule("shell", bonus=15),
        "plain": Rule(id="plain", match=MatchSpec(any=["x"]), weight=10),
    }
    s = story_with(
        RuleHit(rule_id="inv", phrase="i", text="i", spike=surge(14, 2.1)),
        RuleHit(rule_id="shell", phrase="s", text="s", spike=surge(30)),
    )
    score = score_story(s, rules, Scoring())
    # 10 + 10 x 0.3, + 20 for the surge
    assert score.value == pytest.approx(13 + 20)
    assert score.terms[-1].label == "spike: 14 in the last hour vs 2.1/h usual (inv)"
    assert score.terms[-1].value == 20


def test_no_spike_bonus_for_a_rule_that_does_not_count() -> None:
    waiting = spike_rule("inv").model_copy(update={"min_outlets": 2})
    s = story_with(RuleHit(rule_id="inv", phrase="i", text="i", spike=surge(14)))
    assert score_story(s, {"inv": waiting}, Scoring()).value == 0
    # a reload that dropped the rule's spike config drops the bonus with it
    plain = Rule(id="inv", match=MatchSpec(any=["invasion"]), weight=10)
    assert score_story(s, {"inv": plain}, Scoring()).value == 10


# ------------------------------------------------------------------ in the pipeline -------

_VOCAB = [f"w{i}" for i in range(3000)]


def news(n: int, when: timedelta, source: str = "wire") -> Article:
    """An article of its own story (random words), matching 'invasion' in the body."""
    rng = random.Random(n)
    body = " ".join(rng.choice(_VOCAB) for _ in range(60)) + " invasion feared"
    a = article(
        f"Report {n} " + " ".join(rng.choice(_VOCAB) for _ in range(6)), body, source=source
    )
    return a.model_copy(update={"published": T0 + when, "fetched_at": T0 + when})


def test_a_surge_makes_stories_alert_earlier() -> None:
    rule = spike_rule(bonus=20)
    ruleset = RuleSet([rule], Scoring(), [])
    table: dict[str, SpikeCounts] = {}
    pipe = Pipeline(
        ruleset,
        [Route(name="desk", sink="list", min_level=Level.medium)],
        {},
        {},
        {},
        {},
        Metrics(),
        spikes=table,
    )
    n = 0
    for t in steady(1, 25):  # a usual day: one story an hour, score 10: no alert
        assert pipe.process(news(n, t)) == []
        n += 1
    alerts = []
    for t in steady(6, 1, start=25 * H):
        alerts.append(pipe.process(news(n, t)))
        n += 1
    # the 5th and 6th reach max(min_count 5, 3 x 1): their stories score 10 + 20 -> low, and
    # with a second outlet 10 + 10 + 20 = 40 -> medium
    assert alerts == [[]] * 6
    last = news(n - 1, 25 * H + timedelta(minutes=55), source="herald")
    [opened] = pipe.process(last)
    assert opened.kind == "opened" and opened.level is Level.medium
    assert (
        opened.terms[-1].label == "spike: 7 in the last hour vs 1.0/h usual (inv)"
    )  # the copy counts too
    assert table["inv"].counts[-1][1] >= 1


def test_replayed_articles_are_not_counted_twice() -> None:
    rule = spike_rule()
    table: dict[str, SpikeCounts] = {}
    pipe = Pipeline(RuleSet([rule], Scoring(), []), [], {}, {}, {}, {}, Metrics(), spikes=table)
    tagged = tag_article(news(1, timedelta(minutes=5)), pipe.ruleset.tagger)
    pipe.cluster(tagged)
    again = pipe.cluster(tagged)  # at-least-once redelivery
    assert again.replayed
    assert table["inv"].counts == ((table["inv"].counts[0][0], 1),)


def test_without_spike_rules_nothing_is_counted() -> None:
    table: dict[str, SpikeCounts] = {}
    plain = Rule(id="inv", match=MatchSpec(any=["invasion"]), weight=10)
    pipe = Pipeline(RuleSet([plain], Scoring(), []), [], {}, {}, {}, {}, Metrics(), spikes=table)
    pipe.process(news(1, timedelta(0)))
    assert table == {}
