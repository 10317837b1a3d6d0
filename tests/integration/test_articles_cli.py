"""`monitor articles dead` and `monitor articles replay`, as an operator runs them (subprocesses).

Embedded: a stage fails on one article of the bundled samples; the article is listed with its
stage and error; replayed while the fault is still there it comes back with the new error;
replayed once the fault is fixed, the next `monitor run` round decides it.

Kafka: a worker dead-letters a record it cannot decode, and one it failed on (as a bug would
make it); both are listed; the failed one, replayed, is decided and alerted by a worker; the
undecodable one, replayed, is dead-lettered again and listed anew; a record kept cut short is
refused.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.feeds.sources import load_feeds, sample_feeds_path
from monitor.models import Article
from monitor.rules.ruleset import RuleSet
from monitor.runtime.embedded import EmbeddedRuntime
from monitor.settings import Settings
from monitor.sinks.testing import ListSink
from monitor.state.sqlite import Store
from tests.conftest import monitor_cli
from tests.integration.kafka_support import Deployment, produce, read_topic, wait_for


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return monitor_cli(*args, env=env)


async def run_once(state: Path, ruleset: RuleSet, fault: str | None) -> EmbeddedRuntime:
    """`monitor run --once` over the samples; with ``fault``, the cluster stage raises it on
    the first article whose title says "militarily and technically"."""
    runtime = EmbeddedRuntime(
        Settings(state=state),
        ruleset,
        load_feeds(sample_feeds_path()),
        None,
        {"archive": ListSink()},
    )
    real_cluster = runtime.pipeline.cluster
    failed: list[str] = []

    def cluster(tagged):  # type: ignore[no-untyped-def]
        if fault and "militarily and technically" in tagged.article.title and not failed:
            failed.append(tagged.article.id)
            raise RuntimeError(fault)
        return real_cluster(tagged)

    runtime.pipeline.cluster = cluster  # type: ignore[method-assign]
    await runtime.run(once=True)
    return runtime


def decided(state: Path, article_id: str) -> bool:
    """The article's exact-dedupe keys were committed: its processing went through."""
    store = Store(state)
    try:
        return any(str(v).startswith(article_id) for v in store.table("seen").values())
    finally:
        store.close()


def listed(state: Path) -> list[dict[str, Any]]:
    done = cli("articles", "dead", "--json", "--state", str(state))
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


async def test_embedded_dead_article_listed_replayed_and_decided(
    tmp_path: Path, ruleset: RuleSet
) -> None:
    state = tmp_path / "s.db"
    assert "no dead articles" in cli("articles", "dead", "--state", str(state)).stdout
    await run_once(state, ruleset, "injected fault")
    [entry] = listed(state)
    victim = entry["id"]
    assert entry["stage"] == "process"
    assert entry["error"] == "RuntimeError: injected fault"
    assert "militarily and technically" in entry["title"]
    assert not decided(state, victim)
    table = cli("articles", "dead", "--state", str(state))
    assert victim in table.stdout and "injected fault" in table.stdout

    # bad requests: named, with the usual exit codes
    unknown = cli("articles", "replay", "no-such-id", "--state", str(state))
    assert unknown.returncode == 1 and "no-such-id" in unknown.stderr
    assert cli("articles", "replay", "--state", str(state)).returncode == 2

    # replayed while the fault is still there: set aside again, with the new error
    replay = cli("articles", "replay", victim, "--state", str(state))
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "queued" in replay.stdout
    assert listed(state) == []  # queued for the run, no longer dead
    runtime = await run_once(state, ruleset, "still broken")
    [again] = listed(state)
    assert (again["id"], again["error"]) == (victim, "RuntimeError: still broken")
    assert runtime.metrics.dead_letters.labels("process")._value.get() == 1

    # fixed: replayed, the next round decides it, and nothing is left queued or dead
    assert cli("articles", "replay", "--all", "--state", str(state)).returncode == 0
    await run_once(state, ruleset, None)
    assert decided(state, victim)
    assert listed(state) == []
    store = Store(state)
    assert len(store.table("replay_articles")) == 0
    store.close()


def dead_letter_for(d: Deployment, article: Article, offset: int) -> dict[str, object]:
    """What a worker writes when a stage fails on a record of news.articles."""
    return {
        "stage": "ingest",
        "topic": d.topic("news.articles"),
        "partition": 0,
        "offset": offset,
        "key": article.id,
        "error": "RuntimeError: a bug since fixed",
        "value": article.model_dump_json(),
        "truncated": False,
        "at": datetime.now(UTC).isoformat(),
    }


def test_kafka_dead_letters_listed_and_replayed(deployment: Deployment) -> None:
    d = deployment
    now = datetime.now(UTC)
    article = Article(
        id="replayed-1",
        source="wire",
        url="https://wire.example/replayed-1",
        title="Putin warns of military-technical measures in response to NATO",
        body="He said Russia would respond militarily and technically.",
        published=now,
        fetched_at=now,
    )
    failed = dead_letter_for(d, article, 7)
    cut = {**dead_letter_for(d, article, 8), "key": "cut", "value": "x" * 100_000}
    cut["truncated"] = True
    produce(d, "news.deadletter", [(b"replayed-1", json.dumps(failed).encode())])
    produce(d, "news.deadletter", [(b"cut", json.dumps(cut).encode())])
    produce(d, "news.articles", [(b"junk", b"\xff not json {{")])
    d.start_worker()

    def entries(*flags: str) -> list[dict[str, Any]]:
        done = cli("articles", "dead", "--json", *flags, env=d.env)
        assert done.returncode == 0, done.stderr
        return list(json.loads(done.stdout))

    def junk() -> list[dict[str, Any]]:
        return [e for e in entries() if e["key"] == "junk"]

    wait_for(lambda: len(junk()) == 1, 90, "the worker's dead letter for the junk record", d)
    [poison] = junk()
    assert poison["stage"] == "ingest" and "cannot decode Article" in poison["error"]
    ids = {e["id"] for e in entries()}
    assert ids == {"news.articles@0:7", "news.articles@0:8", poison["id"]}
    table = cli("articles", "dead", env=d.env)
    assert "Putin warns" in table.stdout and "a bug since fixed" in table.stdout

    # the fixed one: back on news.articles, decided and alerted by the worker
    replay = cli("articles", "replay", "news.articles@0:7", env=d.env)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    wait_for(
        lambda: any(a["story_id"] == "s-replayed-1" for a in d.alerts()),
        90,
        "the replayed article's alert",
        d,
    )
    assert {e["id"] for e in entries()} == {"news.articles@0:8", poison["id"]}
    [shown] = [e for e in entries("--all") if e["id"] == "news.articles@0:7"]
    assert shown["replayed"]

    # cut short when kept: refused, named
    refused = cli("articles", "replay", "news.articles@0:8", env=d.env)
    assert refused.returncode == 1 and "100,000 bytes" in refused.stdout

    # the undecodable one, replayed: dead-lettered again, listed anew at its new position
    assert cli("articles", "replay", poison["id"], env=d.env).returncode == 0
    wait_for(lambda: len(junk()) == 1 and junk()[0]["id"] != poison["id"], 60, "a new entry", d)
    values = [v for k, v in read_topic(d, "news.articles") if k == b"junk"]
    assert len(values) == 2  # the original and its replay, the same bytes
    assert values[0] == values[1]
