"""Everything a process that reads feeds runs, the same in both runtimes: the poller, fetching
through the address guard, full text for teaser feeds, and WebSub pushes with polling as the
fallback. The runtime says only what to do with each batch of articles (``hand_on``): queue
them for the pipeline (``monitor run``) or publish them to Kafka (``monitor poll``).

* Every fetch (feeds, article pages, hubs) goes through :class:`netguard.GuardedSessions`:
  public addresses only, unless the feed may reach private ones (``allow_private``, or a
  private address written in its URL), and never link-local or cloud metadata addresses.
* WebSub runs when ``MONITOR_WEBSUB_CALLBACK_URL`` is set: a poll that finds a hub advertised
  offers it to the subscriber; the callback listener (``MONITOR_WEBSUB_HOST``/``PORT``) takes
  the hubs' verifications and signed pushes. A push is handed on like a poll's articles, and
  the hub is answered only once they are safe (queued, or acknowledged by Kafka): an error
  answer makes the hub deliver again, so a push is never lost to a crash. The next poll brings
  the same entries, which exact dedupe drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable, Sequence

from aiohttp import web

from monitor.errors import ConfigError, FeedError
from monitor.feeds.fetch import Fetched, FetchLimits
from monitor.feeds.fulltext import FullText, FullTextLimits
from monitor.feeds.netguard import GuardedSessions
from monitor.feeds.poller import FeedState, HandOn, Poller, run_polling
from monitor.feeds.schedule import Schedule
from monitor.feeds.sources import FeedSource
from monitor.feeds.websub import Subscriber, Subscription, discover
from monitor.logs import log
from monitor.metrics import Metrics
from monitor.settings import Settings
from monitor.state.sqlite import Store


def fetch_limits(settings: Settings) -> FetchLimits:
    total = settings.fetch_timeout
    return FetchLimits(
        total_timeout=total,
        connect_timeout=min(settings.fetch_connect_timeout, total),
        read_timeout=min(settings.fetch_read_timeout, total),
        max_bytes=settings.fetch_max_bytes,
    )


def guarded_sessions(settings: Settings, limits: FetchLimits | None = None) -> GuardedSessions:
    return GuardedSessions(
        limits or fetch_limits(settings),
        allowed=settings.allowed_networks(),
        contact_url=settings.fetch_contact_url,
    )


def freeze_startup() -> None:
    """Leave what start-up made (every feed's state, schedule and metric series: about a
    million objects at 10,000 feeds) out of the garbage collector's full passes: it lives as
    long as the process, and walking it paused the event loop for 0.2-0.3 s mid-round
    (bench/poller.py, --no-gc-freeze). Objects made later are collected as usual."""
    gc.collect()  # start-up's own garbage first: frozen, it would never be freed
    gc.freeze()
    # Fewer, larger young collections: a polling round allocates millions of short-lived
    # objects, and with the start-up frozen every tenth middle collection became a full one,
    # walking the round's live results mid-parse (60-90 ms pauses at 10,000 feeds).
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, 50_000), max(gen1, 20), max(gen2, 20))


class Intake:
    def __init__(
        self,
        settings: Settings,
        feeds: Sequence[FeedSource],
        store: Store,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.feeds = {f.name: f for f in feeds}
        limits = fetch_limits(settings)
        self.sessions = guarded_sessions(settings, limits)
        self.full_text = None
        if any(f.fetch_article for f in feeds):
            text_limits = FullTextLimits(concurrency=settings.fulltext_concurrency)
            self.full_text = FullText(text_limits, metrics)
        schedule = Schedule(
            min_interval=settings.poll_min_interval,
            max_interval=max(settings.poll_max_interval, settings.poll_min_interval),
        )
        self.poller = Poller(
            feeds,
            store.models("feeds", FeedState),
            metrics,
            limits,
            settings.fetch_concurrency,
            settings.fetch_per_host,
            schedule,
            full_text=self.full_text,
            pages=store.table("fulltext_pages") if self.full_text is not None else None,
        )
        self.subscriber: Subscriber | None = None
        if settings.websub_callback_url:
            self.subscriber = Subscriber(
                settings.websub_callback_url,
                store.models("websub", Subscription),
                self._pushed,
                self.sessions.get,
                lease_seconds=int(settings.websub_lease),
                allow_http_hubs=settings.websub_allow_http_hubs,
                max_bytes=settings.fetch_max_bytes,
                on_change=store.commit,
                metrics=metrics,
            )
            self.subscriber.export()
            self.poller.on_fetched = self._discovered
        self.websub_address: tuple[str, int] | None = None
        self._hand_on: HandOn | None = None

    async def run(
        self,
        hand_on: HandOn,
        stop: asyncio.Event,
        once: bool = False,
        idle: Callable[[], None] | None = None,
    ) -> None:
        """Poll until ``stop`` (one round with ``once``); take WebSub pushes meanwhile."""
        self._hand_on = hand_on
        freeze_startup()
        async with self.sessions, contextlib.AsyncExitStack() as stack:
            if self.subscriber is not None and not once:
                await stack.enter_async_context(self._websub(self.subscriber))
            await run_polling(self.poller, self.sessions.get, hand_on, stop, once, idle)

    @contextlib.asynccontextmanager
    async def _websub(self, subscriber: Subscriber) -> AsyncIterator[None]:
        runner = web.AppRunner(subscriber.app(), access_log=None)
        await runner.setup()
        try:
            host, port = self.settings.websub_host, self.settings.websub_port
            try:
                await web.TCPSite(runner, host, port).start()
            except OSError as exc:  # a clear start-up error, not a traceback
                raise ConfigError(
                    f"MONITOR_WEBSUB_HOST/MONITOR_WEBSUB_PORT: cannot listen on {host}:{port} "
                    f"({exc.strerror or exc})"
                ) from None
            bound = runner.addresses[0] if runner.addresses else ("?", 0)
            self.websub_address = (str(bound[0]), int(bound[1]))
            log.info(
                "websub_listening",
                address=f"{bound[0]}:{bound[1]}",
                callback=self.settings.websub_callback_url,
            )
            # hubs of feeds removed from the list, or with `websub: false`, are left
            subscriber.retain(name for name, f in self.feeds.items() if f.websub)
            ended = asyncio.Event()  # polling is over (stop was set, or it failed)
            task = asyncio.create_task(subscriber.run(ended))
            try:
                yield
            finally:
                ended.set()
                await task
        finally:
            await runner.cleanup()

    def _discovered(self, source: FeedSource, got: Fetched) -> None:
        assert self.subscriber is not None
        found = discover(got.body, got.url, got.links) if source.websub else None
        self.subscriber.offer(source.name, found, source.private_allowed)

    async def _pushed(self, feed: str, body: bytes) -> None:
        source = self.feeds.get(feed)
        if source is None or self._hand_on is None:
            raise FeedError(feed, "pushed content for a feed that is not polled here")
        url = self.poller.current_url(source)
        result = await self.poller.pushed(self.sessions.get, source, body, url)
        await self._hand_on([result])
        log.info("websub_articles", feed=feed, articles=len(result.articles))
