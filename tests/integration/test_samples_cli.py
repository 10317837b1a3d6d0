"""`monitor run --once` over the bundled samples, as a newcomer runs it: a real subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from monitor.models import Story
from monitor.state.sqlite import Store
from tests.conftest import REPO, monitor_cli
from tests.integration.kafka_support import jsonl_lines

TRAPS = [
    "home invasion",
    "pitch invasion",
    "war on inflation",
    "teachers strike",
    "nuclear power plant",
    "nuclear family",
    "shelling out",
    "border collie",
    "invasion of privacy",
    "price war",
]


def monitor(*args: str, cwd: Path = REPO, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return monitor_cli(
        *args, env={"MONITOR_LOG_FORMAT": "json", "COLUMNS": "120"}, cwd=cwd, timeout=timeout
    )


def alerts(path: Path) -> list[dict[str, object]]:
    # complete lines only: `monitor run` may be appending as we read
    return jsonl_lines(path)


def test_samples_once_alerts_the_seed_story_once_and_ignores_traps(tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    state = tmp_path / "state.db"
    run = monitor("run", "--once", "--state", str(state), "--jsonl", str(out))
    assert run.returncode == 0, run.stderr
    got = alerts(out)
    seed = [a for a in got if "militarily and technically" in str(a["title"])]
    opened = [a for a in seed if a["kind"] == "opened"]
    assert len(opened) == 1, seed
    assert len({a["story_id"] for a in seed}) == 1
    top = seed[-1]
    assert top["level"] in {"high", "critical"}
    assert "military-technical-response" in top["rules"]  # type: ignore[operator]
    assert [a["level"] for a in seed] == ["high", "critical"]  # escalates as outlets join
    assert any("military-technical-response" in e for e in top["explanation"])  # type: ignore[attr-defined]
    for alert in got:
        title = str(alert["title"]).lower()
        assert not any(trap in title for trap in TRAPS), alert["title"]
    # every alert id appears once: no alert is written twice
    assert len({a["alert_id"] for a in got}) == len(got)
    # the console shows the seed alert with its reasons, and a summary
    assert "militarily and technically" in run.stdout
    assert "military-technical-response" in run.stdout
    assert "run summary" in run.stdout

    # a second run on the same state writes no alert and still knows its stories
    again = monitor("run", "--once", "--state", str(state), "--jsonl", str(out))
    assert again.returncode == 0, again.stderr
    assert len(alerts(out)) == len(got)
    store = Store(state)
    stories = store.models("stories", Story)
    story = stories[str(top["story_id"])]
    assert len(story.sources) >= 4  # every outlet's copy joined the one story
    assert len(stories) >= 30
    store.close()


def test_invalid_rules_stop_start_up_with_every_error(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "esc.yaml").write_text(
        "rules:\n  - id: a\n    match: {any: [x]}\n    weight: heavy\n"
        "  - id: b\n    match: {anyy: [y]}\n    weight: 5\n"
    )
    run = monitor("run", "--once", "--rules", str(rules), "--state", str(tmp_path / "s.db"))
    assert run.returncode == 2
    assert f"{rules}/esc.yaml:4:13: rules[0].weight: must be a number" in run.stderr
    assert f"{rules}/esc.yaml:6:13: rules[1].match.anyy: unknown key" in run.stderr


def test_invalid_feed_list_is_reported_with_its_location(tmp_path: Path) -> None:
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("feeds:\n  - name: a\n    url: nowhere.xml\n    reliability: 2\n")
    run = monitor("run", "--once", "--feeds", str(feeds), "--state", str(tmp_path / "s.db"))
    assert run.returncode == 2
    assert f"{feeds}:4:18: feeds[0].reliability: must be less than or equal to 1" in run.stderr


def test_sigterm_stops_a_running_pipeline_cleanly(tmp_path: Path) -> None:
    env = {**os.environ, "MONITOR_LOG_FORMAT": "json"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitor.cli",
            "run",
            "--state",
            str(tmp_path / "s.db"),
            "--jsonl",
            str(tmp_path / "a.jsonl"),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not alerts(tmp_path / "a.jsonl"):
        time.sleep(0.2)
    assert alerts(tmp_path / "a.jsonl"), "no alert within 60 s"
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "run summary" in stdout


def test_kafka_commands_explain_what_is_missing(tmp_path: Path) -> None:
    env_without = {k: v for k, v in os.environ.items() if k != "MONITOR_KAFKA_BOOTSTRAP"}
    for command in (["worker"], ["poll", "--once"]):
        run = subprocess.run(
            [sys.executable, "-m", "monitor.cli", *command],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            env={**env_without, "MONITOR_STATE": str(tmp_path / "s.db")},
        )
        assert run.returncode == 2
        assert "MONITOR_KAFKA_BOOTSTRAP is not set" in run.stderr
    unreachable = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "poll", "--once", "--state", str(tmp_path / "s.db")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**env_without, "MONITOR_KAFKA_BOOTSTRAP": "127.0.0.1:1"},
    )
    assert unreachable.returncode == 2
    assert "Kafka at 127.0.0.1:1 is not reachable" in unreachable.stderr
