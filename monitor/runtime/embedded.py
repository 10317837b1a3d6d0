"""The embedded runtime: no broker. Pollers -> asyncio queue -> pipeline -> outbox -> sinks,
all state in one SQLite file.

Crash safety: an article's state changes (dedupe keys, story, alert threads) and the alerts they
produce are committed together, the alerts into an *outbox* table; the delivery task sends from
the outbox and records each send in the ledger. A crash can therefore only re-send from the
outbox, and the ledger turns that into nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from monitor.feeds.intake import Intake
from monitor.feeds.poller import PollResult, in_order
from monitor.feeds.sources import FeedSource, poll_deadline
from monitor.health import Health, Heartbeat, Server
from monitor.logs import log
from monitor.metrics import Metrics
from monitor.models import Alert, Article, DeadAlert, Delivery, Silence, Story
from monitor.pipeline.alerting import Thread
from monitor.pipeline.cluster import Signed
from monitor.pipeline.dispatch import Bucket, Dispatcher, Held
from monitor.pipeline.spike import SpikeCounts
from monitor.rules.reload import RuleReloader, watch_directory
from monitor.rules.ruleset import RuleSet
from monitor.runtime.deadletters import REPLAY_ARTICLES, keep_article, queued_replays
from monitor.runtime.delivery import Deliverer, RetryPolicy, ledger_key
from monitor.runtime.outflow import Outflow, SilencedAlert
from monitor.runtime.signals import stop_on_signals
from monitor.runtime.stages import Pipeline
from monitor.settings import Settings
from monitor.sinks.base import Sink
from monitor.sinks.registry import SinkPool
from monitor.state.archive import ArticleArchive
from monitor.state.lock import running_on
from monitor.state.sqlite import Store

_DONE = object()
_REPLAYS = object()  # in the article queue: take up the articles queued for replay
_PRUNE_EVERY = 500  # articles between closing quiet stories
_TICK = 1.0  # seconds between checks for held batches that are due


@dataclass(frozen=True)
class _Round:
    """Marks the end of one polling round's articles in the queue."""

    results: list[PollResult]


@dataclass
class RunReport:
    polls: dict[str, str] = field(default_factory=dict)  # feed -> last outcome
    errors: dict[str, str] = field(default_factory=dict)  # feed -> last error
    delivered: int = 0
    failed: int = 0
    silenced: int = 0
    held: int = 0  # still held at the end (quiet hours, rate limit): sent by the next run
    skipped_routes: dict[str, str] = field(default_factory=dict)


