"""Throughput and latency of the Kafka runtime, on a real broker, against a bare aiokafka loop.

In one run, on the same broker and the same records:
  * the pipeline: a `monitor worker` process (Faust agents: ingest -> cluster -> alerting ->
    deliver) consumes N articles; throughput = N / (first publish .. last story decision);
  * the baseline: a bare aiokafka consume -> produce -> commit loop over the same N records
    (batch by batch, acks awaited before committing: the same at-least-once guarantee, none of
    the work);
  * latency: articles published at a steady 100/s, each one a new alerting story; latency is
    publish -> alert line written by the JSON-lines sink.

Prints the pipeline's articles/s, its ratio to the bare loop (target >= 0.5), and latency
p50/p99 (target p99 < 1 s). Needs a broker: deploy/kafka/broker start.
Environment: MONITOR_KAFKA_BOOTSTRAP (default 127.0.0.1:9092), BENCH_ARTICLES (default 3000).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monitor.feeds.exports import read_exports  # noqa: E402
from monitor.models import Article  # noqa: E402
from monitor.runtime.topics import Topics, ensure_topics  # noqa: E402

BOOTSTRAP = os.environ.get("MONITOR_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
N = int(os.environ.get("BENCH_ARTICLES", "3000"))
CORPUS = REPO.parent / "shared" / "corpus" / "news-2021"
PARTITIONS = 4


def corpus_articles(n: int) -> list[Article]:
    """Real headlines and teasers, cycled with distinct ids if n exceeds the corpus."""
    base = list(read_exports(CORPUS))
    if not base:
        raise SystemExit(f"corpus not found at {CORPUS}")
    out = []
    for i in range(n):
        a, round_ = base[i % len(base)], i // len(base)
        out.append(a if not round_ else a.model_copy(update={"id": f"{a.id}-{round_}"}))
    return out


async def produce(topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=5)
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, v, key=k) for k, v in records])
    finally:
        await producer.stop()


async def end_offsets(topic: str) -> tuple[int, float]:
    """Records in a topic, and the newest record's timestamp (seconds)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(tps) if tps else {}
        newest = 0.0
        consumer.assign(tps)
        for tp, end in ends.items():
            if end:
                consumer.seek(tp, end - 1)
                batch = await consumer.getmany(tp, timeout_ms=2000)
                for rec in batch.get(tp, []):
                    newest = max(newest, rec.timestamp / 1000)
        return sum(ends.values()), newest
    finally:
        await consumer.stop()


async def bare_loop(records: list[tuple[bytes, bytes]]) -> float:
    prefix = f"bench{uuid.uuid4().hex[:8]}-"
    src, dst = f"{prefix}in", f"{prefix}out"
    await ensure_topics(BOOTSTRAP, PARTITIONS, 1, Topics(prefix))  # creates prefixed news.* too
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    await admin.create_topics([NewTopic(src, PARTITIONS, 1), NewTopic(dst, PARTITIONS, 1)])
    await admin.close()
    await produce(src, records)
    consumer = AIOKafkaConsumer(
        src,
        bootstrap_servers=BOOTSTRAP,
        group_id=f"{prefix}g",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    done = 0
    started = time.perf_counter()
    try:
        while done < len(records):
            batch = await consumer.getmany(timeout_ms=1000, max_records=500)
            futures = []
            for recs in batch.values():
                for r in recs:
                    value = Article.model_validate_json(r.value).model_dump_json().encode()
                    futures.append(await producer.send(dst, value, key=r.key))
            await asyncio.gather(*futures)
            await consumer.commit()
            done += len(futures)
        return len(records) / (time.perf_counter() - started)
    finally:
        await consumer.stop()
        await producer.stop()


def start_worker(prefix: str, root: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MONITOR_KAFKA_BOOTSTRAP": BOOTSTRAP,
        "MONITOR_KAFKA_TOPIC_PREFIX": prefix,
        "MONITOR_KAFKA_GROUP": f"{prefix}group",
        "MONITOR_KAFKA_PARTITIONS": str(PARTITIONS),
        "MONITOR_LOG_FORMAT": "json",
        "MONITOR_LOG_LEVEL": "warning",
    }
    log = (root / "worker.log").open("wb")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitor.cli",
            "worker",
            "--jsonl",
            str(root / "alerts.jsonl"),
            "--data-dir",
            str(root / "data"),
            "--rules",
            str(REPO / "alert_rules"),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def wait_count(topic: str, count: int, within: float) -> float:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        n, newest = await end_offsets(topic)
        if n >= count:
            return newest
        await asyncio.sleep(0.25)
    raise SystemExit(f"timed out waiting for {count} records on {topic}")


async def warm_up(prefix: str) -> None:
    """One article through, so the worker is up and owns its partitions."""
    names = Topics(prefix)
    warm = corpus_articles(1)[0].model_copy(update={"id": "warm-up", "url": "https://w.example/"})
    await produce(names.articles, [(b"warm-up", warm.model_dump_json().encode())])
    await wait_count(names.stories, 1, 120)


async def pipeline(records: list[tuple[bytes, bytes]], prefix: str) -> float:
    names = Topics(prefix)
    before, _ = await end_offsets(names.stories)
    started = time.time()
    await produce(names.articles, records)
    newest = await wait_count(names.stories, before + len(records), 600)
    return len(records) / (newest - started)


async def latency(
    prefix: str, root: Path, rate: float = 100.0, seconds: float = 10.0
) -> list[float]:
    """Publish -> delivered, observed while publishing: each article is a new story (random
    place names, so no two cluster together) that fires an alert."""
    import random

    rng = random.Random(7)
    names = Topics(prefix)
    jsonl = root / "alerts.jsonl"
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    total = int(rate * seconds)
    finished = asyncio.Event()

    async def observe() -> None:
        offset = 0
        while not finished.is_set() or len(got) < len(sent):
            if jsonl.exists():
                with jsonl.open() as f:
                    f.seek(offset)
                    chunk = f.read()
                complete = chunk[: chunk.rfind("\n") + 1]
                offset += len(complete.encode())
                now = time.time()
                for line in complete.splitlines():
                    title = json.loads(line)["title"]
                    if title in sent and title not in got:
                        got[title] = now - sent[title]
            if finished.is_set() and time.time() > deadline:
                return
            await asyncio.sleep(0.005)

    deadline = float("inf")
    watcher = asyncio.create_task(observe())
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=0)
    await producer.start()
    start = time.time()
    for i in range(total):
        await asyncio.sleep(max(0.0, start + i / rate - time.time()))
        place = " ".join(
            "".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(3))
            for _ in range(3)
        ).title()
        now = datetime.now(UTC)
        title = f"Missile strikes hit {place} overnight"
        a = Article(
            id=f"lat-{i}-{uuid.uuid4().hex[:8]}",
            source=f"outlet{i % 7}",
            url=f"https://o.example/{uuid.uuid4().hex}",
            title=title,
            body=f"Officials in {place} said missiles struck {place} before dawn.",
            published=now,
            fetched_at=now,
        )
        sent[title] = time.time()
        await producer.send(names.articles, a.model_dump_json().encode(), key=a.id.encode())
    await producer.stop()
    deadline = time.time() + 30
    finished.set()
    await watcher
    if len(got) < total:
        print(f"warning: only {len(got)} of {total} latency alerts arrived")
    return list(got.values())


