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
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import faust
from pydantic import BaseModel, ValidationError

from monitor.logs import log
from monitor.metrics import Metrics
from monitor.models import Alert, Article, DeadAlert, Story, StoryEvent, TaggedArticle
from monitor.pipeline.alerting import Thread
from monitor.pipeline.cluster import Signed
from monitor.rules.ruleset import RuleSet
from monitor.runtime.delivery import Deliverer
from monitor.runtime.stages import Pipeline
from monitor.runtime.topics import Topics
from monitor.settings import Settings
from monitor.sinks.registry import build_route_sinks
from monitor.state.sqlite import ModelTable

M = TypeVar("M", bound=BaseModel)
_PRUNE_EVERY = 500


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
        web_enabled=False,
    )

    def topic(name: str, partitions: int) -> faust.TopicT:
        # Raw bytes: records are decoded by the agents so a bad one can be dead-lettered.
        return app.topic(name, partitions=partitions, key_serializer="raw", value_serializer="raw")

    names = Topics(settings.kafka_topic_prefix)
    t_articles = topic(names.articles, n)
    t_candidates = topic(names.candidates, 1)
    t_stories = topic(names.stories, n)
    t_alerts = topic(names.alerts, n)
    t_alerts_dead = topic(names.alerts_dead, 1)
    t_dead = topic(names.dead_letters, 1)

    seen = app.Table("seen", partitions=n)
    threads = ModelTable(app.Table("threads", partitions=n), Thread)
    # Sink state (Slack's story -> thread ts) lives in tables partitioned like news.alerts, which
    # the deliver agent consumes: a story's alerts and its thread share a partition.
    sinks, skipped = build_route_sinks(
        ruleset.routes, settings, lambda name: app.Table(name, partitions=n)
    )
    active = [r for r in ruleset.routes if r.name in sinks]
    pipe = Pipeline(
        ruleset,
        active,
        seen,
        ModelTable(app.Table("signatures", partitions=1), Signed),
        ModelTable(app.Table("stories", partitions=1), Story),
        threads,
        metrics,
    )
    deliverer = Deliverer(sinks, app.Table("ledger", partitions=n), metrics)

    async def send(topic: faust.TopicT, key: str, value: BaseModel) -> Any:
        """Queue a record; returns the future of its acknowledgement."""
        return await topic.send(key=key.encode(), value=value.model_dump_json().encode())

    async def dead_letter(event: Any, stage: str, error: str) -> None:
        metrics.dead_letters.labels(stage).inc()
        msg = event.message
        raw_value = msg.value if isinstance(msg.value, bytes) else str(msg.value).encode()
        record = {
            "stage": stage,
            "topic": msg.topic,
            "partition": msg.partition,
            "offset": msg.offset,
            "key": msg.key.decode("utf-8", "replace") if isinstance(msg.key, bytes) else "",
            "error": error[:2000],
            "value": raw_value[:100_000].decode("utf-8", "replace"),
            "at": datetime.now(UTC).isoformat(),
        }
        log.error("dead_letter", stage=stage, topic=msg.topic, offset=msg.offset, error=error[:300])
        fut = await t_dead.send(key=msg.key, value=json.dumps(record).encode())
        await fut

    async def records(stream: Any, model: type[M], stage: str) -> AsyncIterator[tuple[Any, M]]:
        """The stream's records decoded; the undecodable ones dead-lettered."""
        async for event in stream.events():
            try:
                yield event, model.model_validate_json(event.message.value)
            except (ValidationError, ValueError, TypeError) as exc:
                await dead_letter(event, stage, f"cannot decode {model.__name__}: {exc}")

    # Outputs are sent without waiting for each acknowledgement: Faust flushes the producer
    # before it commits the input offsets, and every stage is replay-safe (see module doc).

    @app.agent(t_articles, name="ingest")
    async def ingest(stream: Any) -> None:
        async for event, article in records(stream, Article, "ingest"):
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
                for alert in pipe.alert(story_event):
                    await send(t_alerts, alert.story_id, alert)
            except Exception as exc:
                await dead_letter(event, "alerting", f"{type(exc).__name__}: {exc}")

    @app.agent(t_alerts, name="deliver")
    async def deliver(stream: Any) -> None:
        async for event, alert in records(stream, Alert, "deliver"):
            try:
                result = await deliverer.deliver(alert)
                if result.outcome in {"error", "no_route"}:
                    kept = DeadAlert(alert=alert, delivery=result)
                    await send(t_alerts_dead, alert.story_id, kept)
            except Exception as exc:
                await dead_letter(event, "deliver", f"{type(exc).__name__}: {exc}")

    async def on_rebalance(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # The cluster partition may have moved: rebuild the index from the table next time.
        pipe.reset_index()

    app.on_partitions_revoked.connect(on_rebalance)
    app.on_rebalance_complete.connect(on_rebalance)

    app.monitor_pipeline = pipe  # type: ignore[attr-defined]  # for tests and introspection
    return app, skipped
