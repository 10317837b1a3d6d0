"""Polling: fetch each due feed (conditional GET), parse it off the event loop, keep per-feed
health and schedule in state, count everything. A failing feed is logged and counted; the
others carry on.

Politeness: at most ``per_host`` polls at once to one host and ``concurrency`` in all; each
feed's next poll follows how often it publishes (:mod:`monitor.feeds.schedule`), never sooner
than its publisher asks (``<ttl>``, ``sy:updatePeriod``, ``Cache-Control: max-age``,
``<skipHours>``, ``Retry-After`` on 429/503), with jitter; errors back off exponentially but
never stop a feed for good. A permanent redirect (301, 308) moves the feed: later polls go to
the new URL. 410 Gone retires it: no more polls until the feed list gives it another URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiohttp
from pydantic import BaseModel, ConfigDict

from monitor.errors import FeedError
from monitor.feeds.fetch import Fetched, FetchLimits, Gone, RetryLater, Validators, fetch
from monitor.feeds.fulltext import FullText
from monitor.feeds.hints import FeedHints, feed_hints, next_allowed
from monitor.feeds.netguard import SessionFor
from monitor.feeds.parse import parse_feed
from monitor.feeds.schedule import Schedule, adaptive_interval, backoff, jittered, remember
from monitor.feeds.sources import FeedSource
from monitor.logs import log
from monitor.metrics import Metrics
from monitor.models import Article

MAX_BACKOFF = Schedule().max_backoff
DEFAULT_PER_HOST = 2  # polls at once to one host: polite to the big hosts that serve many feeds
DEFAULT_PARSERS = 2  # feeds parsed at once (threads): the event loop keeps its share of the GIL
# Article pages handed on are remembered this long (feeds keep entries days, rarely weeks),
# and forgotten ones looked for this often.
_PAGES_KEEP = 30 * 86400.0
_PAGES_PRUNE_EVERY = 3600.0
_OUTCOMES = ("ok", "not_modified", "error", "timeout")


class FeedState(BaseModel):
    """Per-feed health, HTTP validators and schedule, kept across restarts."""

    model_config = ConfigDict(frozen=True)
    etag: str = ""
    last_modified: str = ""
    last_success: float = 0.0
    last_error: str = ""
    consecutive_errors: int = 0
    next_poll: float = 0.0
    entries: int = 0
    # Where polls go once the feed has moved by a permanent redirect ("": the feed list's URL),
    # and which feed-list URL this state belongs to: when the operator changes the URL, the
    # state (its moves, its retirement) no longer applies and the feed starts afresh.
    url: str = ""
    source_url: str = ""
    retired: bool = False  # 410 Gone: not polled until the feed list gives another URL
    last_poll: float = 0.0
    # The schedule: the interval chosen at the last success (adapted, before jitter and hints),
    # recent entries' dates (newest first), and the publisher's hints from the last full fetch.
    interval: float = 0.0
    entry_times: tuple[float, ...] = ()
    min_interval: float = 0.0  # <ttl>, sy:updatePeriod
    skip_hours: tuple[int, ...] = ()
    skip_days: tuple[int, ...] = ()


class PollResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    feed: str
    outcome: str  # ok | not_modified | error | timeout (| retired: asked to poll a retired feed)
    articles: list[Article] = []
    error: str = ""
    state: FeedState = FeedState()


OnFetched = Callable[[FeedSource, Fetched], None]
# One session for every feed (tests, tools), or the session for a feed by whether it may reach
# private addresses (netguard.GuardedSessions.get): a process's runtime passes the latter.
Sessions = aiohttp.ClientSession | SessionFor
PUSHED = "pushed"  # a PollResult of articles a WebSub hub pushed: no poll, no state change


class Poller:
    """Polls feeds. A poll's new feed state (validators, schedule, health) is *pending* until the
    runtime calls :meth:`settle` — once the articles are safely handed on (processed, or acked
    by Kafka). Saving the new ETag earlier would make a crash lose the articles: the next poll
    would get 304 Not Modified for a feed whose entries never got through.

    ``on_fetched`` (optional) sees every response with a body (WebSub discovery reads the
    hub links there); it runs on the event loop and must be quick. ``full_text`` (optional)
    fetches the article pages of ``fetch_article`` feeds once their feed is parsed.

    ``pages`` (optional, kept in state) remembers the article URLs of ``fetch_article`` feeds
    already handed on: their pages are not fetched again, even after a restart. A later copy
    of an article at the same URL is an exact duplicate downstream, whatever its body, so a
    second fetch of its page could never change an outcome; it would only cost the outlet a
    request (a changed feed of fifty entries: fifty pages after every restart)."""

    def __init__(
        self,
        sources: Sequence[FeedSource],
        state: MutableMapping[str, FeedState],
        metrics: Metrics,
        limits: FetchLimits | None = None,
        concurrency: int = 16,
        per_host: int = DEFAULT_PER_HOST,
        schedule: Schedule | None = None,
        parsers: int = DEFAULT_PARSERS,
        rng: random.Random | None = None,
        on_fetched: OnFetched | None = None,
        full_text: FullText | None = None,
        pages: MutableMapping[str, float] | None = None,
    ) -> None:
        self.sources = list(sources)
        self.state: MutableMapping[str, FeedState] = _Cached(state)
        self.metrics = metrics
        self.limits = limits or FetchLimits()
        self.schedule = schedule or Schedule()
        self.per_host = per_host
        self.on_fetched = on_fetched
        self.full_text = full_text
        self.pages = pages
        self._fetching = {s.name for s in self.sources if s.fetch_article}  # pages remembered
        self._pages_pruned = time.time()
        self._rng = rng or random.Random()
        self._gate = asyncio.Semaphore(concurrency)
        self._window = 4 * concurrency
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._hosts_of: dict[str, str] = {}
        self._parsers = asyncio.Semaphore(parsers)
        self.pending: dict[str, FeedState] = {}
        self._metric_series: dict[str, _Series] = {}
        metrics.start_series(feeds=[s.name for s in self.sources])
        for source in self.sources:
            metrics.feed_interval.labels(source.name).set(source.interval)
            st = self._state(source)
            # from the saved state: a restart must not hide a feed that has been stale for days
            if st.last_success:
                self._series(source).last_success.set(st.last_success)
            self._export(source, st)

    # --- the schedule ------------------------------------------------------------------------

    def due(self, now: float) -> list[FeedSource]:
        out = []
        for s in self.sources:
            st = self._state(s)
            if not st.retired and st.next_poll <= now:
                out.append(s)
        return out

    def next_due(self) -> float:
        times = [st.next_poll for st in map(self._state, self.sources) if not st.retired]
        return min(times, default=time.time() + 60)

    def current_url(self, source: FeedSource) -> str:
        """Where the feed lives now (its URL, or where a permanent redirect moved it)."""
        return self._state(source).url or source.url

    def retired(self) -> list[FeedSource]:
        return [s for s in self.sources if self._state(s).retired]

    def _state(self, source: FeedSource) -> FeedState:
        st = self.pending.get(source.name) or self.state.get(source.name)
        if st is None:
            return FeedState()
        if st.source_url and st.source_url != source.url:
            return FeedState()  # the operator gave the feed a new URL: a new start
        return st

    def settle(self, results: Sequence[PollResult]) -> None:
        """Persist the feed states of polls whose articles have been handed on (and the
        article pages those carried, for ``fetch_article`` feeds)."""
        self._remember_pages(results)
        for result in results:
            if result.outcome == PUSHED:
                continue
            self.state[result.feed] = result.state
            if self.pending.get(result.feed) == result.state:
                del self.pending[result.feed]

    def _remember_pages(self, results: Sequence[PollResult]) -> None:
        if self.pages is None:
            return
        now = time.time()
        for result in results:
            if result.feed in self._fetching:
                for article in result.articles:
                    if article.url:
                        self.pages[article.url] = now
        if now - self._pages_pruned > _PAGES_PRUNE_EVERY:
            self._pages_pruned = now
            for url, at in list(self.pages.items()):
                if now - at > _PAGES_KEEP:
                    del self.pages[url]

    def _page_known(self, article: Article) -> bool:
        return self.pages is not None and article.url in self.pages

    # --- polling -----------------------------------------------------------------------------

    async def poll_many(self, session: Sessions, sources: Sequence[FeedSource]) -> list[PollResult]:
        """Poll ``sources``; the results in their order. At most a window of polls exist at a
        time (a few times ``concurrency``), taken host by host in turn: ten thousand polls
        started at once would hold the event loop while they start and keep ten thousand
        tasks alive for the garbage collector to walk; taken in the list's order, a window
        filled with one host's feeds would wait on that host's limit while others idle."""
        results: list[PollResult | None] = [None] * len(sources)
        window = asyncio.Semaphore(self._window)
        running: set[asyncio.Task[None]] = set()
        failures: list[BaseException] = []

        async def one(i: int) -> None:
            try:
                results[i] = await self.poll(session, sources[i])
            finally:
                window.release()

        def finished(task: asyncio.Task[None]) -> None:
            running.discard(task)
            error = None if task.cancelled() else task.exception()
            if error is not None:
                failures.append(error)

        try:
            for i in self._by_host(sources):
                await window.acquire()
                if failures:
                    raise failures[0]
                task = asyncio.create_task(one(i))
                running.add(task)
                task.add_done_callback(finished)
            while running:
                await asyncio.wait(list(running))
            if failures:
                raise failures[0]
        except BaseException:
            for task in list(running):
                task.cancel()
            raise
        return [r for r in results if r is not None]

    def _by_host(self, sources: Sequence[FeedSource]) -> list[int]:
        """Indexes of ``sources`` taking each host in turn: a, b, c, a, b, c, a, a, ..."""
        queues: dict[str, list[int]] = {}
        for i, source in enumerate(sources):
            queues.setdefault(self._host(self._state(source).url or source.url), []).append(i)
        lanes = [q[::-1] for q in queues.values()]
        order: list[int] = []
        while lanes:
            for lane in lanes:
                order.append(lane.pop())
            lanes = [lane for lane in lanes if lane]
        return order

    async def poll(self, sessions: Sessions, source: FeedSource) -> PollResult:
        previous = self._state(source)
        if previous.retired:
            return PollResult(
                feed=source.name, outcome="retired", error=previous.last_error, state=previous
            )
        session = _session_for(sessions, source)
        host = self._host(previous.url or source.url)
        # the host's slot first: feeds queued behind a busy host hold no global slot meanwhile
        per_host = self._host_gate(host) if host else contextlib.nullcontext()
        async with per_host, self._gate:
            result = await self._poll(session, source)
        # Article pages after the feed's slots are given back: they have gates of their own,
        # and a feed with many new pages must not hold up other feeds of its host.
        return await self._with_full_text(session, source, result)

    async def pushed(
        self, sessions: Sessions, source: FeedSource, body: bytes, url: str
    ) -> PollResult:
        """The articles of a feed document a WebSub hub pushed (signature already checked):
        parsed and, for a ``fetch_article`` feed, given their full text. Raises FeedError for
        a document that cannot be read, so the hub hears of it and delivers it again."""
        fetched_at = datetime.now(UTC)
        async with self._parsers:
            articles = await asyncio.to_thread(
                parse_feed, body, source, fetched_at, url, "application/xml"
            )
        self._series(source).articles.inc(len(articles))
        result = PollResult(
            feed=source.name, outcome=PUSHED, articles=articles, state=self._state(source)
        )
        return await self._with_full_text(_session_for(sessions, source), source, result)

    async def _with_full_text(
        self, session: aiohttp.ClientSession, source: FeedSource, result: PollResult
    ) -> PollResult:
        if not (source.fetch_article and self.full_text is not None and result.articles):
            return result
        articles = await self.full_text.enrich(
            session, source.name, result.articles, skip=self._page_known
        )
        return result.model_copy(update={"articles": articles})

    def _host(self, url: str) -> str:
        host = self._hosts_of.get(url)
        if host is None:
            host = self._hosts_of[url] = (urlsplit(url).hostname or "").lower()
        return host

    def _host_gate(self, host: str) -> asyncio.Semaphore:
        gate = self._hosts.get(host)
        if gate is None:
            gate = self._hosts[host] = asyncio.Semaphore(self.per_host)
        return gate

    async def _poll(self, session: aiohttp.ClientSession, source: FeedSource) -> PollResult:
        previous = self._state(source)
        url = previous.url or source.url
        started = time.monotonic()
        fetched_at = datetime.now(UTC)
        hints: FeedHints | None = None
        try:
            got = await fetch(
                session,
                source.name,
                url,
                Validators(previous.etag, previous.last_modified),
                self.limits,
            )
            articles: list[Article] = []
            if not got.not_modified:
                if self.on_fetched is not None:
                    try:
                        self.on_fetched(source, got)
                    except Exception:  # an observer's bug is not the feed's failure
                        log.exception("feed_on_fetched_failed", feed=source.name)
                async with self._parsers:
                    articles, hints = await asyncio.to_thread(
                        _parse, got.body, source, fetched_at, got.url, got.content_type
                    )
        except Gone as exc:
            return self._retire(source, previous, str(exc), started)
        except RetryLater as exc:
            return self._failed(source, previous, exc.outcome, str(exc), started, exc.delay)
        except FeedError as exc:
            return self._failed(source, previous, exc.outcome, str(exc), started)
        except Exception as exc:  # a bug or an unforeseen input must not stop the other feeds
            log.exception("feed_poll_crashed", feed=source.name)
            return self._failed(source, previous, "error", f"{type(exc).__name__}: {exc}", started)
        return self._succeeded(source, previous, url, got, articles, hints, fetched_at, started)

    def _succeeded(
        self,
        source: FeedSource,
        previous: FeedState,
        url: str,
        got: Fetched,
        articles: list[Article],
        hints: FeedHints | None,
        fetched_at: datetime,
        started: float,
    ) -> PollResult:
        now = time.time()
        times = previous.entry_times
        min_interval, skip_hours, skip_days = (
            previous.min_interval,
            previous.skip_hours,
            previous.skip_days,
        )
        if not got.not_modified:
            # undated entries (and those dated in the future) carry the fetch time: no evidence
            dated = [a.published.timestamp() for a in articles if a.published < fetched_at]
            times = remember(times, dated, self.schedule.keep_entries)
        if hints is not None:
            min_interval = hints.min_interval
            skip_hours, skip_days = tuple(sorted(hints.skip_hours)), tuple(sorted(hints.skip_days))
        interval = adaptive_interval(source.interval, times, now, self.schedule)
        floor, ceiling = self.schedule.bounds(source.interval)
        delay = jittered(interval, floor, ceiling, self.schedule.jitter, self._rng)
        # the publisher's lower bounds, up to the ceiling: no publisher stops a feed for good
        delay = max(delay, min(max(min_interval, got.max_age or 0.0), ceiling))
        after = next_allowed(now + delay, frozenset(skip_hours), frozenset(skip_days))
        next_poll = min(after, now + ceiling)
        moved = previous.url
        if got.moved_to:
            moved = "" if got.moved_to == source.url else got.moved_to
            log.info("feed_moved", feed=source.name, old=url, new=got.moved_to, status="permanent")
        state = FeedState(
            etag=got.validators.etag,
            last_modified=got.validators.last_modified,
            last_success=now,
            next_poll=next_poll,
            entries=previous.entries if got.not_modified else len(articles),
            url=moved,
            source_url=source.url,
            last_poll=now,
            interval=interval,
            entry_times=times,
            min_interval=min_interval,
            skip_hours=skip_hours,
            skip_days=skip_days,
        )
        outcome = "not_modified" if got.not_modified else "ok"
        self.pending[source.name] = state
        series = self._series(source)
        series.count(outcome, started)
        series.last_success.set(now)
        self._export(source, state)
        if not got.not_modified:
            series.entries.set(len(articles))
            series.articles.inc(len(articles))
        log.debug("feed_polled", feed=source.name, outcome=outcome, entries=len(articles))
        return PollResult(feed=source.name, outcome=outcome, articles=articles, state=state)

    def _failed(
        self,
        source: FeedSource,
        previous: FeedState,
        outcome: str,
        error: str,
        started: float,
        retry_after: float | None = None,
    ) -> PollResult:
        errors = previous.consecutive_errors + 1
        # Back off exponentially from the feed's interval, but never stop polling it for good.
        base = previous.interval or source.interval
        spread = self.schedule.jitter
        delay = backoff(errors, base, self.schedule.max_backoff)
        delay *= self._rng.uniform(1 - spread, 1 + spread)
        if retry_after is not None:  # the server's word, as long as it is not "never"
            delay = max(delay, min(retry_after, self.schedule.max_retry_after))
        now = time.time()
        state = previous.model_copy(
            update={
                "last_error": error,
                "consecutive_errors": errors,
                "next_poll": now + delay,
                "source_url": source.url,
                "last_poll": now,
            }
        )
        self.pending[source.name] = state
        self._series(source).count(outcome, started)
        self._export(source, state)
        log.warning(
            "feed_poll_failed",
            feed=source.name,
            outcome=outcome,
            error=error,
            consecutive_errors=errors,
            next_poll_in=round(delay),
        )
        return PollResult(feed=source.name, outcome=outcome, error=error, state=state)

    def _retire(
        self, source: FeedSource, previous: FeedState, error: str, started: float
    ) -> PollResult:
        now = time.time()
        state = previous.model_copy(
            update={
                "retired": True,
                "last_error": error,
                "consecutive_errors": previous.consecutive_errors + 1,
                "source_url": source.url,
                "last_poll": now,
            }
        )
        self.pending[source.name] = state
        self._series(source).count("error", started)
        self._export(source, state)
        log.warning(
            "feed_retired",
            feed=source.name,
            url=previous.url or source.url,
            error=error,
            hint="no more polls until the feed list gives this feed another URL",
        )
        return PollResult(feed=source.name, outcome="error", error=error, state=state)

    def _series(self, source: FeedSource) -> _Series:
        series = self._metric_series.get(source.name)
        if series is None:
            series = self._metric_series[source.name] = _Series(self.metrics, source.name)
        return series

    def _export(self, source: FeedSource, state: FeedState) -> None:
        """A feed's health and schedule as gauges."""
        series = self._series(source)
        series.retired.set(1 if state.retired else 0)
        series.next_poll.set(float("inf") if state.retired else state.next_poll)
        series.consecutive_errors.set(state.consecutive_errors)
        series.interval.set(state.interval or source.interval)


