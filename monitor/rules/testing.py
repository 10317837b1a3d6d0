"""Run the test cases rule files carry: each example must trigger exactly the rules it expects
and, when the case gives a ``level``, reach exactly that level on its own.

The level is the pipeline's own: the example becomes one article (one outlet, reliability 1),
the tagger's matches become a story as the cluster stage makes it, and the story is scored by
the scoring stage. Nothing here computes a score of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.models import Article, Level, Story, TaggedArticle
from monitor.pipeline.cluster import StoryIndex, assign
from monitor.pipeline.scoring import score_story
from monitor.rules.models import RuleTest
from monitor.rules.ruleset import LocatedTest, RuleSet

_WHEN = datetime(2000, 1, 1, tzinfo=UTC)  # any moment: one article, one story


@dataclass(frozen=True)
class TestResult:
    test: LocatedTest
    fired: tuple[str, ...]
    ok: bool
    reason: str
    score: float = 0.0
    level: Level = Level.none

    @property
    def where(self) -> str:
        return f"{self.test.path}:{self.test.line}"


def example_language(ruleset: RuleSet, case: RuleTest) -> str:
    """The case's ``language``; else the language of the rules it expects, when they share
    one (a French rule's examples are French); else English."""
    if case.language is not None:
        return case.language
    found = {ruleset.by_id[r].language for r in case.expect if r in ruleset.by_id}
    return found.pop() if len(found) == 1 else "en"


def example_story(
    ruleset: RuleSet, title: str, body: str, index: StoryIndex, key: str, language: str = "en"
) -> Story:
    """The story the pipeline makes of this one example article (``key``: its article id).

    The example has no feed, so rules' source filters do not apply to it."""
    article = Article(
        id=key,
        source="example",
        url=f"example:{key}",
        title=title,
        body=body,
        published=_WHEN,
        fetched_at=_WHEN,
        language=language,
    )
    matches = tuple(ruleset.tagger.tag(title, body, language=language))
    tagged = TaggedArticle(article=article, matches=matches, rules_version=ruleset.version)
    return assign(tagged, index).story


def run_rule_tests(ruleset: RuleSet) -> list[TestResult]:
    results = []
    index = StoryIndex({}, {})  # no signatures: every example is a story of its own
    for n, located in enumerate(ruleset.tests):
        title, body = located.case.as_title_body
        language = example_language(ruleset, located.case)
        story = example_story(ruleset, title, body, index, f"case-{n}", language)
        score = score_story(story, ruleset.by_id, ruleset.scoring)
        fired = tuple(sorted({h.rule_id for h in story.hits}))
        expected = set(located.case.expect)
        missing = sorted(expected - set(fired))
        extra = sorted(set(fired) - expected)
        reasons = []
        if missing:
            reasons.append(f"did not fire: {', '.join(missing)}")
        if extra:
            reasons.append(f"fired unexpectedly: {', '.join(extra)}")
        want = located.case.level
        if want is not None and Level[want] != score.level:
            reasons.append(
                f"level {score.level.name} (score {score.value:g}), expected {want}"
                + _threshold_note(ruleset, Level[want], score.value)
            )
        results.append(
            TestResult(located, fired, not reasons, "; ".join(reasons), score.value, score.level)
        )
    return results


def _threshold_note(ruleset: RuleSet, want: Level, value: float) -> str:
    levels = ruleset.scoring.levels
    if want is Level.none:
        return f" (below low: {levels.low:g})"
    return f" ({want.name}: {getattr(levels, want.name):g})"
