"""Spike detection: is a rule matching far more articles than usual right now?

Like EMM's breaking-news detection: a rule with ``spike: {window, baseline, factor, min_count}``
has its matching articles counted per time bucket. At each matching article, the rule is
*spiking* when

    matches in the window ending at the article >= max(min_count, factor x usual)

where *usual* is the rule's average number of matches per window over the ``baseline`` just
before that window (so a surge does not raise its own baseline). The article's story then
carries the surge (:class:`~monitor.models.Surge` on the rule's hit) and scoring adds the rule's
``spike.bonus``: stories alert earlier in a surge.

Event time throughout: an article counts at its ``published`` time (never after its fetch), so
a replay or a backtest counts exactly as the live run did, and late or backfilled articles land
in the buckets of their own time. The counts live in a state mapping (rule id ->
:class:`SpikeCounts`) that the runtimes persist like the other tables, so they survive restarts.

Warm-up: a rule is judged only once it has been counted for window + baseline (from the fetch
time of the first article seen after the rule came into force). Before that its "usual" would
be built on buckets nobody watched, and every rule would seem to spike at start-up.

Pure: no clock, no I/O; the caller passes the table and must call :func:`count_article` once
per distinct article (the cluster stage, which sees each article exactly once).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, MutableMapping, Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from monitor.models import Article, Story, Surge
from monitor.rules.models import Rule, Spike

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SpikeCounts(BaseModel):
    """One rule's matches per bucket, the value of the spike state table (key: rule id)."""

    model_config = ConfigDict(frozen=True)
    since: datetime  # when counting began: the fetch time of the first article seen
    bucket: int  # bucket length in seconds; a rule whose buckets change starts afresh
    # (bucket number, matching articles), ascending; bucket number = epoch seconds // bucket.
    # Only non-empty buckets, and only those within window + baseline of the newest.
    counts: tuple[tuple[int, int], ...] = ()


def _spans(spec: Spike) -> tuple[int, int, int]:
    """(bucket seconds, buckets per window, buckets per baseline)."""
    size = spec.bucket_seconds
    n_window = -(-int(spec.window.total_seconds()) // size)
    n_baseline = -(-int(spec.baseline.total_seconds()) // size)
    return size, n_window, n_baseline


def event_time(article: Article) -> datetime:
    # A feed's future date must not open buckets ahead of the present (and prune the real ones).
    return min(article.published, article.fetched_at)


def count_article(
    rules: Sequence[Rule],
    article: Article,
    matched: Collection[str],
    table: MutableMapping[str, SpikeCounts],
) -> dict[str, Surge]:
    """Count one article against every spike rule (those in ``matched`` matched it) and
    return the surges of the matched rules that are spiking at the article's time."""
    when = event_time(article)
    out: dict[str, Surge] = {}
    for rule in rules:
        spec = rule.spike
        if spec is None:
            continue
        size, n_window, n_baseline = _spans(spec)
        state = table.get(rule.id)
        if state is None or state.bucket != size:
            state = SpikeCounts(since=article.fetched_at, bucket=size)
            if rule.id not in matched:
                table[rule.id] = state  # counting starts now, match or not
                continue
        elif rule.id not in matched:
            continue
        number = int((when - _EPOCH).total_seconds()) // size
        counts = dict(state.counts)
        counts[number] = counts.get(number, 0) + 1
        keep_from = max(counts) - n_window - n_baseline + 1
        state = state.model_copy(
            update={"counts": tuple(sorted((k, v) for k, v in counts.items() if k >= keep_from))}
        )
        table[rule.id] = state
        surge = _surge(spec, state, counts, number, when, n_window, n_baseline)
        if surge is not None:
            out[rule.id] = surge
    return out


def _surge(
    spec: Spike,
    state: SpikeCounts,
    counts: Mapping[int, int],
    number: int,
    when: datetime,
    n_window: int,
    n_baseline: int,
) -> Surge | None:
    if when - spec.window - spec.baseline < state.since:
        return None  # warming up: the baseline was not watched in full
    current = sum(counts.get(number - i, 0) for i in range(n_window))
    before = sum(counts.get(number - n_window - i, 0) for i in range(n_baseline))
    usual = before * n_window / n_baseline
    if current < max(spec.min_count, spec.factor * usual):
        return None
    return Surge(count=current, usual=round(usual, 2), window=spec.window.total_seconds(), at=when)


def mark_story(story: Story, surges: Mapping[str, Surge]) -> Story:
    """The story with each spiking rule's hit carrying its surge (the largest seen so far)."""
    hits = []
    changed = False
    for hit in story.hits:
        surge = surges.get(hit.rule_id)
        if surge is not None and (hit.spike is None or surge.count > hit.spike.count):
            hit = hit.model_copy(update={"spike": surge})
            changed = True
        hits.append(hit)
    return story.model_copy(update={"hits": tuple(hits)}) if changed else story
