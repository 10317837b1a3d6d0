"""`monitor rules backtest` for real: a subprocess over the news-2021 corpus, the state file of
a real `monitor run --once`, and a topic on the local Kafka broker."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from monitor.feeds.exports import read_exports
from monitor.metrics import Metrics
from monitor.models import Level
from monitor.rules.ruleset import load_ruleset
from monitor.runtime.stages import Pipeline
from tests.conftest import REPO, RULES, corpus
from tests.integration.kafka_support import Deployment, produce

SAMPLES = REPO / "monitor" / "samples"


def backtest(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", "rules", "backtest", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**base, "MONITOR_LOG_FORMAT": "json", "COLUMNS": "200", **(env or {})},
    )


def as_json(run: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert run.returncode == 0, run.stderr
    doc: dict[str, Any] = json.loads(run.stdout)
    return doc


def rules_copy(tmp_path: Path, drop: str | None = None, add: str | None = None) -> Path:
    """The starter rules, copied; ``drop`` removes a rule (and the tests that expect it)."""
    path = tmp_path / "rules"
    shutil.copytree(RULES, path)
    if drop:
        for file in path.glob("*.yaml"):
            doc = yaml.safe_load(file.read_text())
            if not isinstance(doc, dict) or "rules" not in doc:
                continue
            doc["rules"] = [r for r in doc["rules"] if r["id"] != drop]
            doc["tests"] = [t for t in doc.get("tests", []) if drop not in t["expect"]]
            file.write_text(yaml.safe_dump(doc, sort_keys=False))
    if add:
        (path / "added.yaml").write_text(add)
    return path


def test_starter_rules_against_themselves_agree_with_a_direct_replay() -> None:
    news = corpus("news-2021")
    started = time.monotonic()
    run = backtest("--rules", "alert_rules", "--input", str(news), "--json")
    took = time.monotonic() - started
    doc = as_json(run)
    assert "alert_raised" not in run.stderr  # replayed alerts go nowhere, not even the log
    assert took < 60, f"two replays of the corpus took {took:.0f}s"  # seconds, not minutes
    assert doc["old"]["rules"] == "alert_rules"  # --against defaults to the rules in force
    assert doc["totals"]["gained"] == doc["totals"]["lost"] == doc["totals"]["level_changes"] == 0
    assert doc["mismatched_articles"] == 0

    # the same articles through the same stage code, driven directly
    ruleset = load_ruleset(RULES)
    articles = sorted(read_exports(news), key=lambda a: (a.published, a.id))
    assert doc["articles"] == len(articles) > 4000
    pipe = Pipeline(ruleset, ruleset.routes, {}, {}, {}, {}, Metrics())
    story_level: dict[str, Level] = {}
    story_rules: dict[str, set[str]] = {}
    for a in articles:
        for alert in pipe.process(a):
            story_level[alert.story_id] = max(
                story_level.get(alert.story_id, Level.none), alert.level
            )
            story_rules.setdefault(alert.story_id, set()).update(h.rule_id for h in alert.hits)
    assert doc["stories"] == pipe.counts.stories
    assert doc["totals"]["alerted_stories"] == {"old": len(story_level), "new": len(story_level)}
    rows = {r["rule"]: r for r in doc["rules"]}
    assert set(rows) == set(ruleset.by_id)
    alerted_any = 0
    for rule_id, row in rows.items():
        matched = pipe.metrics.registry.get_sample_value(
            "monitor_rule_matches_total", {"rule": rule_id}
        )
        assert row["articles"] == {"old": int(matched or 0), "new": int(matched or 0)}, rule_id
        mine = [s for s, rules in story_rules.items() if rule_id in rules]
        assert row["alerted_stories"] == {"old": len(mine), "new": len(mine)}, rule_id
        for level in ("low", "medium", "high", "critical"):
            n = sum(story_level[s].name == level for s in mine)
            assert row["levels"][level] == {"old": n, "new": n}, (rule_id, level)
        assert row["status"] == "unchanged"
        alerted_any += bool(mine)
    assert alerted_any >= 10  # the comparison is about something


def test_an_added_rule_gains_and_a_removed_rule_loses(tmp_path: Path) -> None:
    news = corpus("news-2021")
    energy = (
        "rules:\n  - id: energy-crisis\n    match: {any: [energy crisis]}\n    weight: 45\n"
        "tests:\n  - {title: Europe's energy crisis deepens, expect: [energy-crisis]}\n"
    )
    changed = rules_copy(tmp_path, drop="coup", add=energy)
    args = ("--rules", str(changed), "--against", "alert_rules", "--input", str(news))
    doc = as_json(backtest(*args, "--json", "--limit", "0"))
    rows = {r["rule"]: r for r in doc["rules"]}

    added = rows["energy-crisis"]
    assert added["status"] == "added"
    assert added["articles"]["old"] == 0 and added["articles"]["new"] >= 1
    assert added["gained"] >= 1
    gained = [g for g in doc["gained"] if "energy-crisis" in g["new_rules"]]
    assert len(gained) == added["gained"]
    assert all("energy crisis" in g["title"].lower() for g in gained)
    assert all(g["old_level"] == "none" and g["new_level"] != "none" for g in gained)

    removed = rows["coup"]
    assert removed["status"] == "removed"
    assert removed["alerted_stories"]["old"] >= 3 and removed["alerted_stories"]["new"] == 0
    assert removed["lost"] >= 3
    lost = doc["lost"]
    assert len(lost) == doc["totals"]["lost"] == removed["lost"]
    assert all(x["old_rules"] == ["coup"] and x["new_level"] == "none" for x in lost)
    assert any("coup" in x["title"].lower() for x in lost)
    # the other rules alert as before
    others = [r for r in doc["rules"] if r["rule"] not in {"coup", "energy-crisis"}]
    assert all(r["alerted_stories"]["old"] == r["alerted_stories"]["new"] for r in others)
    total = doc["totals"]["alerted_stories"]
    assert total["new"] - total["old"] == len(gained) - len(lost)

    table = backtest(*args, "--limit", "2")
    assert table.returncode == 0, table.stderr
    assert "energy-crisis" in table.stdout and "added" in table.stdout
    assert f"stories lost (alerted by the old rules only): {len(lost)}" in table.stdout
    assert f"… and {len(lost) - 2} more" in table.stdout
    assert gained[0]["title"][:40] in table.stdout
    assert table.stderr == ""  # not a terminal: no progress bar


def test_state_file_of_a_real_run(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    run = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "run", "--once", "--state", str(state)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MONITOR_LOG_FORMAT": "json"},
    )
    assert run.returncode == 0, run.stderr
    changed = rules_copy(tmp_path, drop="embassy-evacuation")
    from_state = as_json(backtest("--rules", str(changed), "--input", f"state:{state}", "--json"))
    from_files = as_json(backtest("--rules", str(changed), "--input", str(SAMPLES), "--json"))
    assert from_state["articles"] >= 50
    assert from_state["totals"]["alerted_stories"]["old"] >= 5
    assert [x["title"] for x in from_state["lost"]] == [
        "US orders families of embassy staff to leave Kyiv"
    ]
    # the archive keeps what the poll read: the same replay as the feed files themselves
    del from_state["input"], from_files["input"]
    assert from_state == from_files

    since = as_json(
        backtest(
            "--rules", str(changed), "--input", f"state:{state}", "--json", "--since", "2022-02-24"
        )
    )
    assert 0 < since["articles"] < from_state["articles"]
    assert since["since"] == "2022-02-24T00:00:00+00:00"


def test_bad_inputs_exit_2_naming_them(tmp_path: Path) -> None:
    not_feed = tmp_path / "page.xml"
    not_feed.write_text("<html><body>Sign in</body></html>")
    cases = {
        "nowhere/at/all": "--input 'nowhere/at/all': no such file or directory",
        f"state:{tmp_path / 'none.db'}": f"state file {tmp_path / 'none.db'} not found",
        str(not_feed): f"{not_feed}: not a feed",
        "kafka:news.articles": "MONITOR_KAFKA_BOOTSTRAP is not set",
    }
    for spec, message in cases.items():
        run = backtest("--rules", "alert_rules", "--input", spec)
        assert run.returncode == 2, (spec, run.stdout, run.stderr)
        assert message in run.stderr, (spec, run.stderr)
        assert run.stdout == ""
    # a broker that is not there (nothing listens on port 1): named, not a traceback
    env = {"MONITOR_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    run = backtest("--rules", "alert_rules", "--input", "kafka:news.articles", env=env)
    assert run.returncode == 2
    assert "no Kafka broker reachable at 127.0.0.1:1" in run.stderr
    run = backtest("--rules", "alert_rules", "--input", str(SAMPLES), "--since", "soonish")
    assert run.returncode == 2 and "--since: 'soonish' is neither" in run.stderr
    run = backtest("--rules", str(tmp_path / "no-rules"), "--input", str(SAMPLES))
    assert run.returncode == 2 and "rules directory not found" in run.stderr


def test_kafka_topic_from_since(deployment: Deployment, tmp_path: Path) -> None:
    # the samples feed-file replay is the reference: the same articles through Kafka must
    # give the same alerts
    reference = as_json(backtest("--rules", "alert_rules", "--input", str(SAMPLES), "--json"))
    from monitor.backtest.sources import Window, load_input

    articles = load_input(str(SAMPLES), Window()).articles
    # before --since: the samples as first published
    produce(
        deployment,
        "news.articles",
        [(a.id.encode(), a.model_dump_json().encode()) for a in articles],
    )
    time.sleep(0.1)
    since = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    time.sleep(max(0.0, (since - datetime.now(UTC)).total_seconds()) + 0.05)
    # after it: the same news again, republished and refetched now (record times after since)
    shift = since - articles[0].published + timedelta(seconds=1)
    fetched = datetime.now(UTC)  # another fetch: not the same occurrence as the first
    again = [
        a.model_copy(update={"published": a.published + shift, "fetched_at": fetched})
        for a in articles
    ]
    records = [(a.id.encode(), a.model_dump_json().encode()) for a in again]
    records += [(b"junk", b"not an article"), (b"half", b'{"id": "x", "title": "no dates"}')]
    produce(deployment, "news.articles", records)
    env = {
        "MONITOR_KAFKA_BOOTSTRAP": deployment.bootstrap,
        "MONITOR_KAFKA_TOPIC_PREFIX": deployment.prefix,
    }
    run = backtest(
        "--rules",
        "alert_rules",
        "--input",
        "kafka:news.articles",
        "--json",
        "--since",
        since.isoformat(),
        env=env,
    )
    doc = as_json(run)
    assert doc["undecodable"] == 2
    assert "2 record(s)" in run.stderr and f"{deployment.prefix}news.articles" in run.stderr
    assert doc["articles"] == len(articles)  # only those after --since, none twice
    assert doc["exact_duplicates"] == 0
    assert doc["totals"]["alerted_stories"] == reference["totals"]["alerted_stories"]
    assert doc["rules"] == reference["rules"]

    # without --since: the whole topic; the republished copies are exact duplicates
    everything = as_json(
        backtest("--rules", "alert_rules", "--input", "kafka:news.articles", "--json", env=env)
    )
    assert everything["articles"] == 2 * len(articles)
    assert everything["exact_duplicates"] == len(articles)

    missing = backtest("--rules", "alert_rules", "--input", "kafka:no.such.topic", env=env)
    assert missing.returncode == 2
    assert f"no topic {deployment.prefix}no.such.topic" in missing.stderr
