"""`monitor rules evaluate` on labelled headlines, with a rule whose outcome is known by
construction (it fires on "zeppelin" and nothing else): one true alert, one false alarm, one
miss, one true silence, so precision = recall = F1 = 0.5; CSV and JSON lines; the bars; bad
input named by file and line; the starter rules on a small labelled set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tests.conftest import RULES, monitor_cli

ZEPPELIN = "rules:\n  - id: zeppelin\n    match:\n      any: [zeppelin]\n    weight: 30\n"


def zeppelin_rules(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    (rules / "escalation.yaml").unlink()
    (rules / "zeppelin.yaml").write_text(ZEPPELIN)
    return rules


def evaluate(*args: str) -> tuple[int, dict[str, Any], str]:
    done = monitor_cli("rules", "evaluate", *args, "--json")
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else {}, done.stderr


def test_counts_and_ratios_on_csv_and_json_lines(tmp_path: Path) -> None:
    rules = zeppelin_rules(tmp_path)
    csv = tmp_path / "labelled.csv"
    csv.write_text(
        "title,body,label\n"
        '"Zeppelin sighted over the harbour, say witnesses",,yes\n'
        "Zeppelin museum opens a new wing,,no\n"
        "Airship drifts over the town,,1\n"
        "Cat show draws record crowds,,0\n"
    )
    code, doc, err = evaluate(str(csv), "--rules", str(rules))
    assert code == 0, err
    assert doc["counts"] == {"true_alerts": 1, "false_alarms": 1, "misses": 1, "true_silences": 1}
    assert (doc["precision"], doc["recall"], doc["f1"]) == (0.5, 0.5, 0.5)
    assert doc["false_alarm_rules"] == {"zeppelin": 1}
    [alarm] = doc["false_alarms"]
    assert alarm["where"] == f"{csv}:3" and alarm["rules"] == ["zeppelin"]
    [miss] = doc["misses"]
    assert miss["title"] == "Airship drifts over the town" and miss["level"] == "none"

    # JSON lines, labels as levels: the sighting should be critical, and is medium (30 x 1.5);
    # at --level critical nothing alerts, so the sighting is a miss and precision undefined
    jsonl = tmp_path / "labelled.jsonl"
    jsonl.write_text(
        json.dumps({"title": "Zeppelin sighted over the harbour", "label": "critical"})
        + "\n\n"
        + json.dumps({"text": "Cat show draws record crowds", "label": "none"})
        + "\n"
    )
    code, doc, _ = evaluate(str(jsonl), "--rules", str(rules))
    assert doc["counts"]["true_alerts"] == 1 and doc["under_level"][0]["label"] == "critical"
    code, doc, _ = evaluate(str(jsonl), "--rules", str(rules), "--level", "critical")
    assert doc["counts"]["misses"] == 1 and doc["precision"] is None and doc["recall"] == 0.0

    # the bars: exit 1 below them, naming which
    code, _, err = evaluate(str(csv), "--rules", str(rules), "--min-recall", "0.6")
    assert code == 1 and "recall 0.50 < 0.6" in err
    assert evaluate(str(csv), "--rules", str(rules), "--min-precision", "0.5")[0] == 0

    # the table: ratios and the false alarm's title as written
    table = monitor_cli("rules", "evaluate", str(csv), "--rules", str(rules))
    assert "precision 0.50  recall 0.50  f1 0.50" in table.stdout
    assert "Zeppelin museum opens a new wing" in table.stdout


def test_bad_input_is_named_by_file_and_line(tmp_path: Path) -> None:
    cases = {
        "bad-label.csv": ("title,label\nFine,yes\nOdd,maybe\n", ":3:1: label: 'maybe'"),
        "no-title.csv": ("title,label\n,yes\n", ":2:1: title: missing"),
        "no-label-column.csv": ("title\nA headline\n", ":1:1: (header): needs columns"),
        "broken.jsonl": ('{"title": "ok", "label": 1}\n{"title": \n', ":2:1: (json)"),
        "array.jsonl": ("[1, 2]\n", ":1:1: (json): each line must be an object"),
        "empty.csv": ("title,label\n", ":1:1: (file): no labelled items"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        code, _, err = evaluate(str(path))
        assert code == 2, (name, err)
        assert f"{path}{message}" in err, (name, err)
    missing = monitor_cli("rules", "evaluate", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and "nope.csv:1:1: (file): cannot read" in missing.stderr


def test_the_starter_rules_on_labelled_headlines(tmp_path: Path) -> None:
    labelled = tmp_path / "headlines.csv"
    labelled.write_text(
        "title,label\n"
        "Russia launches full-scale invasion of Ukraine,high\n"
        "Putin warns of military-technical measures in response to NATO,yes\n"
        "Invasive species invade Lake Geneva,no\n"
        "Shell profits soar as oil prices climb,no\n"
    )
    code, doc, err = evaluate(str(labelled))
    assert code == 0, err
    assert doc["rules"] == "alert_rules" and doc["items"] == 4
    assert sum(doc["counts"].values()) == 4
    assert doc["false_alarms"] == [] and doc["recall"] == 1.0  # the cases rule tests also hold
