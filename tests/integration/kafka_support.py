"""Running the Kafka runtime for real in tests: the local broker, workers as subprocesses,
and reading topics back."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from monitor.models import Article
from monitor.pipeline.dedupe import exact_keys, seen_before
from monitor.runtime.topics import Topics, ensure_topics
from tests.conftest import REPO, corpus, unavailable

BOOTSTRAP = os.environ.get("MONITOR_TEST_KAFKA", "127.0.0.1:9092")
NOW = datetime(2022, 3, 1, tzinfo=UTC)


async def _reachable() -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=3000)
    try:
        await asyncio.wait_for(admin.start(), 5)
        await admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        await admin.close()


def require_kafka() -> str:
    """The broker's address; a missing broker fails under CI and skips elsewhere."""
    if not asyncio.run(_reachable()):
        unavailable(f"no Kafka broker at {BOOTSTRAP} (start one: deploy/kafka/broker start)")
    return BOOTSTRAP


@dataclass
class Deployment:
    """One isolated deployment on the shared broker: its own topic prefix and consumer group."""

    root: Path
    bootstrap: str
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}-")
    partitions: int = 4
    workers: list[subprocess.Popen[str]] = field(default_factory=list)
    rules: Path = REPO / "alert_rules"
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "MONITOR_KAFKA_BOOTSTRAP": self.bootstrap,
            "MONITOR_KAFKA_TOPIC_PREFIX": self.prefix,
            "MONITOR_KAFKA_GROUP": f"{self.prefix}group",
            "MONITOR_KAFKA_PARTITIONS": str(self.partitions),
            "MONITOR_LOG_FORMAT": "json",
            "MONITOR_RULES": str(self.rules),
            **self.extra_env,
        }

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    @property
    def jsonl(self) -> Path:
        return self.root / "alerts.jsonl"

    def start_worker(self, name: str = "w1") -> subprocess.Popen[str]:
        log = (self.root / f"{name}.log").open("a")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "monitor.cli",
                "worker",
                "--jsonl",
                str(self.jsonl),
                "--data-dir",
                str(self.root / name),
            ],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.workers.append(proc)
        return proc

    def poll_once(self, feeds: Path | None = None) -> subprocess.CompletedProcess[str]:
        args = [
            sys.executable,
            "-m",
            "monitor.cli",
            "poll",
            "--once",
            "--state",
            str(self.root / "poller.db"),
        ]
        if feeds:
            args += ["--feeds", str(feeds)]
        return subprocess.run(
            args, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=120
        )

    def alerts(self) -> list[dict[str, object]]:
        return jsonl_lines(self.jsonl)

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        out = []
        for path in sorted(self.root.glob("*.log")):
            out.append(f"--- {path.name}")
            out.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(out)


def jsonl_lines(path: Path) -> list[dict[str, object]]:
    """The complete lines of a JSON-lines file a running process appends to: a last line
    without its newline is still being written, and is left for the next read."""
    if not path.exists():
        return []
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


def wait_for(condition: Callable[[], bool], timeout: float, what: str, d: Deployment) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for proc in d.workers:
            if proc.poll() is not None and proc.returncode not in (0, -9, -15):
                raise AssertionError(f"worker exited {proc.returncode}\n{d.log_tail()}")
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{d.log_tail()}")


async def read_all(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        if parts is None:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[tuple[bytes | None, bytes]] = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in tps])

        while await behind():
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                out.extend((r.key, r.value) for r in records)
        return out
    finally:
        await consumer.stop()


def read_topic(d: Deployment, name: str) -> list[tuple[bytes | None, bytes]]:
    return asyncio.run(read_all(d.bootstrap, d.topic(name)))


async def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def produce(d: Deployment, name: str, records: list[tuple[bytes, bytes]]) -> None:
    # Create the deployment's topics first: a producer would otherwise auto-create this one
    # with the broker's default of one partition (and the worker rightly refuses to start).
    names = Topics(d.prefix)
    asyncio.run(ensure_topics(d.bootstrap, d.partitions, 1, names))
    asyncio.run(_produce(d.bootstrap, d.topic(name), records))


def decided_articles(d: Deployment) -> set[str]:
    """Article ids that reached a story (the cluster stage's output)."""
    out = set()
    for _, value in read_topic(d, "news.stories"):
        try:
            out.add(json.loads(value)["article"]["id"])
        except (ValueError, TypeError, KeyError):
            continue  # a poison record a test put there
    return out


# --- articles to publish, and the invariants every run must keep ------------------------------


def sample_articles() -> list[Article]:
    """The bundled sample feeds, parsed as a poller would."""
    from monitor.feeds.parse import parse_feed
    from monitor.feeds.sources import load_feeds, sample_feeds_path

    out = []
    for feed in load_feeds(sample_feeds_path()):
        data = Path(feed.url.removeprefix("file://")).read_bytes()
        out.extend(parse_feed(data, feed, NOW))
    return out


def corpus_articles(limit: int) -> list[Article]:
    """The first ``limit`` articles of the news-2021 corpus (../shared/corpus)."""
    from monitor.feeds.exports import read_exports

    return list(islice(read_exports(corpus("news-2021"), NOW), limit))


