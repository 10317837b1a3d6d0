"""``monitor worker``: the pipeline as Faust agents over Kafka topics, state in RocksDB tables.

    news.articles --ingest--> news.candidates --cluster--> news.stories --alerting--> news.alerts
                                                                          --deliver--> sinks
                                                            (undeliverable: news.alerts.dead)

The agents only decode, call the same stage code as the embedded runtime (monitor.runtime.stages)
and send on. Guarantee: at-least-once. After a crash the uncommitted input is replayed, and a
stage's table may already hold what the replayed record wrote while its output was lost; so
every stage is replay-safe: exact dedupe lets the same occurrence of an article through again,
clustering reports an article it already placed without counting it twice, alerting raises the
alert of the story event that last changed a thread again (same deterministic id), and the
delivery ledger drops an alert id already sent to a route. Faust's exactly_once mode is not
used: it has open bugs.

A record that fails to decode or to process goes to ``news.deadletter`` with the error, is
counted, and the agent carries on.

Time-driven work (stories resolving when quiet; held digests coming due) needs table writes,
which Faust allows only while processing a record of the table's partition. So timers do not
write: they send a *tick* record (key ``__tick__``) to the partitions this worker owns, and the
agent does the work when the tick comes round, in the right partition's context.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import faust
from pydantic import BaseModel, ValidationError

from monitor.health import Health, Heartbeat, Server
from monitor.logs import log
from monitor.metrics import Metrics
from monitor.models import (
    Alert,
    Article,
    DeadAlert,
    Delivery,
    Silence,
    Story,
    StoryEvent,
    TaggedArticle,
)
from monitor.pipeline.alerting import Thread
from monitor.pipeline.cluster import Signed
from monitor.pipeline.dispatch import Bucket, Dispatcher, Held
from monitor.pipeline.spike import SpikeCounts
from monitor.rules.models import Route
from monitor.rules.reload import RuleReloader, on_published
from monitor.rules.ruleset import RuleSet
from monitor.runtime.compacted import follow
from monitor.runtime.dead import RESEND
from monitor.runtime.deadletters import kept_value
from monitor.runtime.delivery import Deliverer, RetryPolicy, ledger_key
from monitor.runtime.outflow import Outflow, SilencedAlert
from monitor.runtime.silences import follow_silences
from monitor.runtime.stages import Pipeline
from monitor.runtime.topics import Topics
from monitor.settings import Settings
from monitor.sinks.registry import SINK_STATE_TABLES, SinkPool
from monitor.state.sqlite import ModelTable

M = TypeVar("M", bound=BaseModel)
_PRUNE_EVERY = 500
TICK = b"__tick__"
_SWEEP_MAX = 30.0  # seconds between resolution sweeps of the alert threads, at most
_LAG_EVERY = 5.0  # seconds between consumer-lag readings (each one a broker round trip)
_BROKER_DEADLINE = 30.0  # seconds without a broker round trip before the worker is not ready
_FLUSH_EVERY = 1.0  # seconds between checks for held digests that are due


def sweep_interval(routes: list[Route]) -> float:
    """A fifth of the shortest resolve_after, between 1 s and _SWEEP_MAX."""
    spans = [r.resolve_after.total_seconds() for r in routes if r.resolve_after is not None]
    return max(1.0, min([_SWEEP_MAX] + [s / 5 for s in spans]))


def is_tick(event: Any) -> bool:
    return bool(event.message.key == TICK)


def is_resend(event: Any) -> bool:
    """Whether `monitor alerts resend` put this alert back (its RESEND header)."""
    headers = event.message.headers or ()
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return any(name == RESEND for name, _ in pairs)


def story_partition(story_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a story's records (murmur2 of the key):
    the partition whose table changelog holds the story's threads."""
    from aiokafka.partitioner import murmur2

    return int(murmur2(story_id.encode()) & 0x7FFFFFFF) % partitions


