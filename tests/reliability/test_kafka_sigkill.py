"""A worker SIGKILLed at random moments of a stream of about 2000 articles, restarted each time on
its own table directory: every article still reaches a decision, no alert goes out twice."""

from __future__ import annotations

import os
import signal
import time

from tests.integration.kafka_support import (
    Decided,
    Deployment,
    Publisher,
    corpus_articles,
    sample_articles,
    undecided,
)
from tests.reliability.support import (
    Scenario,
    check_kafka_invariants,
    seeded,
    settle_deliveries,
    wait_until,
)

RATE = 60  # articles/s: pollers' pace, well below a worker's, so the stream outlasts the kills
# A SIGKILLed worker never leaves its consumer group: its partitions wait for its session to
# expire before the restarted worker gets them, 60 s by default (measured: 45-60 s of
# standstill per kill, twice that for a kill during a restart). A shorter session shortens the
# standstill, not the guarantees (it only rebalances sooner).
SESSION = {"MONITOR_KAFKA_SESSION_TIMEOUT": "10"}


def test_worker_sigkilled_at_random_moments(deployment: Deployment, scenario: Scenario) -> None:
    d = deployment
    d.extra_env.update(SESSION)
    rng = seeded(scenario)
    published = sample_articles() + corpus_articles(2000)
    ids = {a.id for a in published}
    decided = Decided(d)
    started = time.monotonic()
    worker = d.start_worker("w1")
    records = [(a.id.encode(), a.model_dump_json().encode()) for a in published]
    stream = Publisher(d, "news.articles", records, RATE)

    def count() -> int:
        return len(decided() & ids)

    # Three kills: at a random moment of a restart (tables being recovered, the group being
    # joined), and twice once the worker has decided a random number more articles.
    kinds = ["progress", "restart", "progress"]
    try:
        for n, kind in enumerate(kinds, 1):
            before = count()
            if kind == "progress":
                goal = before + rng.randint(1, max(1, min(400, (len(ids) - before) // 2)))
                wait_until(lambda goal=goal: count() >= goal, 240, f"{goal} decided", d, 0.2)
                time.sleep(rng.uniform(0.0, 1.0))  # anywhere in a commit interval
                what = f"{goal - before} more decided since the restart"
            else:
                pause = rng.uniform(0.5, 8.0)
                time.sleep(pause)
                what = f"{pause:.1f}s into the restart"
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()
            done = count()
            assert done < len(ids), "the stream was over before the kill: raise the volume"
            scenario.note(
                f"kill {n} ({what}): {done}/{len(ids)} decided, published {stream.sent}, "
                f"{time.monotonic() - started:.0f}s in"
            )
            worker = d.start_worker("w1")  # the same table directory: tables plus changelog
        stream.join()
        wait_until(lambda: not undecided(published, decided()), 300, "every article decided", d)
        scenario.note(f"every article decided {time.monotonic() - started:.0f}s after the start")
        settle_deliveries(d, "archive")
    finally:
        decided.close()
    check_kafka_invariants(d, published, decided.ids, scenario)