def exact_duplicates(articles: list[Article]) -> set[str]:
    seen: dict[str, str] = {}
    return {a.id for a in sorted(articles, key=lambda a: a.published) if seen_before(a, seen)}


def undecided(published: Iterable[Article], decided: set[str]) -> set[str]:
    """Ids of published articles that reached no decision: neither placed in a story nor dropped
    as an exact duplicate of an article that was (whichever of two copies came first)."""
    articles = {a.id: a for a in published}
    sharing: dict[str, set[str]] = defaultdict(set)
    for a in articles.values():
        for key in exact_keys(a):
            sharing[key].add(a.id)
    return {
        a.id
        for a in articles.values()
        if a.id not in decided
        and not any(other in decided for key in exact_keys(a) for other in sharing[key])
    }


def delivered_twice(alerts: Iterable[dict[str, object]]) -> dict[tuple[str, str], int]:
    """(alert id, route) -> times delivered, for those delivered more than once."""
    counts = Counter((str(a["alert_id"]), str(a["route"])) for a in alerts)
    return {key: n for key, n in counts.items() if n > 1}


def assert_invariants(d: Deployment, published: list[Article]) -> list[dict[str, object]]:
    alerts = d.alerts()
    ids = [a["alert_id"] for a in alerts]
    assert len(ids) == len(set(ids)), "an alert was delivered twice"
    missing = {a.id for a in published} - decided_articles(d) - exact_duplicates(published)
    assert not missing, f"{len(missing)} articles never reached a decision"
    opened = Counter(str(a["story_id"]) for a in alerts if a["kind"] == "opened")
    assert all(n == 1 for n in opened.values()), "a story was opened twice"
    return alerts


class TopicTail:
    """A topic read from its beginning, a little more at each call: for waiting on a topic
    that grows to thousands of records without reading it all again every half second."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.records: list[tuple[bytes | None, bytes]] = []
        self._runner = asyncio.Runner()
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: list[TopicPartition] = []

    async def _read(self) -> list[tuple[bytes | None, bytes]]:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
            await consumer.start()
            self._consumer = consumer
        consumer = self._consumer
        if not self._tps:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(self.topic) or set()
            if not parts:
                return []
            self._tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
            consumer.assign(self._tps)
            await consumer.seek_to_beginning(*self._tps)
        ends = await consumer.end_offsets(self._tps)
        new: list[tuple[bytes | None, bytes]] = []
        while any([await consumer.position(tp) < ends[tp] for tp in self._tps]):
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                new.extend((r.key, r.value) for r in records)
        return new

    def read(self) -> list[tuple[bytes | None, bytes]]:
        """The records that arrived since the last call (all of them, the first time)."""
        new = self._runner.run(self._read())
        self.records.extend(new)
        return new

    def close(self) -> None:
        if self._consumer is not None:
            self._runner.run(self._consumer.stop())
            self._consumer = None
        self._runner.close()


class Decided:
    """Article ids that reached a story, read incrementally from news.stories."""

    def __init__(self, d: Deployment) -> None:
        self.tail = TopicTail(d.bootstrap, d.topic("news.stories"))
        self.ids: set[str] = set()

    def __call__(self) -> set[str]:
        for _, value in self.tail.read():
            try:
                self.ids.add(json.loads(value)["article"]["id"])
            except (ValueError, TypeError, KeyError):
                continue  # a poison record a test put there
        return self.ids

    def close(self) -> None:
        self.tail.close()


async def _delete_topics(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()


def delete_topics(d: Deployment) -> None:
    """Remove a finished deployment's topics (its Faust changelogs included): a broker holding
    thousands of test partitions takes a minute to restart."""
    asyncio.run(_delete_topics(d.bootstrap, d.prefix))


class Publisher:
    """Publishes records to a topic from a thread at a steady rate, as pollers would: a stream
    rather than a backlog, so faults land while articles are still arriving."""

    def __init__(
        self, d: Deployment, name: str, records: list[tuple[bytes, bytes]], per_second: float
    ) -> None:
        import threading

        self.records, self.per_second = records, per_second
        self.sent = 0
        self.error: BaseException | None = None
        self._bootstrap, self._topic = d.bootstrap, d.topic(name)
        asyncio.run(ensure_topics(d.bootstrap, d.partitions, 1, Topics(d.prefix)))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self._publish())
        except BaseException as exc:
            self.error = exc

    async def _publish(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap, enable_idempotence=True)
        await producer.start()
        try:
            batch = max(1, int(self.per_second / 10))
            started = time.monotonic()
            for i in range(0, len(self.records), batch):
                futures = [
                    await producer.send(self._topic, value, key=key)
                    for key, value in self.records[i : i + batch]
                ]
                await asyncio.gather(*futures)
                self.sent += len(futures)
                ahead = started + self.sent / self.per_second - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
        finally:
            await producer.stop()

    def join(self, timeout: float = 120) -> None:
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        assert not self._thread.is_alive(), "the publisher did not finish"
