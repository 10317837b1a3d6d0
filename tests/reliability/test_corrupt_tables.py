"""A worker's RocksDB table directory damaged (or missing) at start.

A worker started on a damaged table (the delivery ledger's, every SST file overwritten) exits
at once, code 2, naming the table and `monitor state rebuild --data-dir`; `monitor state
check` names it too. The rebuild moves the directory aside; the next start (tables missing:
the same as a lost disk) rebuilds every table from its changelog topic. Then the alerts
already delivered, put on news.alerts again, and the articles already decided, published
again, send nothing twice: the ledger and the story tables came back whole; new articles are
decided and alerted as usual."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from monitor.models import Article
from tests.conftest import REPO
from tests.integration.kafka_support import (
    Decided,
    Deployment,
    corpus_articles,
    produce,
    read_topic,
    sample_articles,
    undecided,
)
from tests.reliability.support import (
    Scenario,
    check_kafka_invariants,
    settle_deliveries,
    wait_until,
)


def state(d: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", "state", *args],
        cwd=REPO,
        env=d.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def records(articles: list[Article]) -> list[tuple[bytes, bytes]]:
    return [(a.id.encode(), a.model_dump_json().encode()) for a in articles]


def test_damaged_worker_tables_are_rebuilt_from_kafka(
    deployment: Deployment, scenario: Scenario
) -> None:
    d = deployment
    data = d.root / "w1"
    corpus = corpus_articles(600)
    first, later = sample_articles() + corpus[:400], corpus[400:]
    decided = Decided(d)
    try:
        worker = d.start_worker("w1")
        produce(d, "news.articles", records(first))
        wait_until(lambda: not undecided(first, decided()), 180, "the first articles", d)
        settle_deliveries(d, "archive")
        delivered = len(d.alerts())
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0

        # every SST file of the ledger's table overwritten
        ledger = data / "v1" / "tables" / "ledger-0.db"
        ssts = sorted(ledger.glob("*.sst"))
        assert ssts, f"no SST file in {ledger}: {sorted(p.name for p in ledger.iterdir())}"
        for sst in ssts:
            sst.write_bytes(b"\xee" * sst.stat().st_size)

        started = time.monotonic()
        broken = d.start_worker("w1")
        code = broken.wait(timeout=120)
        took = time.monotonic() - started
        d.workers.remove(broken)  # its exit is the point
        said = (d.root / "w1.log").read_text()
        assert code == 2, said[-3000:]
        assert str(ledger) in said and f"monitor state rebuild --data-dir {data}" in said, said
        assert "Traceback" not in said
        check = state(d, "check", "--data-dir", str(data))
        assert check.returncode == 1 and str(ledger) in check.stderr, check
        rebuilt = state(d, "rebuild", "--data-dir", str(data))
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert not data.exists() and list(d.root.glob("w1.broken-*"))
        scenario.note(
            f"damaged ledger table: the worker exited {code} after {took:.0f}s naming it and "
            "the rebuild; `monitor state check --data-dir` exit 1"
        )

        started = time.monotonic()
        d.start_worker("w1")  # no tables: every one recovered from its changelog topic
        # what was delivered, put on news.alerts again, and what was decided, published again
        replayed = [(k or b"", v) for k, v in read_topic(d, "news.alerts")]
        produce(d, "news.alerts", replayed)
        produce(d, "news.articles", records(first[:100]))
        produce(d, "news.articles", records(later))
        published = first + later
        wait_until(lambda: not undecided(published, decided()), 180, "the later articles", d)
        scenario.note(
            f"rebuilt from Kafka and caught up {time.monotonic() - started:.0f}s after the "
            f"start; {len(replayed)} alerts and 100 articles replayed on top"
        )
        settle_deliveries(d, "archive")
        time.sleep(5)  # the replayed alerts' turn at the deliver agent, had they gone out
        # a rebuild under a running worker is refused
        refused = state(d, "rebuild", "--data-dir", str(data))
        assert refused.returncode == 2 and "a worker is running" in refused.stderr, refused
        assert data.exists()
    finally:
        decided.close()
    alerts = check_kafka_invariants(d, published, decided.ids, scenario)
    scenario.note(f"alerts: {delivered} before the damage, {len(alerts)} at the end, none twice")