class EmbeddedRuntime:
    def __init__(
        self,
        settings: Settings,
        ruleset: RuleSet,
        feeds: list[FeedSource],
        metrics: Metrics | None = None,
        sinks: dict[str, Sink] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.report = RunReport()
        self.store = Store(settings.state)
        routes = ruleset.routes
        # Given sinks (tests, backtests) are fixed; otherwise a pool, rebound on each reload.
        self.pool = SinkPool(settings, self.store.table) if sinks is None else None
        if self.pool is not None:
            sinks, self.report.skipped_routes = self.pool.bind(routes)
        assert sinks is not None
        self.sinks = sinks
        active = [r for r in routes if r.name in self.sinks]
        self.pipeline = Pipeline(
            ruleset,
            active,
            self.store.table("seen"),
            self.store.models("signatures", Signed),
            self.store.models("stories", Story),
            self.store.models("threads", Thread),
            self.metrics,
            self.store.models("spikes", SpikeCounts),
        )
        self.outbox = self.store.models("outbox", Alert)
        self.deliverer = Deliverer(
            self.sinks, self.store.table("ledger"), self.metrics, RetryPolicy.of(settings)
        )
        self.dead = self.store.models("dead_alerts", DeadAlert)
        self.replays = self.store.table(REPLAY_ARTICLES)  # written by `monitor articles replay`
        self.archive = ArticleArchive(self.store.db) if settings.archive_days > 0 else None
        # `monitor silence add` writes this table from another process; read it fresh each time
        self.silences = self.store.models("silences", Silence)
        self.dispatcher = Dispatcher(
            active,
            self.store.models("held", Held),
            self.store.models("buckets", Bucket),
            lambda: list(self.silences.values()),
        )
        self.outflow = Outflow(
            self.dispatcher,
            self.deliverer,
            self.store.models("silenced_alerts", SilencedAlert),
            self._keep_dead,
            self.metrics,
        )
        self.intake = Intake(settings, feeds, self.store, self.metrics)
        self.poller = self.intake.poller
        self.reloader = RuleReloader(ruleset, self._use_rules, self.metrics)
        self.polled = Heartbeat()
        self.health = Health()
        self.health.add("rules", lambda: None if self.pipeline.ruleset.rules else "no rules")
        self.health.add("feeds", self.polled.check(poll_deadline(feeds), "a polling round"))
        self.metrics_address: tuple[str, int] | None = None
        self._stop = asyncio.Event()
        self._event_time = datetime.fromtimestamp(0, tz=UTC)

    def _use_rules(self, ruleset: RuleSet) -> None:
        """A reloaded rule set: tag with it from the next article, route with its routes."""
        if self.pool is not None:
            sinks, skipped = self.pool.bind(ruleset.routes)
            self.sinks.clear()
            self.sinks.update(sinks)  # in place: the deliverer holds this mapping
            self.report.skipped_routes = skipped
        active = [r for r in ruleset.routes if r.name in self.sinks]
        self.pipeline.use(ruleset, active)
        self.dispatcher.set_routes(active)

    # --- the loop -------------------------------------------------------------------------

    async def run(self, once: bool = False) -> RunReport:
        with running_on(self.settings.state):  # a second process on this state is refused
            return await self._run(once)

    async def _run(self, once: bool) -> RunReport:
        server = None
        if self.settings.metrics_port is not None:
            server = Server(self.metrics.registry, self.health)
            self.metrics_address = await server.start(
                self.settings.metrics_host, self.settings.metrics_port
            )
        articles: asyncio.Queue[object] = asyncio.Queue(maxsize=10_000)
        outgoing: asyncio.Queue[object] = asyncio.Queue()
        # Alerts decided before a crash but never sent go out first.
        for key in list(self.outbox):
            outgoing.put_nowait(key)
        finished = asyncio.Event()  # ends the rules watcher with the run
        watcher = None
        interval = self.settings.rules_reload_interval
        if interval > 0 and self.settings.rules.is_dir():
            watcher = asyncio.create_task(
                watch_directory(self.settings.rules, self.reloader, finished, interval)
            )
        try:
            with stop_on_signals(self._stop):
                await asyncio.gather(
                    self._poll_loop(articles, once),
                    self._process_loop(articles, outgoing),
                    self._deliver_loop(outgoing),
                )
        finally:
            finished.set()
            if watcher is not None:
                await watcher
            sinks = self.pool.built() if self.pool is not None else self.sinks.values()
            for sink in set(sinks):
                await sink.close()
            self.store.close()
            if server is not None:
                await server.stop()
        return self.report

    async def _poll_loop(self, articles: asyncio.Queue[object], once: bool) -> None:
        async def hand_on(results: list[PollResult]) -> None:
            for r in results:
                self.report.polls[r.feed] = r.outcome
                if r.error:
                    self.report.errors[r.feed] = r.error
                else:
                    self.report.errors.pop(r.feed, None)
            self.polled.beat()
            for article in in_order(results):
                await articles.put(article)
            # the process loop saves these feed states once the round's articles are committed
            await articles.put(_Round(results))

        def turned() -> None:
            # the loop is alive even when no feed is due (adaptive intervals reach hours)
            self.polled.beat()
            # and articles `monitor articles replay` queued are taken up at least once a
            # minute, feeds due or not (a full queue is busy: the next turn will do)
            with contextlib.suppress(asyncio.QueueFull):
                articles.put_nowait(_REPLAYS)

        try:
            await self.intake.run(hand_on, self._stop, once, idle=turned)
        finally:
            await articles.put(_DONE)

    async def _process_loop(
        self, articles: asyncio.Queue[object], outgoing: asyncio.Queue[object]
    ) -> None:
        try:
            while True:
                item = await articles.get()
                if item is _DONE:
                    return
                if isinstance(item, _Round):
                    self.poller.settle(item.results)
                    resolved = self.pipeline.sweep(datetime.now(UTC))
                    for alert in resolved:
                        self.outbox[ledger_key(alert)] = alert
                    self.store.commit()
                    for alert in resolved:
                        await outgoing.put(ledger_key(alert))
                    continue
                if item is _REPLAYS:
                    await self._replay(outgoing)
                    continue
                assert isinstance(item, Article)
                await self._process(item, outgoing)
        finally:
            await outgoing.put(_DONE)

    async def _replay(self, outgoing: asyncio.Queue[object]) -> None:
        """Articles `monitor articles replay` queued (from another process): through the
        pipeline like any other; one failing again is set aside anew, with its new error."""
        for article in queued_replays(self.store):
            log.info("article_replayed", article_id=article.id, feed=article.source)
            await self._process(article, outgoing, replay=True)

    async def _process(
        self, item: Article, outgoing: asyncio.Queue[object], replay: bool = False
    ) -> None:
        # A replayed article leaves the queue in the transaction that decides it.
        if replay:
            self.replays.pop(item.id, None)
        if self.archive is not None:
            self.archive.add(item)  # before processing: a failing article is kept too
        try:
            alerts = self.pipeline.process(item)
        except Exception as exc:  # one bad article must not stop the stream
            log.exception("article_failed", article_id=item.id, feed=item.source)
            self.store.rollback()  # none of its half-made changes, but keep it
            if replay:
                self.replays.pop(item.id, None)
            if self.archive is not None:
                self.archive.add(item)
            self.metrics.dead_letters.labels("process").inc()
            keep_article(self.store, item, "process", f"{type(exc).__name__}: {exc}")
            self.store.commit()
            return
        for alert in alerts:
            self.outbox[ledger_key(alert)] = alert
        # stories close by event time (the news' own clock), so replays behave alike
        self._event_time = max(self._event_time, item.published)
        if self.pipeline.counts.articles % _PRUNE_EVERY == 0:
            self.pipeline.prune(self._event_time)
            if self.archive is not None:
                keep = timedelta(days=self.settings.archive_days)
                self.archive.prune(datetime.now(UTC) - keep)
        self.store.commit()
        for alert in alerts:
            await outgoing.put(ledger_key(alert))

    async def _deliver_loop(self, outgoing: asyncio.Queue[object]) -> None:
        """Hands each alert to its route's lane: a destination that is down and being retried
        holds up only its own route, never the others."""
        lanes: dict[str, asyncio.Queue[object]] = {}
        tasks: list[asyncio.Task[None]] = []

        def lane(route: str) -> asyncio.Queue[object]:
            if route not in lanes:
                lanes[route] = asyncio.Queue()
                tasks.append(asyncio.create_task(self._lane(route, lanes[route])))
            return lanes[route]

        for route in self.dispatcher.routes:
            lane(route)
        try:
            while True:
                key = await outgoing.get()
                if key is _DONE:
                    break
                assert isinstance(key, str)
                alert = self.outbox.get(key)
                if alert is not None:
                    lane(alert.route).put_nowait(key)
        finally:
            for queue in lanes.values():
                queue.put_nowait(_DONE)
            await asyncio.gather(*tasks)
        held = len(self.dispatcher.held)
        if held:
            log.info("alerts_held_for_later", alerts=held)
        self.report.held = held

    async def _lane(self, route: str, queue: asyncio.Queue[object]) -> None:
        finishing = False
        while True:
            try:
                key = await asyncio.wait_for(queue.get(), timeout=_TICK)
            except TimeoutError:
                key = None
            if key is _DONE:
                finishing = True
            elif isinstance(key, str):
                alert = self.outbox.get(key)
                if alert is not None:
                    self._count(await self.outflow.admit(alert, datetime.now(UTC)))
                    del self.outbox[key]
                    self.store.commit()
            self._count(await self.outflow.flush(datetime.now(UTC), route))
            self.store.commit()
            if finishing and not self._waiting_for_group_window(route):
                return

    def _waiting_for_group_window(self, route: str) -> bool:
        """At the end of a run, group windows are waited out (they are short); alerts held
        for quiet hours or a rate limit stay held, in the state file, for the next run."""
        return any(
            h.reason == "group" and h.alert.route == route for h in self.dispatcher.held.values()
        )

    def _count(self, results: list[Delivery]) -> None:
        for r in results:
            if r.outcome == "ok":
                self.report.delivered += 1
            elif r.outcome in {"error", "no_route"}:
                self.report.failed += 1
            elif r.outcome == "silenced":
                self.report.silenced += 1

    async def _keep_dead(self, dead: DeadAlert) -> None:
        self.dead[ledger_key(dead.alert)] = dead
