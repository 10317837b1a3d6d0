"""The Kafka topics of the scale-out runtime, created (or checked) before anything uses them.

Both the poller and the worker call :func:`ensure_topics` first: a topic auto-created by the
broker on first use would get the broker's default partition count, and Faust refuses a table
whose changelog does not match its source topic.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.errors import ConfigError


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Topics:
    """Topic names, under an optional prefix (MONITOR_KAFKA_TOPIC_PREFIX) so several
    deployments, or test runs, can share one cluster."""

    prefix: str = ""

    @property
    def articles(self) -> str:  # key: article id
        return f"{self.prefix}news.articles"

    @property
    def candidates(self) -> str:  # one partition: clustering needs a global view
        return f"{self.prefix}news.candidates"

    @property
    def stories(self) -> str:  # key: story id
        return f"{self.prefix}news.stories"

    @property
    def alerts(self) -> str:  # key: story id; one partition (see specs)
        return f"{self.prefix}news.alerts"

    @property
    def alerts_dead(self) -> str:  # undeliverable alerts, key "alert id|route"; compacted
        return f"{self.prefix}news.alerts.dead"

    @property
    def rules(self) -> str:  # key "ruleset": the published rule set (monitor rules publish)
        return f"{self.prefix}news.rules"

    @property
    def silences(self) -> str:  # key: silence id, a null value removes it; compacted
        return f"{self.prefix}news.silences"

    @property
    def dead_letters(self) -> str:  # records that failed to decode or process, with the error
        return f"{self.prefix}news.deadletter"

    def specs(self, partitions: int) -> list[TopicSpec]:
        keep = (("retention.ms", str(14 * 86400 * 1000)),)
        forever = (("retention.ms", "-1"),)
        return [
            TopicSpec(self.articles, partitions, keep),
            # A single partition: every candidate must meet every open story. See cluster.py
            # for how to repartition by LSH band once one partition is not enough.
            TopicSpec(self.candidates, 1, keep),
            TopicSpec(self.stories, partitions, keep),
            # One partition: a route's rate limit, group window and quiet-hours digest need
            # every alert of the route in one place. Alerts are few (a busy day: thousands).
            TopicSpec(self.alerts, 1, keep),
            # Compacted, keyed: `monitor alerts resend` removes an entry with a null value.
            TopicSpec(self.alerts_dead, 1, (("cleanup.policy", "compact"),)),
            TopicSpec(self.silences, 1, (("cleanup.policy", "compact"),)),
            TopicSpec(self.rules, 1, (("cleanup.policy", "compact"),)),
            TopicSpec(self.dead_letters, 1, forever),
        ]


async def ensure_topics(
    bootstrap: str, partitions: int, replication: int = 1, names: Topics | None = None
) -> None:
    """Create missing topics; raise ConfigError if an existing one has another partition count."""
    # Here, not at the top: the names above are used by commands that run without Kafka.
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    try:
        await admin.start()
    except KafkaError as exc:
        raise ConfigError(f"Kafka at {bootstrap} is not reachable: {exc}") from None
    try:
        existing = set(await admin.list_topics())
        specs = (names or Topics()).specs(partitions)
        missing = [s for s in specs if s.name not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(s.name, s.partitions, replication, topic_configs=dict(s.config))
                    for s in missing
                ]
            )
        present = [s for s in specs if s.name in existing]
        if present:
            described = await admin.describe_topics([s.name for s in present])
            counts = {d["topic"]: len(d["partitions"]) for d in described}
            for spec in present:
                if counts.get(spec.name, spec.partitions) != spec.partitions:
                    raise ConfigError(
                        f"topic {spec.name} has {counts[spec.name]} partitions, this deployment "
                        f"expects {spec.partitions} (MONITOR_KAFKA_PARTITIONS)"
                    )
    finally:
        await admin.close()
