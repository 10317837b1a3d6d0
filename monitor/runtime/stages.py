"""The pipeline stages bound to their state: ingest -> cluster -> alerting, with metrics.

The embedded runtime calls :meth:`Pipeline.process` per article; the Kafka agents call the same
stage methods one per topic hop.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from monitor.metrics import Metrics
from monitor.models import Alert, Article, Story, StoryEvent, TaggedArticle
from monitor.pipeline.alerting import Thread, decide, sweep
from monitor.pipeline.cluster import Signed, StoryIndex, assign
from monitor.pipeline.ingest import ingest
from monitor.pipeline.scoring import score_story
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
    ) -> None:
        self.ruleset = ruleset
        self.routes = list(routes)
        self.seen = seen
        self.signatures = signatures
        self.stories = stories
        self._index: StoryIndex | None = None
        self.threads = threads
        self.metrics = metrics
        self.counts = Counts()
        metrics.rules_loaded.set(len(ruleset.rules))

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
