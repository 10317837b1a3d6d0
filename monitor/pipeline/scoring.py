"""Severity: an explainable score per story, and its level.

    score = (rule terms: weight, x title_boost when the rule fired in a headline; the strongest
             counts in full, the next x additional_rule_factor, the next x its square, ...)
            x the best reliability among the story's outlets
            + corroboration points for each further outlet (capped)
            + a spike bonus when a rule of the story was spiking (the largest such bonus)

Further rules add with diminishing weight: a story that names invasion, shelling and martial law
is graver than one that names one of them, but not three times as grave, and one long article
touching every keyword must not outrank the signal itself.

Every term is kept so an alert can say exactly why it fired. Rules no longer in force (a reload
removed them) count for nothing.

A rule with ``min_outlets: n`` counts only once the story has n distinct outlets: until then it
shows as a 0 term ("waits for 3 outlets, 2 so far"); the story event that brings the n-th outlet
scores it in full, the level rises, and alerting raises ``opened`` / ``escalated`` as for any
rise. A spike (pipeline.spike) adds its rule's ``spike.bonus`` once, as the strongest surge:
two rules surging together are one surge, not two.
"""

from __future__ import annotations

from collections.abc import Mapping

from monitor.models import Level, Score, ScoreTerm, Story, Surge
from monitor.rules.models import Rule, Scoring


def _span(seconds: float) -> tuple[str, str]:
    """("hour", "h"), ("30 min", "30 min"), ("2 h", "2 h"): a window, as the label says it."""
    minutes = round(seconds / 60)
    if minutes == 60:
        return "hour", "h"
    if minutes % 60 == 0:
        return f"{minutes // 60} h", f"{minutes // 60} h"
    return f"{minutes} min", f"{minutes} min"


def spike_label(surge: Surge) -> str:
    """The label of a spike term: "spike: 14 in the last hour vs 2.1/h usual"."""
    last, per = _span(surge.window)
    return f"spike: {surge.count} in the last {last} vs {surge.usual:.1f}/{per} usual"


def score_story(story: Story, rules: Mapping[str, Rule], scoring: Scoring) -> Score:
    terms: list[ScoreTerm] = []
    weighted = []
    waiting: list[ScoreTerm] = []
    spike: tuple[float, str] | None = None  # the largest bonus, and its rule's surge
    outlets = len(story.sources)
    for hit in story.hits:
        rule = rules.get(hit.rule_id)
        if rule is None or not rule.enabled:
            continue
        if outlets < rule.min_outlets:
            label = f"{hit.rule_id}: waits for {rule.min_outlets} outlets ({outlets} so far)"
            waiting.append(ScoreTerm(label=label, value=0))
            continue
        weighted.append((rule.weight * (scoring.title_boost if hit.in_title else 1.0), hit))
        surge = rule.spike.bonus if rule.spike is not None and hit.spike is not None else 0.0
        if hit.spike is not None and surge > 0 and (spike is None or surge > spike[0]):
            spike = (surge, f"{spike_label(hit.spike)} ({hit.rule_id})")
    weighted.sort(key=lambda pair: (-pair[0], pair[1].rule_id))
    base = 0.0
    for rank, (value, hit) in enumerate(weighted):
        factor = scoring.additional_rule_factor**rank
        where = "headline" if hit.in_title else "body"
        label = f"{hit.rule_id} ({where}: “{hit.text}”)"
        if rank:
            label += f" ×{factor:g} as rule {rank + 1}"
        terms.append(ScoreTerm(label=label, value=round(value * factor, 2)))
        base += value * factor
    if base <= 0:
        return Score(value=0.0, level=Level.none, terms=())
    total = base
    if story.reliability < 1.0:
        terms.append(ScoreTerm(label="source reliability", value=story.reliability, op="x"))
        total *= story.reliability
    extra = max(0, len(story.sources) - 1)
    if extra and scoring.corroboration.per_outlet > 0:
        bonus = min(extra * scoring.corroboration.per_outlet, scoring.corroboration.max)
        terms.append(ScoreTerm(label=f"corroboration ({len(story.sources)} outlets)", value=bonus))
        total += bonus
    if spike is not None:
        terms.append(ScoreTerm(label=spike[1], value=spike[0]))
        total += spike[0]
    terms += waiting
    total = round(total, 2)
    return Score(value=total, level=scoring.levels.level(total), terms=tuple(terms))
