"""`monitor rules test`: the examples rule files carry, their expected rules and levels."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from monitor.cli import app
from monitor.models import Level
from monitor.rules.ruleset import load_ruleset
from monitor.rules.testing import run_rule_tests
from tests.conftest import REPO, RULES


def monitor(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def copy_rules(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(RULES, target)
    return target


def line_of(path: Path, text: str) -> int:
    [number] = [n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    return number


def test_the_bundled_rules_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = monitor("rules", "test", "alert_rules")
    assert result.exit_code == 0, result.output
    assert "alert_rules: " in result.stdout and " passed, 0 failed" in result.stdout


def test_the_bundled_rules_carry_level_expectations() -> None:
    results = run_rule_tests(load_ruleset(RULES))
    with_level = [r for r in results if r.test.case.level is not None]
    assert len(with_level) >= 4
    assert {r.test.case.level for r in with_level} >= {"medium", "high", "none"}
    assert all(r.ok for r in with_level)


def test_a_broken_expectation_fails_naming_the_case(tmp_path: Path) -> None:
    rules = copy_rules(tmp_path)
    esc = rules / "escalation.yaml"
    case = line_of(esc, '- text: "Russian troops invade Ukraine"')
    text = esc.read_text()
    broken = text.replace(
        '- text: "Russian troops invade Ukraine"\n    expect: [invasion]',
        '- text: "Russian troops invade Ukraine"\n    expect: [troop-buildup]',
    )
    assert broken != text
    esc.write_text(broken)
    result = monitor("rules", "test", str(rules))
    assert result.exit_code == 1, result.output
    assert (
        f"FAIL {esc}:{case}: did not fire: troop-buildup; fired unexpectedly: invasion"
        in result.stdout
    )
    assert f"{rules}: " in result.stdout and " passed, 1 failed" in result.stdout


def test_a_wrong_level_fails_with_score_and_threshold(tmp_path: Path) -> None:
    rules = copy_rules(tmp_path)
    esc = rules / "escalation.yaml"
    text = esc.read_text()
    # the seed headline alone: 45 x 1.5 = 67.5, high
    start = text.index('  - title: "Putin warns that Russia will respond “militarily')
    end = text.index("level: high", start)
    esc.write_text(text[:end] + "level: critical" + text[end + len("level: high") :])
    case = text[:start].count("\n") + 1
    result = monitor("rules", "test", str(rules))
    assert result.exit_code == 1, result.output
    assert (
        f"FAIL {esc}:{case}: level high (score 67.5), expected critical (critical: 85)"
        in result.stdout
    )


def test_levels_come_from_the_pipeline_scoring(tmp_path: Path) -> None:
    (tmp_path / "esc.yaml").write_text(
        """\
rules:
  - id: invasion
    match: {any: [invasion, invade]}
    weight: 40
  - id: shelling
    match: {any: [shelling]}
    weight: 30
  - id: quorum
    match: {any: [quorum]}
    weight: 80
    min_outlets: 3
tests:
  - text: Troops invade                       # 40 x 1.5 title boost = 60: high
    expect: [invasion]
    level: high
  - body: Troops invade after shelling         # 40 + 30 x 0.3 = 49: medium
    expect: [invasion, shelling]
    level: medium
  - body: A rumour                             # nothing fires: none
    expect: []
    level: none
  - text: Quorum reached                       # waits for 3 outlets: one example is one outlet
    expect: [quorum]
    level: none
""",
        encoding="utf-8",
    )
    results = run_rule_tests(load_ruleset(tmp_path))
    assert [(r.ok, r.score, r.level) for r in results] == [
        (True, 60.0, Level.high),
        (True, 49.0, Level.medium),
        (True, 0.0, Level.none),
        (True, 0.0, Level.none),
    ], [r.reason for r in results]


def test_an_example_takes_the_language_of_the_rules_it_expects(tmp_path: Path) -> None:
    (tmp_path / "fr.yaml").write_text(
        """\
rules:
  - id: invasion-fr
    language: fr
    match: {any: [invasion]}
    weight: 40
tests:
  - text: Les troupes lancent une invasion
    expect: [invasion-fr]
  - text: Les troupes lancent une invasion
    language: en
    expect: []
""",
        encoding="utf-8",
    )
    results = run_rule_tests(load_ruleset(tmp_path))
    assert [r.ok for r in results] == [True, True], [r.reason for r in results]


def test_a_bad_level_name_is_a_located_error(tmp_path: Path) -> None:
    (tmp_path / "esc.yaml").write_text(
        "rules:\n  - id: x\n    match: {any: [x]}\n    weight: 40\n"
        "tests:\n  - text: x\n    expect: [x]\n    level: severe\n",
        encoding="utf-8",
    )
    result = monitor("rules", "test", str(tmp_path))
    assert result.exit_code == 1
    assert f"{tmp_path}/esc.yaml:8:12: tests[0].level: must be 'low', 'medium', 'high'" in (
        result.output
    )


def test_several_directories_all_run(tmp_path: Path) -> None:
    broken = copy_rules(tmp_path)
    esc = broken / "escalation.yaml"
    esc.write_text(esc.read_text().replace("level: critical", "level: low", 1))
    result = monitor("rules", "test", str(RULES), str(broken))
    assert result.exit_code == 1
    assert f"{RULES}: " in result.stdout and " passed, 0 failed" in result.stdout
    assert f"{broken}: " in result.stdout and " passed, 1 failed" in result.stdout
