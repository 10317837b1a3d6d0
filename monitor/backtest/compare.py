"""Two replays of the same articles, compared per rule and per story.

Stories are compared by id: both replays place every article in the same story (see
:mod:`monitor.backtest.replay`). A story is *gained* when the new rules alert on it and the old
ones did not, *lost* the other way round, and *changes level* when both alert on it but reach
different highest levels.

Per rule, alerted stories are counted for every rule that scored in the story's alerts: one
story alerted on two rules counts for both. A change is attributed to the rules that scored on
the side that alerted (both sides for a level change), so a new rule's gains show under it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from monitor.backtest.replay import Replay, StoryAlerts, placement_mismatches
from monitor.models import Level
from monitor.rules.ruleset import RuleSet

LEVELS = (Level.low, Level.medium, Level.high, Level.critical)
RuleStatus = Literal["added", "removed", "changed", "unchanged"]


@dataclass(frozen=True)
class Pair:
    old: int
    new: int

    @property
    def differs(self) -> bool:
        return self.old != self.new


@dataclass(frozen=True)
class Change:
    """One story alerted differently: ``Level.none`` on the side that did not alert."""

    story_id: str
    title: str
    url: str
    first_alert: datetime
    old: Level
    new: Level
    old_rules: tuple[str, ...]
    new_rules: tuple[str, ...]

    @property
    def rules(self) -> tuple[str, ...]:
        return tuple(sorted({*self.old_rules, *self.new_rules}))


@dataclass(frozen=True)
class RuleDiff:
    rule: str
    status: RuleStatus
    articles: Pair  # articles the rule matched
    stories: Pair  # alerted stories the rule scored in
    levels: dict[Level, Pair]  # those stories by their highest level
    gained: int
    lost: int
    level_changes: int

    @property
    def differs(self) -> bool:
        return (
            self.status != "unchanged"
            or self.articles.differs
            or self.stories.differs
            or bool(self.gained or self.lost or self.level_changes)
        )


@dataclass(frozen=True)
class Comparison:
    old: Replay
    new: Replay
    rules: list[RuleDiff]  # every rule of either set: those that differ first, then by id
    gained: list[Change]  # each list: highest level first, then by first alert
    lost: list[Change]
    level_changes: list[Change]
    scoring_changed: bool
    routes_changed: bool
    mismatched_articles: int  # placed in different stories by the two replays (expected 0)

    def levels(self, side: Literal["old", "new"]) -> dict[Level, int]:
        run = self.old if side == "old" else self.new
        return {lv: sum(1 for s in run.alerted.values() if s.level is lv) for lv in LEVELS}


def compare(old_rules: RuleSet, new_rules: RuleSet, old: Replay, new: Replay) -> Comparison:
    gained, lost, changed = [], [], []
    for story_id in old.alerted.keys() | new.alerted.keys():
        before, after = old.alerted.get(story_id), new.alerted.get(story_id)
        change = _change(before, after)
        if before is None:
            gained.append(change)
        elif after is None:
            lost.append(change)
        elif before.level != after.level:
            changed.append(change)
    rows = [
        _rule_diff(rule_id, old_rules, new_rules, old, new, gained, lost, changed)
        for rule_id in sorted(old_rules.by_id.keys() | new_rules.by_id.keys())
    ]
    rows.sort(key=lambda r: not r.differs)  # stable: by id within each group
    return Comparison(
        old=old,
        new=new,
        rules=rows,
        gained=_ordered(gained),
        lost=_ordered(lost),
        level_changes=_ordered(changed),
        scoring_changed=old_rules.scoring != new_rules.scoring,
        routes_changed=old_rules.routes != new_rules.routes,
        mismatched_articles=placement_mismatches(old, new),
    )


def _change(before: StoryAlerts | None, after: StoryAlerts | None) -> Change:
    some = before or after
    assert some is not None
    return Change(
        story_id=some.story_id,
        title=some.title,
        url=some.url,
        first_alert=min(s.first_alert for s in (before, after) if s is not None),
        old=before.level if before else Level.none,
        new=after.level if after else Level.none,
        old_rules=tuple(sorted(before.rules)) if before else (),
        new_rules=tuple(sorted(after.rules)) if after else (),
    )


def _ordered(changes: list[Change]) -> list[Change]:
    return sorted(changes, key=lambda c: (-max(c.old, c.new), c.first_alert, c.story_id))


def _status(rule_id: str, old_rules: RuleSet, new_rules: RuleSet) -> RuleStatus:
    before, after = old_rules.by_id.get(rule_id), new_rules.by_id.get(rule_id)
    if before is None:
        return "added"
    if after is None:
        return "removed"
    return "unchanged" if before == after else "changed"


def _rule_diff(
    rule_id: str,
    old_rules: RuleSet,
    new_rules: RuleSet,
    old: Replay,
    new: Replay,
    gained: list[Change],
    lost: list[Change],
    changed: list[Change],
) -> RuleDiff:
    def alerted(run: Replay) -> list[StoryAlerts]:
        return [s for s in run.alerted.values() if rule_id in s.rules]

    was, now = alerted(old), alerted(new)
    return RuleDiff(
        rule=rule_id,
        status=_status(rule_id, old_rules, new_rules),
        articles=Pair(old.matched.get(rule_id, 0), new.matched.get(rule_id, 0)),
        stories=Pair(len(was), len(now)),
        levels={
            lv: Pair(sum(s.level is lv for s in was), sum(s.level is lv for s in now))
            for lv in LEVELS
        },
        gained=sum(rule_id in c.new_rules for c in gained),
        lost=sum(rule_id in c.old_rules for c in lost),
        level_changes=sum(rule_id in c.rules for c in changed),
    )
