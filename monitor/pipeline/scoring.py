"""Severity: an explainable score per story, and its level.

    score = (rule terms: weight, x title_boost when the rule fired in a headline; the strongest
             counts in full, the next x additional_rule_factor, the next x its square, ...)
            x the best reliability among the story's outlets
            + corroboration points for each further outlet (capped)

Further rules add with diminishing weight: a story that names invasion, shelling and martial law
is graver than one that names one of them, but not three times as grave, and one long article
touching every keyword must not outrank the signal itself.

Every term is kept so an alert can say exactly why it fired. Rules no longer in force (a reload
removed them) count for nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from monitor.models import Level, Score, ScoreTerm, Story
from monitor.rules.models import Rule, Scoring


def score_story(story: Story, rules: Mapping[str, Rule], scoring: Scoring) -> Score:
    terms: list[ScoreTerm] = []
    weighted = []
    for hit in story.hits:
        rule = rules.get(hit.rule_id)
        if rule is None or not rule.enabled:
            continue
        weighted.append((rule.weight * (scoring.title_boost if hit.in_title else 1.0), hit))
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
    total = round(total, 2)
    return Score(value=total, level=scoring.levels.level(total), terms=tuple(terms))