def build_app(
    settings: Settings, ruleset: RuleSet, metrics: Metrics
) -> tuple[faust.App, dict[str, str]]:
    """The Faust app, and the routes skipped for want of sink settings (route -> reason)."""
    assert settings.kafka_bootstrap, "MONITOR_KAFKA_BOOTSTRAP is required"
    n = settings.kafka_partitions
    app = faust.App(
        settings.kafka_group,
        broker=[f"kafka://{h.strip()}" for h in settings.kafka_bootstrap.split(",")],
        store="rocksdb://",
        datadir=str(settings.data_dir),
        topic_partitions=n,
        topic_replication_factor=settings.kafka_replication,
        producer_acks=-1,
        producer_linger_ms=2,  # lets a batch's records share produce requests
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        broker_commit_interval=1.0,  # a killed worker replays at most about a second of input
        broker_session_timeout=settings.kafka_session_timeout,
        web_enabled=False,
    )

    def topic(name: str, partitions: int) -> faust.TopicT:
        # Raw bytes: records are decoded by the agents so a bad one can be dead-lettered.
        return app.topic(name, partitions=partitions, key_serializer="raw", value_serializer="raw")

    names = Topics(settings.kafka_topic_prefix)
    t_articles = topic(names.articles, n)
    t_candidates = topic(names.candidates, 1)
    t_stories = topic(names.stories, n)
    t_alerts = topic(names.alerts, 1)
    t_alerts_dead = topic(names.alerts_dead, 1)
    t_dead = topic(names.dead_letters, 1)

    seen = app.Table("seen", partitions=n)
    threads = ModelTable(app.Table("threads", partitions=n), Thread)
    # Sink state (Slack's story -> thread ts) lives in tables partitioned like news.alerts (one
    # partition), which the deliver agent consumes. Made now, for every sink that keeps state,
    # used or not: Faust cannot add a table once the worker runs, and a rule reload may bring
    # a route to a sink no route used before.
    sink_tables = {name: app.Table(name, partitions=1) for name in SINK_STATE_TABLES}

    def sink_state(name: str) -> MutableMapping[str, Any]:
        return sink_tables[name]

    pool = SinkPool(settings, sink_state)
    sinks, skipped = pool.bind(ruleset.routes)
    active = [r for r in ruleset.routes if r.name in sinks]
    pipe = Pipeline(
        ruleset,
        active,
        seen,
        ModelTable(app.Table("signatures", partitions=1), Signed),
        ModelTable(app.Table("stories", partitions=1), Story),
        threads,
        metrics,
        # counted in the cluster agent (one partition: every article seen once, globally)
        ModelTable(app.Table("spikes", partitions=1), SpikeCounts),
    )
    # One try per alert, a failure held for its backoff (Outflow, on the flush ticks): the deliver
    # agent takes every route's alerts in turn, and waiting out one destination's retries
    # (minutes, when SMTP is down) would hold up every other route's alerts behind it.
    deliverer = Deliverer(
        sinks,
        app.Table("ledger", partitions=1),
        metrics,
        RetryPolicy.of(settings),
        inline_retries=False,
    )
    silences: dict[str, Silence] = {}  # kept current from news.silences by follow_silences
    dispatcher = Dispatcher(
        active,
        ModelTable(app.Table("held", partitions=1), Held),
        ModelTable(app.Table("buckets", partitions=1), Bucket),
        lambda: list(silences.values()),
    )

    async def keep_dead(dead: DeadAlert) -> None:
        await send(t_alerts_dead, ledger_key(dead.alert), dead)

    outflow = Outflow(
        dispatcher,
        deliverer,
        ModelTable(app.Table("silenced_alerts", partitions=1), SilencedAlert),
        keep_dead,
        metrics,
    )

    async def send(topic: faust.TopicT, key: str, value: BaseModel) -> Any:
        """Queue a record; returns the future of its acknowledgement."""
        return await topic.send(key=key.encode(), value=value.model_dump_json().encode())

    async def dead_letter(event: Any, stage: str, error: str) -> None:
        metrics.dead_letters.labels(stage).inc()
        msg = event.message
        raw_value = msg.value if isinstance(msg.value, bytes) else str(msg.value or "").encode()
        record = {
            "stage": stage,
            "topic": msg.topic,
            "partition": msg.partition,
            "offset": msg.offset,
            "key": msg.key.decode("utf-8", "replace") if isinstance(msg.key, bytes) else "",
            "error": error[:2000],
            **kept_value(raw_value),
            "at": datetime.now(UTC).isoformat(),
        }
        log.error("dead_letter", stage=stage, topic=msg.topic, offset=msg.offset, error=error[:300])
        fut = await t_dead.send(key=msg.key, value=json.dumps(record).encode())
        await fut

    async def records(
        stream: Any, model: type[M], stage: str
    ) -> AsyncIterator[tuple[Any, M | None]]:
        """The stream's records decoded (None for a tick); the undecodable ones dead-lettered."""
        async for event in stream.events():
            if is_tick(event):
                yield event, None
                continue
            try:
                yield event, model.model_validate_json(event.message.value)
            except (ValidationError, ValueError, TypeError) as exc:
                await dead_letter(event, stage, f"cannot decode {model.__name__}: {exc}")

    # Outputs are sent without waiting for each acknowledgement: Faust flushes the producer
    # before it commits the input offsets, and every stage is replay-safe (see module doc).

    @app.agent(t_articles, name="ingest")
    async def ingest(stream: Any) -> None:
        async for event, article in records(stream, Article, "ingest"):
            if article is None:
                continue
            try:
                tagged = pipe.ingest(article)
                if tagged is not None:
                    await send(t_candidates, article.id, tagged)
            except Exception as exc:
                await dead_letter(event, "ingest", f"{type(exc).__name__}: {exc}")

    processed = {"n": 0}

    @app.agent(t_candidates, name="cluster")
    async def cluster(stream: Any) -> None:
        async for event, tagged in records(stream, TaggedArticle, "cluster"):
            if tagged is None:
                continue
            try:
                story_event = pipe.cluster(tagged)
                await send(t_stories, story_event.story.id, story_event)
                processed["n"] += 1
                if processed["n"] % _PRUNE_EVERY == 0:
                    pipe.prune(tagged.article.published)
            except Exception as exc:
                await dead_letter(event, "cluster", f"{type(exc).__name__}: {exc}")

    @app.agent(t_stories, name="alerting")
    async def alerting(stream: Any) -> None:
        async for event, story_event in records(stream, StoryEvent, "alerting"):
            try:
                if story_event is None:  # a tick: resolve this partition's quiet stories
                    alerts = pipe.sweep(
                        datetime.now(UTC), owner(event.message.partition), replay_resolved=True
                    )
                else:
                    alerts = pipe.alert(story_event)
                for alert in alerts:
                    await send(t_alerts, alert.story_id, alert)
            except Exception as exc:
                await dead_letter(event, "alerting", f"{type(exc).__name__}: {exc}")

    # Keys of alerts `monitor alerts resend` put back, until they are delivered (their dead
    # entry then cleared here) or dead again (kept anew by Outflow). In memory: after a
    # restart an entry delivered meanwhile stays listed, and resending it again clears it.
    resent: set[str] = set()

    async def clear_resent(results: list[Delivery]) -> None:
        for r in results:
            key = f"{r.alert_id}|{r.route}"
            if key not in resent or r.outcome == "retry":
                continue
            resent.discard(key)
            if r.outcome not in {"error", "no_route"}:
                await t_alerts_dead.send(key=key.encode(), value=None)

    @app.agent(t_alerts, name="deliver")
    async def deliver(stream: Any) -> None:
        async for event, alert in records(stream, Alert, "deliver"):
            try:
                now = datetime.now(UTC)
                results: list[Delivery] = []
                if alert is not None:
                    if is_resend(event):
                        resent.add(ledger_key(alert))
                    results += await outflow.admit(alert, now)
                results += await outflow.flush(now)
                if resent:
                    await clear_resent(results)
            except Exception as exc:
                await dead_letter(event, "deliver", f"{type(exc).__name__}: {exc}")

    def owned(topic_name: str) -> list[int]:
        assignment = app.consumer.assignment() if app.consumer else set()
        return sorted(tp.partition for tp in assignment if tp.topic == topic_name)

    async def tick(target: faust.TopicT, partition: int) -> None:
        await target.send(key=TICK, value=b"{}", partition=partition)

    def owner(partition: int) -> Callable[[str], bool]:
        return lambda story_id: story_partition(story_id, n) == partition

    async def sweep_ticks() -> None:
        if any(r.resolve_after is not None for r in pipe.routes):
            for part in owned(names.stories):
                await tick(t_stories, part)

    async def flush_ticks() -> None:
        release = dispatcher.next_release() if owned(names.alerts) else None
        if release is not None and release <= datetime.now(UTC):
            await tick(t_alerts, 0)

    async def silences_follower() -> None:
        await follow_silences(settings.kafka_bootstrap or "", names.silences, silences)

    def use_rules(new: RuleSet) -> None:
        bound, now_skipped = pool.bind(new.routes)
        sinks.clear()
        sinks.update(bound)  # in place: the deliverer holds this mapping
        skipped.clear()
        skipped.update(now_skipped)
        routes = [r for r in new.routes if r.name in sinks]
        pipe.use(new, routes)
        dispatcher.set_routes(routes)

    reloader = RuleReloader(ruleset, use_rules, metrics)
    published_root = settings.data_dir / "published-rules"

    def on_rules_record(key: bytes | None, value: bytes | None) -> None:
        found = on_published(reloader, published_root, value)
        if found is not None:
            wait, switch = found
            # every worker switches at the record's effective_at: together
            asyncio.get_running_loop().call_later(wait, switch)

    async def rules_follower() -> None:
        await follow(settings.kafka_bootstrap or "", names.rules, on_rules_record, "rules")

    sources = {names.articles, names.candidates, names.stories, names.alerts}
    reported: set[tuple[str, str]] = set()

    broker = Heartbeat()
    health = Health()
    health.add("rules", lambda: None if pipe.ruleset.rules else "no rules")
    health.add("kafka", broker.check(_BROKER_DEADLINE, "a broker round trip"))
    app.monitor_health = health  # type: ignore[attr-defined]

    async def serve_health() -> None:
        if settings.metrics_port is not None:
            server = Server(metrics.registry, health)
            address = await server.start(settings.metrics_host, settings.metrics_port)
            log.info("serving_metrics", host=address[0], port=address[1])

    async def report_lag() -> None:
        """Records behind the end of each source partition this worker owns (end offset minus
        the group's committed offset), for the ops dashboard and the lag alert."""
        consumer = app.consumer
        tps = [tp for tp in consumer.assignment() if tp.topic in sources]
        probe = tps or sorted(consumer.assignment())[:1]  # changelogs, if no source partition
        ends = await consumer.highwaters(*probe) if probe else {}
        if probe:
            broker.beat()  # highwaters asked the broker; a worker with nothing assigned cannot
        now: set[tuple[str, str]] = set()
        for tp in tps:
            # Faust keeps the last committed offset per partition (not public API); before the
            # first commit, the position the consumer starts from stands in.
            committed: dict[Any, int | None] = getattr(consumer, "_committed_offset", {})
            done = committed.get(tp)
            if done is None:
                done = await consumer.position(tp)
            end = ends.get(tp)
            if end is None or done is None:
                continue
            labels = (tp.topic, str(tp.partition))
            metrics.consumer_lag.labels(*labels).set(max(0, end - done))
            now.add(labels)
        for labels in reported - now:  # a partition that moved to another worker
            metrics.consumer_lag.remove(*labels)
        reported.clear()
        reported.update(now)

    # (registered by call: the decorators are untyped)
    app.timer(sweep_interval(active))(sweep_ticks)
    app.timer(_FLUSH_EVERY)(flush_ticks)
    app.timer(_LAG_EVERY)(report_lag)
    app.task(silences_follower)
    app.task(rules_follower)
    app.task(serve_health)

    async def on_rebalance(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # The cluster partition may have moved: rebuild the index from the table next time.
        pipe.reset_index()

    app.on_partitions_revoked.connect(on_rebalance)
    app.on_rebalance_complete.connect(on_rebalance)

    app.monitor_pipeline = pipe  # type: ignore[attr-defined]  # for tests and introspection
    return app, skipped
