"""Near-duplicate clustering: each new article joins the story whose copies it resembles, or
opens a new story.

This stage needs a global view (any article may match any story), so in the Kafka runtime it
runs on a single partition; it does only cheap work (an LSH lookup and a few Jaccard estimates
per article, tens of thousands a second). Past that, repartition by LSH band key: one record per
band, a band -> story table per partition, and a second hop keyed by article to pick the story.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from datasketch import MinHashLSH
from pydantic import BaseModel, ConfigDict

from monitor.models import Article, Match, RuleHit, Story, StoryEvent, TaggedArticle
from monitor.pipeline.signature import NUM_PERM, from_values

SIMILARITY = 0.5  # estimated Jaccard of lead shingles above which two articles are one story
STORY_WINDOW = timedelta(days=3)  # a story quiet this long is closed; later copies start anew


class Signed(BaseModel):
    """What the index keeps per article: enough to rebuild the LSH after a restart."""

    model_config = ConfigDict(frozen=True)
    story_id: str
    published: datetime
    values: tuple[int, ...]


class StoryIndex:
    """Stories and the LSH over their articles' signatures.

    ``signatures`` and ``stories`` are the durable state (SQLite or Faust tables). The LSH and a
    copy of each signature (as a numpy row, for vectorised similarity) are in memory, derived
    from ``signatures`` and rebuilt from it on start: candidate verification must not read the
    table once per candidate, as templated headlines ("Live: ...") bring hundreds.
    """

    def __init__(
        self,
        signatures: MutableMapping[str, Signed],
        stories: MutableMapping[str, Story],
        similarity: float = SIMILARITY,
        window: timedelta = STORY_WINDOW,
    ) -> None:
        self.signatures = signatures
        self.stories = stories
        self.similarity = similarity
        self.window = window
        self.lsh = MinHashLSH(threshold=similarity, num_perm=NUM_PERM)
        self._memory: dict[str, tuple[str, np.ndarray[Any, np.dtype[np.uint64]]]] = {}
        for key, signed in signatures.items():
            self._remember(key, signed)
        # story id -> last seen, so pruning never has to read every story from the table
        self.last_seen: dict[str, datetime] = {k: s.last_seen for k, s in stories.items()}

    def _remember(self, key: str, signed: Signed) -> None:
        values = np.asarray(signed.values, dtype=np.uint64)
        self._memory[key] = (signed.story_id, values)
        self.lsh.insert(key, from_values(values), check_duplication=False)

    def nearest(self, values: tuple[int, ...], now: datetime) -> tuple[str, float] | None:
        """The open story most similar to ``values`` (similarity >= threshold), if any."""
        probe = np.asarray(values, dtype=np.uint64)
        keys = [k for k in self.lsh.query(from_values(probe)) if k in self._memory]
        if not keys:
            return None
        matrix = np.stack([self._memory[k][1] for k in keys])
        scores = (matrix == probe).mean(axis=1)
        for i in np.argsort(-scores, kind="stable"):
            score = float(scores[i])
            if score < self.similarity:
                break
            story_id = self._memory[keys[i]][0]
            story = self.stories.get(story_id)
            if story is not None and now - story.last_seen <= self.window:
                return story_id, score
        return None

    def story_of(self, article_id: str) -> str | None:
        """The story an article was placed in (from memory: no table read per article)."""
        held = self._memory.get(article_id)
        return held[0] if held is not None else None

    def add(self, article_id: str, signed: Signed) -> None:
        if article_id in self._memory:
            return
        self.signatures[article_id] = signed
        self._remember(article_id, signed)

    def prune(self, now: datetime) -> int:
        """Forget stories (and their signatures) quiet for longer than the window."""
        cutoff = now - self.window
        stale = {k for k, seen in self.last_seen.items() if seen < cutoff}
        for key in stale:
            self.stories.pop(key, None)
            del self.last_seen[key]
        dropped = [k for k, (story_id, _) in self._memory.items() if story_id in stale]
        for key in dropped:
            self.signatures.pop(key, None)
            del self._memory[key]
            self.lsh.remove(key)
        return len(stale)


def merge_hits(hits: tuple[RuleHit, ...], matches: tuple[Match, ...]) -> tuple[RuleHit, ...]:
    """Add one article's matches to a story's evidence: one entry per rule, keeping the first
    words that fired it, upgraded to a headline hit when one appears."""
    by_rule = {h.rule_id: h for h in hits}
    seen_here: set[str] = set()
    for m in matches:
        old = by_rule.get(m.rule_id)
        in_title = m.field == "title"
        if old is None:
            by_rule[m.rule_id] = RuleHit(
                rule_id=m.rule_id,
                phrase=m.phrase,
                text=m.text,
                snippet=m.snippet,
                in_title=in_title,
            )
        else:
            update: dict[str, object] = {}
            if m.rule_id not in seen_here:
                update["articles"] = old.articles + 1
            if in_title and not old.in_title:
                update.update(phrase=m.phrase, text=m.text, snippet=m.snippet, in_title=True)
            if update:
                by_rule[m.rule_id] = old.model_copy(update=update)
        seen_here.add(m.rule_id)
    return tuple(by_rule.values())


def assign(tagged: TaggedArticle, index: StoryIndex) -> StoryEvent:
    """Put one (exactly new) article into a story and return the story as it now stands."""
    article: Article = tagged.article
    now = article.published
    # Replay (at-least-once delivery redelivered an article already placed): report the story
    # as it stands, change nothing, so counts and sources are not inflated.
    placed = index.story_of(article.id)
    if placed is not None and (known := index.stories.get(placed)) is not None:
        return StoryEvent(
            story=known,
            article=article,
            new_story=False,
            new_source=False,
            rules_version=tagged.rules_version,
            replayed=True,
        )
    found = index.nearest(tagged.signature, now) if tagged.signature else None
    story = index.stories.get(found[0]) if found else None
    if story is None:
        story = Story(
            id=f"s-{article.id}",
            title=article.title,
            url=article.url,
            first_seen=now,
            last_seen=now,
            sources=(article.source,),
            reliability=article.reliability,
            hits=merge_hits((), tagged.matches),
            first_fetched_at=article.fetched_at,
        )
        new_story, new_source = True, True
    else:
        new_source = article.source not in story.sources
        story = story.model_copy(
            update={
                "last_seen": max(story.last_seen, now),
                "articles": story.articles + 1,
                "sources": story.sources + ((article.source,) if new_source else ()),
                "reliability": max(story.reliability, article.reliability),
                "hits": merge_hits(story.hits, tagged.matches),
            }
        )
        new_story = False
    index.stories[story.id] = story
    index.last_seen[story.id] = story.last_seen
    if tagged.signature:
        index.add(article.id, Signed(story_id=story.id, published=now, values=tagged.signature))
    return StoryEvent(
        story=story,
        article=article,
        new_story=new_story,
        new_source=new_source,
        rules_version=tagged.rules_version,
    )