def in_process(arts: list[Article]) -> float:
    """The same stage code with no broker (dict state): what the work itself costs."""
    from monitor.metrics import Metrics
    from monitor.models import Story
    from monitor.pipeline.alerting import Thread
    from monitor.pipeline.cluster import Signed
    from monitor.rules.ruleset import load_ruleset
    from monitor.runtime.stages import Pipeline
    from monitor.state.sqlite import ModelTable

    rs = load_ruleset(REPO / "alert_rules")
    pipe = Pipeline(
        rs,
        rs.routes,
        {},
        ModelTable({}, Signed),
        ModelTable({}, Story),
        ModelTable({}, Thread),
        Metrics(),
    )
    started = time.perf_counter()
    for a in arts:
        pipe.process(a)
    return len(arts) / (time.perf_counter() - started)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def two_workers(records: list[tuple[bytes, bytes]]) -> float:
    """The same records through two workers in one group (one per core here)."""
    prefix = f"bench{uuid.uuid4().hex[:8]}-"
    await ensure_topics(BOOTSTRAP, PARTITIONS, 1, Topics(prefix))
    with tempfile.TemporaryDirectory() as tmp:
        roots = [Path(tmp) / "a", Path(tmp) / "b"]
        for root in roots:
            root.mkdir()
        workers = [start_worker(prefix, root) for root in roots]
        try:
            await asyncio.sleep(8)  # both join the group before the first record
            await warm_up(prefix)
            return await pipeline(records, prefix)
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait(timeout=30)


async def main() -> None:
    arts = corpus_articles(N)
    records = [(a.id.encode(), a.model_dump_json().encode()) for a in arts]
    bare = await bare_loop(records)
    work = in_process(arts)
    prefix = f"bench{uuid.uuid4().hex[:8]}-"
    await ensure_topics(BOOTSTRAP, PARTITIONS, 1, Topics(prefix))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        worker = start_worker(prefix, root)
        try:
            # latency first, on an idle worker: a backlog left by the throughput run would
            # measure queueing, not the pipeline
            await warm_up(prefix)
            lat = await latency(prefix, root)
            rate = await pipeline(records, prefix)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    rate2 = await two_workers(records)
    print(f"articles: {N} (news-2021 corpus), partitions: {PARTITIONS}")
    print(f"bare aiokafka loop:  {bare:8.0f} records/s")
    print(f"pipeline, 1 worker:  {rate:8.0f} articles/s")
    print(f"pipeline, 2 workers: {rate2:8.0f} articles/s")
    print(
        f"ratio pipeline/bare: {rate / bare:8.2f}   (target >= 0.5; 2 workers: {rate2 / bare:.2f})"
    )
    print(
        f"the stages alone, in process, no broker: {work:8.0f} articles/s "
        f"(ceiling of one worker; Kafka and Faust cost the rest)"
    )
    if lat:
        print(
            f"latency at 100/s, publish -> alert delivered: p50 {pct(lat, 0.5) * 1000:.0f} ms, "
            f"p99 {pct(lat, 0.99) * 1000:.0f} ms over {len(lat)} alerts   (target p99 < 1 s)"
        )


if __name__ == "__main__":
    asyncio.run(main())
