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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from monitor.runtime.topics import Topics, ensure_topics
from tests.conftest import REPO

BOOTSTRAP = os.environ.get("MONITOR_TEST_KAFKA", "127.0.0.1:9092")


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
        reason = f"no Kafka broker at {BOOTSTRAP} (start one: deploy/kafka/broker start)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
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
        if not self.jsonl.exists():
            return []
        return [json.loads(line) for line in self.jsonl.read_text().splitlines() if line.strip()]

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


async def _read_all(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes]]:
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
    return asyncio.run(_read_all(d.bootstrap, d.topic(name)))


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
