"""The scale-out runtime on a real Apache Kafka broker: pollers publish, Faust workers alert."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from monitor.models import Article
from tests.integration.kafka_support import (
    REPO,
    Deployment,
    assert_invariants,
    corpus_articles,
    decided_articles,
    exact_duplicates,
    produce,
    read_topic,
    sample_articles,
    wait_for,
)
from tests.integration.test_samples_cli import TRAPS


def seed_alerts(alerts: list[dict[str, object]]) -> list[dict[str, object]]:
    return [a for a in alerts if "militarily and technically" in str(a["title"])]


def final_levels(alerts: list[dict[str, object]]) -> Counter[str]:
    """The level each alerted story ended at: independent of the order copies were processed."""
    order = ["low", "medium", "high", "critical"]
    best: dict[str, str] = {}
    for a in alerts:
        sid, level = str(a["story_id"]), str(a["level"])
        if sid not in best or order.index(level) > order.index(best[sid]):
            best[sid] = level
    return Counter(best.values())


def test_poll_and_worker_alert_the_seed_story_once(deployment: Deployment) -> None:
    d = deployment
    d.start_worker()
    poll = d.poll_once()
    assert poll.returncode == 0, poll.stderr
    assert f"published {len(sample_articles())} articles from 6 feeds" in poll.stdout
    # a cold worker's first rebalance included (90 s, as the other first-start waits)
    wait_for(
        lambda: any(a["level"] == "critical" for a in seed_alerts(d.alerts())),
        90,
        "the seed story's alerts",
        d,
    )
    published = sample_articles()
    wait_for(
        lambda: len(decided_articles(d)) >= len(published) - len(exact_duplicates(published)),
        60,
        "every article decided",
        d,
    )
    alerts = assert_invariants(d, published)
    seed = seed_alerts(alerts)
    assert [a["kind"] for a in seed].count("opened") == 1
    assert {a["story_id"] for a in seed} == {seed[0]["story_id"]}
    assert "military-technical-response" in seed[-1]["rules"]  # type: ignore[operator]
    for alert in alerts:
        assert not any(t in str(alert["title"]).lower() for t in TRAPS), alert["title"]
    # the same alerts as the embedded runtime, story for story, by final level
    from tests.integration.test_samples_cli import monitor

    embedded = d.root / "embedded.jsonl"
    run = monitor("run", "--once", "--state", str(d.root / "e.db"), "--jsonl", str(embedded))
    assert run.returncode == 0
    expected = [json.loads(x) for x in embedded.read_text().splitlines()]
    settle(d, expected)


def settle(d: Deployment, expected: list[dict[str, object]]) -> None:
    """Wait for the last alerts to land, then compare story by story with the embedded run."""
    try:
        wait_for(lambda: final_levels(d.alerts()) == final_levels(expected), 20, "final levels", d)
    except AssertionError:
        got = sorted((str(a["title"])[:60], a["kind"], a["level"]) for a in d.alerts())
        want = sorted((str(a["title"])[:60], a["kind"], a["level"]) for a in expected)
        raise AssertionError(f"kafka:\n{got}\nembedded:\n{want}") from None


def test_poison_records_go_to_the_dead_letter_topic(deployment: Deployment) -> None:
    d = deployment
    d.start_worker()
    good = sample_articles()[0]
    produce(d, "news.articles", [(b"junk", b"\xff\xfe not json"), (b"half", b'{"id": "x"}')])
    produce(d, "news.stories", [(b"s", b"[1, 2, 3]")])
    produce(d, "news.alerts", [(b"a", b'{"alert": "no"}')])
    produce(d, "news.articles", [(good.id.encode(), good.model_dump_json().encode())])
    wait_for(lambda: len(read_topic(d, "news.deadletter")) >= 4, 60, "4 dead letters", d)
    dead = [json.loads(v) for _, v in read_topic(d, "news.deadletter")]
    assert sorted(x["stage"] for x in dead) == ["alerting", "deliver", "ingest", "ingest"]
    assert all(x["error"] and x["topic"].startswith(d.prefix) for x in dead)
    assert any("\ufffd" in x["value"] or "not json" in x["value"] for x in dead)
    # the agent carried on: the good article behind the poison reached its story
    wait_for(lambda: good.id in decided_articles(d), 30, "the good article", d)
    assert all(p.poll() is None for p in d.workers), "a worker died on poison"


def test_two_workers_share_the_work_without_duplicates(deployment: Deployment) -> None:
    d = deployment
    d.start_worker("w1")
    d.start_worker("w2")
    time.sleep(8)  # both join the group before the articles arrive
    assert d.poll_once().returncode == 0
    published = sample_articles()
    wait_for(
        lambda: len(decided_articles(d)) >= len(published) - len(exact_duplicates(published)),
        90,
        "every article decided",
        d,
    )
    wait_for(lambda: len(seed_alerts(d.alerts())) >= 2, 30, "the seed alerts", d)
    time.sleep(3)  # let the last alerts land
    assert_invariants(d, published)
    from tests.integration.test_samples_cli import monitor

    embedded = d.root / "embedded.jsonl"
    assert (
        monitor(
            "run", "--once", "--state", str(d.root / "e.db"), "--jsonl", str(embedded)
        ).returncode
        == 0
    )
    expected = [json.loads(x) for x in embedded.read_text().splitlines()]
    settle(d, expected)
    # both workers did some of the work
    logs = [(d.root / f"{w}.log").read_text() for w in ("w1", "w2")]
    assert all(log.strip() for log in logs)


def test_sigkill_and_restart_lose_nothing_and_repeat_nothing(deployment: Deployment) -> None:
    d = deployment
    # the killed member's partitions wait this long before the restarted worker gets them
    d.extra_env["MONITOR_KAFKA_SESSION_TIMEOUT"] = "10"
    worker = d.start_worker("w1")
    published = sample_articles() + corpus_articles(1500)
    produce(d, "news.articles", [(a.id.encode(), a.model_dump_json().encode()) for a in published])
    target = len(published) - len(exact_duplicates(published))
    wait_for(lambda: len(decided_articles(d)) >= target // 3, 120, "a third decided", d)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    before = len(decided_articles(d))
    assert before < target, "the stream finished before the kill; raise the volume"
    d.start_worker("w1")  # same data dir: local tables plus the changelog
    wait_for(lambda: len(decided_articles(d)) >= target, 180, "every article decided", d)
    time.sleep(3)
    alerts = assert_invariants(d, published)
    assert [a["kind"] for a in seed_alerts(alerts)].count("opened") == 1


def test_digests_and_resolution_run_on_ticks_in_kafka(deployment: Deployment) -> None:
    """Time-driven work in the worker: stories crossing together leave as one digest when the
    group window closes, and each alerted story is resolved once quiet, exactly once."""
    import shutil

    d = deployment
    d.rules = d.root / "rules"
    shutil.copytree(REPO / "alert_rules", d.rules)
    (d.rules / "routes.yaml").write_text(
        "routes:\n"
        "  - {name: archive, sink: jsonl, min_level: low, group_window: 3s, resolve_after: 6s}\n"
    )
    d.start_worker()
    assert d.poll_once().returncode == 0

    def story_ids(kind_is_resolved: bool) -> set[object]:
        return {a["story_id"] for a in d.alerts() if (a["kind"] == "resolved") == kind_is_resolved}

    wait_for(
        lambda: bool(story_ids(False)) and story_ids(True) == story_ids(False),
        90,
        "every alerted story resolved",
        d,
    )
    alerts = d.alerts()
    ids = [a["alert_id"] for a in alerts]
    assert len(ids) == len(set(ids)), "an alert was delivered twice"
    digests = {a["digest_id"] for a in alerts if a.get("digest_id")}
    assert digests, "no digest: the stories that crossed together came one by one"
    assert max(int(str(a.get("digest_size", 0))) for a in alerts) >= 2
    resolved = [a for a in alerts if a["kind"] == "resolved"]
    assert len(resolved) == len({a["story_id"] for a in resolved})  # once per story
    time.sleep(8)  # another sweep or two: nothing more
    assert len(d.alerts()) == len(alerts)


def test_published_rules_reach_every_worker_without_a_restart(deployment: Deployment) -> None:
    """`monitor rules publish` switches a running worker to the new rule set; a worker started
    later takes the published set, not its local files; invalid rules are never published."""
    import shutil
    import subprocess
    import sys

    from monitor.rules.ruleset import load_ruleset

    d = deployment
    d.rules = d.root / "rules"
    shutil.copytree(REPO / "alert_rules", d.rules)
    (d.rules / "routes.yaml").write_text(
        "routes:\n  - {name: archive, sink: jsonl, min_level: low}\n"
    )
    d.start_worker("w1")
    assert d.poll_once().returncode == 0
    wait_for(lambda: bool(seed_alerts(d.alerts())), 90, "the worker to run", d)

    new_rules = d.root / "rules-v2"
    shutil.copytree(d.rules, new_rules)
    (new_rules / "zeppelins.yaml").write_text(
        "rules:\n  - id: zeppelin-sighting\n    match:\n      any: [zeppelin]\n    weight: 70\n"
    )
    version = load_ruleset(new_rules).version

    def publish(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "monitor.cli", "rules", "publish", str(path), "--delay", "2s"],
            cwd=REPO,
            env=d.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    broken = d.root / "rules-broken"
    shutil.copytree(new_rules, broken)
    (broken / "zeppelins.yaml").write_text("rules:\n  - id: zeppelin\n    weight: 70\n")
    refused = publish(broken)
    assert refused.returncode == 1 and "zeppelins.yaml:2:" in refused.stderr

    done = publish(new_rules)
    assert done.returncode == 0, done.stderr
    assert version in done.stdout
    wait_for(
        lambda: (
            f'"version": "{version}"' in (d.root / "w1.log").read_text()
            and "rules_reloaded" in (d.root / "w1.log").read_text()
        ),
        30,
        "the worker to switch",
        d,
    )
    now = datetime.now(UTC)
    article = Article(
        id="zeppelin-1",
        source="harbour-news",
        url="https://harbour.example/zeppelin",
        title="Zeppelin sighting over the harbour alarms residents",
        published=now,
        fetched_at=now,
    )
    produce(d, "news.articles", [(article.id.encode(), article.model_dump_json().encode())])
    wait_for(lambda: any("Zeppelin" in str(a["title"]) for a in d.alerts()), 60, "the new rule", d)
    zeppelin = next(a for a in d.alerts() if "Zeppelin" in str(a["title"]))
    assert zeppelin["rules_version"] == version

    # a worker started now, with the old files on disk, joins on the published version
    d.start_worker("w2")
    wait_for(
        lambda: "rules_from_kafka" in (d.root / "w2.log").read_text(), 60, "the second worker", d
    )
    assert version in (d.root / "w2.log").read_text()