class _Series:
    """One feed's labelled metrics, looked up once: with thousands of feeds polled a round,
    the lookups (a lock and a dict each) add up."""

    def __init__(self, metrics: Metrics, feed: str) -> None:
        self.metrics, self.feed = metrics, feed
        self.polls = {o: metrics.feed_polls.labels(feed, o) for o in _OUTCOMES}
        self.duration = metrics.poll_duration.labels(feed)
        self.last_success = metrics.feed_last_success.labels(feed)
        self.entries = metrics.feed_entries.labels(feed)
        self.articles = metrics.articles.labels(feed)
        self.retired = metrics.feed_retired.labels(feed)
        self.next_poll = metrics.feed_next_poll.labels(feed)
        self.consecutive_errors = metrics.feed_consecutive_errors.labels(feed)
        self.interval = metrics.feed_poll_interval.labels(feed)

    def count(self, outcome: str, started: float) -> None:
        polls = self.polls.get(outcome) or self.metrics.feed_polls.labels(self.feed, outcome)
        polls.inc()
        self.duration.observe(time.monotonic() - started)


def _session_for(sessions: Sessions, source: FeedSource) -> aiohttp.ClientSession:
    if isinstance(sessions, aiohttp.ClientSession):
        return sessions
    return sessions(source.private_allowed)


