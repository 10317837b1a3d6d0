"""Logs let one story be followed from article to delivered alert: JSON lines carrying the
article, story and alert ids, in production format."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_samples_cli import alerts, monitor


def test_a_story_can_be_followed_through_the_json_logs(tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    run = monitor("run", "--once", "--state", str(tmp_path / "s.db"), "--jsonl", str(out))
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    assert lines and all({"event", "level", "timestamp"} <= line.keys() for line in lines)
    raised = [line for line in lines if line["event"] == "alert_raised"]
    delivered = {line["alert_id"] for line in lines if line["event"] == "alert_delivered"}
    seed = next(a for a in alerts(out) if "militarily and technically" in str(a["title"]))
    trail = [line for line in raised if line["alert_id"] == seed["alert_id"]]
    assert len(trail) == 1
    line = trail[0]
    assert line["story_id"] == seed["story_id"] and line["article_id"] and line["feed"]
    assert line["rules_version"] and line["alert_level"] == seed["level"]
    assert seed["alert_id"] in delivered
    # every alert raised on a working route was delivered, and each says which route
    assert {r["alert_id"] for r in raised if r["route"] in {"archive", "desk-console"}} <= delivered
