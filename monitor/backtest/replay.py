"""One rule set over past articles, in memory: which stories it would have alerted, and why.

The replay is the pipeline's own stage code (:class:`Pipeline`: ingest -> cluster -> alerting)
on plain dict tables, with every route of the rule set active and no sink: nothing is
delivered, and nothing is written anywhere.

Its clock is the news' own: each article is decided at its publication time, and quiet
stories are swept (``resolved``) and pruned by that time, as the embedded runtime prunes. Wall
time would pass in seconds during a replay and never let an ``updated`` or ``resolved`` alert
through, nor resolve a story that then comes back.

Story identity across two replays. A story's id is ``s-`` + the id of its first article
(:func:`monitor.pipeline.cluster.assign`), and which story an article joins depends only on
the articles before it, never on the rules:
  * exact dedupe keys are the URL, the GUID and a hash of the text (pipeline/dedupe.py);
  * the MinHash signature comes from the text's stems alone (ingest.tag_article);
  * ``StoryIndex.nearest`` picks by signature similarity among stories whose ``last_seen``
    (moved by each article they take) is within STORY_WINDOW of the article's publication;
  * pruning goes by the same event time in both replays.
The rules decide only a story's hits (its evidence), hence its score and its alerts. So two
replays of one article sequence put every article in the same story, under the same id, and
stories can be compared by id. :func:`placement_mismatches` checks this on every backtest
(it is cheap), so a future clustering that weighed rule hits would be reported, not hidden.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.metrics import Metrics
from monitor.models import Alert, Article, Level
from monitor.rules.models import Route
from monitor.rules.ruleset import RuleSet
from monitor.runtime.stages import Pipeline

PRUNE_EVERY = 500  # articles between closing quiet stories, as the embedded runtime does
SWEEP_EVERY = timedelta(minutes=15)  # news time between `resolved` sweeps (a polling round)
# A rule set without routes would alert nowhere: replay it with one route hearing everything.
CATCH_ALL = Route(name="backtest", sink="none", min_level=Level.low)


@dataclass
class StoryAlerts:
    """What one replay alerted about one story."""

    story_id: str
    title: str
    url: str
    first_alert: datetime  # news time of its first alert
    level: Level = Level.none  # the highest level alerted, on any route
    rules: set[str] = field(default_factory=set)  # rules that scored in any of its alerts
    alerts: int = 0


@dataclass
class Replay:
    version: str  # of the rule set
    routes: list[str]
    articles: int = 0
    exact_duplicates: int = 0
    stories: int = 0
    matched: dict[str, int] = field(default_factory=dict)  # rule -> articles it matched
    alerts: dict[str, int] = field(default_factory=dict)  # kind -> alerts over every route
    alerted: dict[str, StoryAlerts] = field(default_factory=dict)  # story id ->
    placement: dict[str, str] = field(default_factory=dict)  # article id -> story id


def replay(
    ruleset: RuleSet, articles: Sequence[Article], tick: Callable[[], None] | None = None
) -> Replay:
    """Run ``articles`` (in publication order) through ``ruleset``; ``tick`` after each."""
    routes = ruleset.routes or [CATCH_ALL]
    pipe = Pipeline(ruleset, routes, {}, {}, {}, {}, Metrics())
    out = Replay(ruleset.version, [r.name for r in routes])
    scoring = {r.id for r in ruleset.rules if r.enabled}
    swept: datetime | None = None
    newest: datetime | None = None
    for article in articles:
        now = article.published
        newest = now if newest is None else max(newest, now)
        if swept is None:
            swept = now
        elif now - swept >= SWEEP_EVERY:
            _record(out, pipe.sweep(now), scoring)
            swept = now
        # Pipeline.process, but decided at the article's own time (see the module docstring)
        tagged = pipe.ingest(article)
        if tagged is not None:
            for rule_id in {m.rule_id for m in tagged.matches}:
                out.matched[rule_id] = out.matched.get(rule_id, 0) + 1
            event = pipe.cluster(tagged)
            out.placement[article.id] = event.story.id
            _record(out, pipe.alert(event, now), scoring)
        if pipe.counts.articles % PRUNE_EVERY == 0:
            pipe.prune(newest)
        if tick is not None:
            tick()
    out.articles = pipe.counts.articles
    out.exact_duplicates = pipe.counts.exact_duplicates
    out.stories = pipe.counts.stories
    return out


def _record(out: Replay, alerts: list[Alert], scoring: set[str]) -> None:
    for a in alerts:
        out.alerts[a.kind] = out.alerts.get(a.kind, 0) + 1
        story = out.alerted.get(a.story_id)
        if story is None:
            story = StoryAlerts(a.story_id, a.title, a.url, a.created_at)
            out.alerted[a.story_id] = story
        story.alerts += 1
        story.level = max(story.level, a.level)
        # a hit of a rule not in force (or disabled) adds nothing to the score: not a reason
        story.rules.update(h.rule_id for h in a.hits if h.rule_id in scoring)


def placement_mismatches(old: Replay, new: Replay) -> int:
    """Articles placed in a different story by the two replays (0 unless clustering came to
    depend on the rules: see the module docstring)."""
    differ = sum(1 for aid, sid in old.placement.items() if new.placement.get(aid) != sid)
    return differ + sum(1 for aid in new.placement if aid not in old.placement)