def _parse(
    body: bytes, source: FeedSource, fetched_at: datetime, url: str, content_type: str
) -> tuple[list[Article], FeedHints]:
    """In a thread: the articles, and the publisher's polling hints from the same bytes."""
    return parse_feed(body, source, fetched_at, url, content_type), feed_hints(body)


class _Cached(MutableMapping[str, FeedState]):
    """The feed states in memory, written through to the store. :meth:`Poller.due` looks at
    every feed each time round: thousands of reads of an SQLite table (a query, JSON and a
    model each) would hold the event loop for a noticeable while."""

    def __init__(self, backing: MutableMapping[str, FeedState]) -> None:
        self.backing = backing
        self._memo: dict[str, FeedState | None] = {}

    def __getitem__(self, key: str) -> FeedState:
        if key not in self._memo:
            self._memo[key] = self.backing.get(key)
        value = self._memo[key]
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: FeedState) -> None:
        self.backing[key] = value
        self._memo[key] = value

    def __delitem__(self, key: str) -> None:
        self._memo.pop(key, None)
        del self.backing[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.backing)

    def __len__(self) -> int:
        return len(self.backing)


HandOn = Callable[[list[PollResult]], Awaitable[None]]


async def run_polling(
    poller: Poller,
    session: Sessions,
    hand_on: HandOn,
    stop: asyncio.Event,
    once: bool = False,
    idle: Callable[[], None] | None = None,
) -> None:
    """Poll every feed when it is due until ``stop`` is set (or one round with ``once``), and
    pass each round's results to ``hand_on``, which settles them when the articles are safe.

    ``idle`` (optional) is called on every turn of the loop, feeds due or not: with schedules
    that adapt up to hours, "a round was polled lately" no longer says the poller is alive;
    "the loop turned lately" does (it turns at least once a minute)."""
    while not stop.is_set():
        due = poller.due(time.time())
        if due:
            await hand_on(await poller.poll_many(session, due))
        if idle is not None:
            idle()
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
