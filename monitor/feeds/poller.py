"""Polling: fetch each due feed (conditional GET), parse it off the event loop, keep per-feed
health in state, count everything. A failing feed is logged and counted; the others carry on."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from datetime import UTC, datetime

import aiohttp
from pydantic import BaseModel, ConfigDict

from monitor.errors import FeedError
from monitor.feeds.fetch import FetchLimits, Validators, fetch
from monitor.feeds.parse import parse_feed
from monitor.feeds.sources import FeedSource
from monitor.logs import log
from monitor.metrics import Metrics
from monitor.models import Article

MAX_BACKOFF = 3600.0


class FeedState(BaseModel):
    """Per-feed health and HTTP validators, kept across restarts."""

    model_config = ConfigDict(frozen=True)
    etag: str = ""
    last_modified: str = ""
    last_success: float = 0.0
    last_error: str = ""
    consecutive_errors: int = 0
    next_poll: float = 0.0
    entries: int = 0


class PollResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    feed: str
    outcome: str  # ok | not_modified | error | timeout
    articles: list[Article] = []
    error: str = ""
    state: FeedState = FeedState()


class Poller:
    """Polls feeds. A poll's new feed state (validators, schedule, health) is *pending* until the
    runtime calls :meth:`settle` — once the articles are safely handed on (processed, or acked
    by Kafka). Saving the new ETag earlier would make a crash lose the articles: the next poll
    would get 304 Not Modified for a feed whose entries never got through."""

    def __init__(
        self,
        sources: Sequence[FeedSource],
        state: MutableMapping[str, FeedState],
        metrics: Metrics,
        limits: FetchLimits | None = None,
        concurrency: int = 16,
    ) -> None:
        self.sources = list(sources)
        self.state = state
        self.metrics = metrics
        self.limits = limits or FetchLimits()
        self._gate = asyncio.Semaphore(concurrency)
        self.pending: dict[str, FeedState] = {}
        metrics.start_series(feeds=[s.name for s in self.sources])
        for source in self.sources:
            metrics.feed_interval.labels(source.name).set(source.interval)
            # from the saved state: a restart must not hide a feed that has been stale for days
            last = self._state(source).last_success
            if last:
                metrics.feed_last_success.labels(source.name).set(last)

    def due(self, now: float) -> list[FeedSource]:
        return [s for s in self.sources if self._state(s).next_poll <= now]

    def next_due(self) -> float:
        return min((self._state(s).next_poll for s in self.sources), default=time.time() + 60)

    def _state(self, source: FeedSource) -> FeedState:
        return self.pending.get(source.name) or self.state.get(source.name) or FeedState()

    def settle(self, results: Sequence[PollResult]) -> None:
        """Persist the feed states of polls whose articles have been handed on."""
        for result in results:
            self.state[result.feed] = result.state
            if self.pending.get(result.feed) == result.state:
                del self.pending[result.feed]

    async def poll_many(
        self, session: aiohttp.ClientSession, sources: Sequence[FeedSource]
    ) -> list[PollResult]:
        return list(await asyncio.gather(*(self.poll(session, s) for s in sources)))

    async def poll(self, session: aiohttp.ClientSession, source: FeedSource) -> PollResult:
        async with self._gate:
            return await self._poll(session, source)

    async def _poll(self, session: aiohttp.ClientSession, source: FeedSource) -> PollResult:
        previous = self._state(source)
        started = time.monotonic()
        fetched_at = datetime.now(UTC)
        try:
            got = await fetch(
                session,
                source.name,
                source.url,
                Validators(previous.etag, previous.last_modified),
                self.limits,
            )
            articles: list[Article] = []
            if not got.not_modified:
                articles = await asyncio.to_thread(
                    parse_feed, got.body, source, fetched_at, got.url
                )
        except FeedError as exc:
            return self._failed(source, previous, exc.outcome, str(exc), started)
        except Exception as exc:  # a bug or an unforeseen input must not stop the other feeds
            log.exception("feed_poll_crashed", feed=source.name)
            return self._failed(source, previous, "error", f"{type(exc).__name__}: {exc}", started)
        outcome = "not_modified" if got.not_modified else "ok"
        now = time.time()
        state = FeedState(
            etag=got.validators.etag,
            last_modified=got.validators.last_modified,
            last_success=now,
            next_poll=now + source.interval * random.uniform(0.9, 1.1),
            entries=len(articles) if not got.not_modified else previous.entries,
        )
        self.pending[source.name] = state
        self.metrics.feed_polls.labels(source.name, outcome).inc()
        self.metrics.poll_duration.labels(source.name).observe(time.monotonic() - started)
        self.metrics.feed_last_success.labels(source.name).set(now)
        if not got.not_modified:
            self.metrics.feed_entries.labels(source.name).set(len(articles))
            self.metrics.articles.labels(source.name).inc(len(articles))
        log.debug("feed_polled", feed=source.name, outcome=outcome, entries=len(articles))
        return PollResult(feed=source.name, outcome=outcome, articles=articles, state=state)

    def _failed(
        self, source: FeedSource, previous: FeedState, outcome: str, error: str, started: float
    ) -> PollResult:
        errors = previous.consecutive_errors + 1
        # Back off exponentially, but never stop polling a feed for good.
        delay = min(source.interval * 2 ** min(errors - 1, 10), max(MAX_BACKOFF, source.interval))
        now = time.time()
        state = previous.model_copy(
            update={
                "last_error": error,
                "consecutive_errors": errors,
                "next_poll": now + delay * random.uniform(0.9, 1.1),
            }
        )
        self.pending[source.name] = state
        self.metrics.feed_polls.labels(source.name, outcome).inc()
        self.metrics.poll_duration.labels(source.name).observe(time.monotonic() - started)
        log.warning(
            "feed_poll_failed",
            feed=source.name,
            outcome=outcome,
            error=error,
            consecutive_errors=errors,
        )
        return PollResult(feed=source.name, outcome=outcome, error=error, state=state)


HandOn = Callable[[list[PollResult]], Awaitable[None]]


async def run_polling(
    poller: Poller,
    session: aiohttp.ClientSession,
    hand_on: HandOn,
    stop: asyncio.Event,
    once: bool = False,
) -> None:
    """Poll every feed when it is due until ``stop`` is set (or one round with ``once``), and
    pass each round's results to ``hand_on``, which settles them when the articles are safe."""
    while not stop.is_set():
        due = poller.due(time.time())
        if due:
            await hand_on(await poller.poll_many(session, due))
        if once:
            return
        wait = max(1.0, min(poller.next_due() - time.time(), 60.0))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)


def in_order(results: Sequence[PollResult]) -> list[Article]:
    """The articles of one polling round, oldest first: a backlog replays in publication order,
    so stories grow (and escalate) as they did in the world."""
    merged = [a for r in results for a in r.articles]
    merged.sort(key=lambda a: (a.published, a.source, a.id))
    return merged
