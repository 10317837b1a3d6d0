"""Rule files: every error in one pass, each located as path:line:col."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from monitor.errors import RuleLoadError
from monitor.rules.ruleset import load_ruleset
from monitor.rules.testing import run_rule_tests
from tests.conftest import RULES


def write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def issues(directory: Path) -> list[str]:
    with pytest.raises(RuleLoadError) as caught:
        load_ruleset(directory)
    return [str(i) for i in caught.value.issues]


GOOD_RULE = """\
rules:
  - id: invasion
    match:
      any: [invasion]
    weight: 35
"""


def test_wrong_type_points_at_the_value(tmp_path: Path) -> None:
    write(tmp_path, "esc.yaml", GOOD_RULE.replace("weight: 35", "weight: lots"))
    [issue] = issues(tmp_path)
    assert issue == f"{tmp_path}/esc.yaml:5:13: rules[0].weight: must be a number"


def test_every_error_in_one_pass_across_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD_RULE.replace("weight: 35", "weight: -1"))
    write(
        tmp_path,
        "b.yaml",
        "rules:\n  - id: Bad Id\n    match: {any: []}\n    weight: 10\n    colour: red\n",
    )
    found = issues(tmp_path)
    assert any(i.startswith(f"{tmp_path}/a.yaml:5:13: rules[0].weight:") for i in found)
    assert any(i.startswith(f"{tmp_path}/b.yaml:2:9: rules[0].id: use lowercase") for i in found)
    assert any(i.startswith(f"{tmp_path}/b.yaml:3:12: rules[0].match:") for i in found)
    assert any(f"{tmp_path}/b.yaml:5:5: rules[0].colour: unknown key" in i for i in found)
    assert len(found) == 4


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    write(tmp_path, "esc.yaml", GOOD_RULE.replace("weight: 35", "wieght: 35"))
    found = issues(tmp_path)
    assert any("rules[0].wieght: unknown key (hint: did you mean 'weight'?)" in i for i in found)
    assert any("rules[0].weight: is required" in i for i in found)


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    write(tmp_path, "esc.yaml", "rules:\n  - id: x\n    match: {any: [a, b}\n")
    [issue] = issues(tmp_path)
    assert issue.startswith(f"{tmp_path}/esc.yaml:3:")
    assert "(yaml)" in issue


def test_duplicate_ids_and_duplicate_keys(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD_RULE)
    write(tmp_path, "b.yaml", GOOD_RULE.replace("weight: 35", "weight: 35\n    weight: 40"))
    found = issues(tmp_path)
    assert any("b.yaml:6:5: rules[0].weight: duplicate key" in i for i in found)
    write(tmp_path, "b.yaml", GOOD_RULE)
    [dup] = issues(tmp_path)
    assert "b.yaml:2:9: rules[0].id: duplicate rule id 'invasion' (first in" in dup


def test_phrase_without_words_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "esc.yaml", GOOD_RULE.replace("any: [invasion]", 'any: [invasion, "--"]'))
    [issue] = issues(tmp_path)
    assert "esc.yaml:4:23: rules[0].match.any[1]: phrase '--' has no words" in issue


def test_thresholds_must_rise_and_routes_need_levels(tmp_path: Path) -> None:
    write(tmp_path, "esc.yaml", GOOD_RULE)
    write(tmp_path, "scoring.yaml", "levels: {low: 50, medium: 40, high: 60, critical: 85}\n")
    write(
        tmp_path,
        "routes.yaml",
        "routes:\n  - name: desk\n    sink: console\n    min_level: severe\n",
    )
    found = issues(tmp_path)
    assert any("scoring.yaml:1:9: levels: thresholds must rise" in i for i in found)
    assert any("routes.yaml:4:16: routes[0].min_level: must be one of" in i for i in found)


def test_test_case_naming_an_unknown_rule(tmp_path: Path) -> None:
    write(tmp_path, "esc.yaml", GOOD_RULE + "tests:\n  - text: x\n    expect: [invasoin]\n")
    [issue] = issues(tmp_path)
    assert "esc.yaml:8:14: expect: unknown rule id 'invasoin'" in issue


def test_missing_directory_and_empty_directory(tmp_path: Path) -> None:
    assert "rules directory not found" in issues(tmp_path / "nope")[0]
    assert "no rule files" in issues(tmp_path)[0]


def test_starter_rules_load_and_all_their_tests_pass() -> None:
    rs = load_ruleset(RULES)
    results = run_rule_tests(rs)
    failures = [f"{r.where}: {r.reason}" for r in results if not r.ok]
    assert not failures, "\n".join(failures)
    assert len(rs.rules) >= 20
    # each rule has at least one example that fires it and one near-miss that does not
    for rule in rs.rules:
        positives = [t for t in rs.tests if rule.id in t.case.expect]
        assert positives, f"{rule.id} has no positive test case"
    negatives = [t for t in rs.tests if not t.case.expect]
    assert len(negatives) >= len(rs.rules) // 2


def test_a_failing_rule_test_is_reported(tmp_path: Path) -> None:
    shutil.copy(RULES / "scoring.yaml", tmp_path)
    write(
        tmp_path,
        "esc.yaml",
        GOOD_RULE + "tests:\n  - text: home invasion\n    expect: []\n"
        "  - text: troops invade\n    expect: [invasion]\n",
    )
    results = run_rule_tests(load_ruleset(tmp_path))
    assert [r.ok for r in results] == [False, False]
    assert results[0].reason == "fired unexpectedly: invasion"
    assert results[1].reason == "did not fire: invasion"
