"""The pipeline stages bound to their state: ingest -> cluster -> alerting, with metrics.

The embedded runtime calls :meth:`Pipeline.process` per article; the Kafka agents call the same
stage methods one per topic hop.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from monitor.logs import log
from monitor.metrics import Metrics
from monitor.models import Alert, Article, Story, StoryEvent, TaggedArticle
from monitor.pipeline.alerting import Thread, decide, sweep
from monitor.pipeline.cluster import Signed, StoryIndex, assign
from monitor.pipeline.ingest import ingest
from monitor.pipeline.scoring import score_story
from monitor.pipeline.spike import SpikeCounts, count_article, mark_story
from monitor.rules.models import Route
from monitor.rules.ruleset import RuleSet


@dataclass
class Counts:
    """What a run did, for the summary table."""

    articles: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    stories: int = 0
    alerts: dict[str, int] = field(default_factory=dict)  # "level kind" -> n


class Pipeline:
    def __init__(
        self,
        ruleset: RuleSet,
        routes: Sequence[Route],
        seen: MutableMapping[str, str],
        signatures: MutableMapping[str, Signed],
        stories: MutableMapping[str, Story],
        threads: MutableMapping[str, Thread],
        metrics: Metrics,
        spikes: MutableMapping[str, SpikeCounts] | None = None,
    ) -> None:
        self.ruleset = ruleset
        self.routes = list(routes)
        self.seen = seen
        self.signatures = signatures
        self.stories = stories
        self._index: StoryIndex | None = None
        self.threads = threads
        # rule id -> its matches per time bucket (pipeline.spike); in memory when not given
        self.spikes: MutableMapping[str, SpikeCounts] = {} if spikes is None else spikes
        self.metrics = metrics
        self.counts = Counts()
        metrics.rules_loaded.set(len(ruleset.rules))

    def use(self, ruleset: RuleSet, routes: Sequence[Route]) -> None:
        """Put another rule set in force (a reload): the next article is tagged with it. Open
        stories keep their evidence; hits of rules that no longer exist count for nothing."""
        self.ruleset = ruleset
        self.routes = list(routes)
        self.metrics.rules_loaded.set(len(ruleset.rules))

    @property
    def index(self) -> StoryIndex:
        """The story index, built (LSH rebuilt from the signature table) on first use: in the
        Kafka runtime the tables are only complete once recovery has finished."""
        if self._index is None:
            self._index = StoryIndex(self.signatures, self.stories)
            self.metrics.stories_active.set(len(self._index.last_seen))
        return self._index

    def reset_index(self) -> None:
        """Forget the in-memory index (partitions moved); the next article rebuilds it."""
        self._index = None

    def ingest(self, article: Article) -> TaggedArticle | None:
        self.counts.articles += 1
        tagged = ingest(article, self.seen, self.ruleset.tagger, self.ruleset.version)
        if tagged is None:
            self.counts.exact_duplicates += 1
            self.metrics.duplicates.labels("exact").inc()
            return None
        for rule_id in {m.rule_id for m in tagged.matches}:
            self.metrics.rule_matches.labels(rule_id).inc()
        return tagged

    def cluster(self, tagged: TaggedArticle) -> StoryEvent:
        event = assign(tagged, self.index)
        if event.replayed:
            pass
        elif event.new_story:
            self.counts.stories += 1
            # inc, not len(): counting a RocksDB-backed table walks every key
            self.metrics.stories_active.inc()
        else:
            self.counts.near_duplicates += 1
            self.metrics.duplicates.labels("near").inc()
        # Spike rules are counted here, not at ingest: a rule's rate must count every article
        # exactly once. Ingest runs on every partition of news.articles, each worker seeing
        # only its share; this stage consumes news.candidates, which has one partition, so one
        # worker sees every article (the global view clustering needs anyway). A replayed
        # article (at-least-once redelivery) was counted the first time and is not again.
        spike_rules = self.ruleset.tagger.spike_rules
        if spike_rules and not event.replayed:
            matched = {m.rule_id for m in tagged.matches}
            surges = count_article(spike_rules, tagged.article, matched, self.spikes)
            if surges:
                story = mark_story(event.story, surges)
                self.index.stories[story.id] = story
                event = event.model_copy(update={"story": story})
        return event

    def alert(self, event: StoryEvent, now: datetime | None = None) -> list[Alert]:
        rs = self.ruleset
        if event.story.hits:
            self.metrics.severity.observe(score_story(event.story, rs.by_id, rs.scoring).value)
        alerts = decide(
            event, rs.by_id, rs.scoring, self.routes, self.threads, now or datetime.now(UTC)
        )
        for a in alerts:
            self.metrics.alerts.labels(a.route, a.level.name, a.kind).inc()
            key = f"{a.level.name} {a.kind}"
            self.counts.alerts[key] = self.counts.alerts.get(key, 0) + 1
            # ids to follow one story across processes: article -> story -> alert -> delivery
            log.info(
                "alert_raised",
                alert_id=a.id,
                story_id=a.story_id,
                article_id=event.article.id,
                feed=event.article.source,
                route=a.route,
                kind=a.kind,
                alert_level=a.level.name,  # "level" is the log line's own
                score=round(a.score, 1),
                rules_version=a.rules_version,
            )
        return alerts

    def sweep(
        self,
        now: datetime,
        owns: Callable[[str], bool] = lambda story_id: True,
        replay_resolved: bool = False,
    ) -> list[Alert]:
        """``resolved`` alerts for stories gone quiet (wall clock: quiet means no new article
        has *arrived*, whatever the articles' own dates); forgets long-quiet threads."""
        alerts = sweep(self.threads, self.routes, now, owns, replay_resolved)
        for a in alerts:
            if a.created_at != now:
                continue  # a recent resolution raised again (replay_resolved): counted once
            self.metrics.alerts.labels(a.route, a.level.name, a.kind).inc()
            key = f"{a.level.name} {a.kind}"
            self.counts.alerts[key] = self.counts.alerts.get(key, 0) + 1
        return alerts

    def process(self, article: Article) -> list[Alert]:
        tagged = self.ingest(article)
        if tagged is None:
            return []
        return self.alert(self.cluster(tagged))

    def prune(self, now: datetime) -> None:
        if self.index.prune(now):
            self.metrics.stories_active.set(len(self.index.last_seen))
