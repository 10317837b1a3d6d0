"""`monitor rules check`: every problem of every file in one run of the real command line, each
at path:line:col; errors exit 1, warnings alone exit 0."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from monitor.cli import app
from monitor.errors import RuleLoadError
from monitor.rules.ruleset import load_ruleset
from tests.conftest import REPO, RULES

LOCATED = re.compile(r"^(?P<path>[^\s:]+):(?P<line>\d+):(?P<col>\d+): (?P<rest>.*)$")


def monitor(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def write(directory: Path, name: str, text: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text, encoding="utf-8")


def located(output: str) -> list[str]:
    return [line for line in output.splitlines() if LOCATED.match(line)]


def errors(output: str) -> list[str]:
    return [line for line in located(output) if "[warning]" not in line]


def warnings(output: str) -> list[str]:
    return [line for line in located(output) if "[warning]" in line]


# Five mistakes of five kinds in three files. The rule with an unknown key must not hide the
# other rules of its file, nor make the test case naming it an "unknown rule id"; the route with
# a bad level must not hide the route after it.
FIVE_MISTAKES = {
    "esc.yaml": """\
rules:
  - id: invasion
    match:
      any: [invasion, invade]
    weight: 40
  - id: shelling
    match:
      any: [shelling]
    weight: 30
    colour: red
tests:
  - text: Russian troops invade Ukraine
    expect: [invasion]
  - text: Shelling resumes in the east
    expect: [shelling]
""",
    "more.yaml": """\
rules:
  - id: invasion
    match:
      any: [incursion]
    weight: 35
  - id: strike
    match:
      any: [missile strike, "--"]
    weight: 40
tests:
  - text: Missile strike hits the capital
    expect: [strike]
""",
    "routes.yaml": """\
routes:
  - name: desk
    sink: console
    min_level: severe
  - name: pager
    sink: slak
    min_level: high
""",
}


def test_five_mistakes_in_three_files_come_back_in_one_run(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    for name, text in FIVE_MISTAKES.items():
        write(rules, name, text)
    env = {**os.environ, "COLUMNS": "60"}  # narrow: a reported line must never be wrapped
    run = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "rules", "check", str(rules)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    found = errors(run.stdout)
    assert found == [
        f"{rules}/esc.yaml:10:5: rules[1].colour: unknown key (hint: allowed: "
        + found[0].split("(hint: allowed: ", 1)[1],
        f"{rules}/more.yaml:2:9: rules[0].id: duplicate rule id 'invasion' "
        f"(first in {rules}/esc.yaml:2)",
        f"{rules}/more.yaml:8:29: rules[1].match.any[1]: phrase '--' has no words once normalised",
        f"{rules}/routes.yaml:4:16: routes[0].min_level: must be one of low, medium, high, critical",
        f"{rules}/routes.yaml:6:11: routes[1].sink: unknown sink 'slak' (hint: did you mean 'slack'?)",
    ], run.stdout
    assert "weight" in found[0]  # the hint lists the keys a rule accepts
    assert f"{rules}: 5 error(s)" in run.stdout
    # each location points at the offending text
    for line in found:
        m = LOCATED.match(line)
        assert m is not None
        text = (Path(m["path"])).read_text(encoding="utf-8").splitlines()[int(m["line"]) - 1]
        at = text[int(m["col"]) - 1 :]
        assert at.startswith(("colour", "invasion", '"--"', "severe", "slak")), (line, at)


def test_the_loader_refuses_what_check_reports_as_errors(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    for name, text in FIVE_MISTAKES.items():
        write(rules, name, text)
    with pytest.raises(RuleLoadError) as caught:
        load_ruleset(rules)
    assert len(caught.value.issues) == 5
    assert all(i.severity == "error" for i in caught.value.issues)


WARNINGS_ONLY = {
    "esc.yaml": """\
rules:
  - id: invasion
    match:
      any: [invasion]
      none: [seashells]
    weight: 40
  - id: incursion
    match:
      any: [incursion, invasion]
    weight: 30
  - id: rumour
    match:
      any: [rumour]
    weight: 5
  - id: retired
    match:
      any: [retired phrase]
    weight: 20
    enabled: false
tests:
  - text: Russian troops cross the border in an invasion
    expect: [invasion, incursion]
  - text: An old retired phrase
    expect: [retired]
""",
    "routes.yaml": """\
routes:
  - name: desk
    sink: console
    min_level: high
""",
}


def test_warnings_alone_exit_0_and_are_all_printed(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    for name, text in WARNINGS_ONLY.items():
        write(rules, name, text)
    result = monitor("rules", "check", str(rules))
    assert result.exit_code == 0, result.output
    assert errors(result.stdout) == []
    esc = f"{rules}/esc.yaml"
    got = warnings(result.stdout)
    expected = [
        f"{esc}:5:14: rules[0].match.none[0]: 'seashells' cannot cancel anything",
        f"{esc}:9:24: rules[1].match.any[1]: 'invasion' also fires rule 'invasion' ({esc}:4) "
        "with weight 40, this rule 30",
        f"{esc}:11:9: rules[2].id: no test case expects this rule",
        f"{esc}:14:13: rules[2].weight: no route can deliver this rule on its own: it scores at "
        "most 37.5 (weight 5 x title_boost 1.5 + corroboration 30), below high (60)",
        f"{esc}:24:14: expect[0]: rule 'retired' is disabled",
    ]
    assert len(got) == len(expected), result.stdout
    for line, start in zip(got, expected, strict=True):
        assert line.startswith(start), (line, start)
        assert line.split(" (hint: ")[0].endswith("[warning]"), line
    assert "(hint: raise weight to 20 or more, or lower route 'desk' min_level)" in got[3]
    assert "OK" in result.stdout and "5 warning(s)" in result.stdout


def test_a_rules_dir_without_routes_is_a_warning(tmp_path: Path) -> None:
    write(tmp_path, "esc.yaml", "rules:\n  - id: x\n    match: {any: [x]}\n    weight: 40\n"
          "tests:\n  - text: x\n    expect: [x]\n")  # fmt: skip
    result = monitor("rules", "check", str(tmp_path))
    assert result.exit_code == 0, result.output
    [warning] = warnings(result.stdout)
    assert warning.startswith(f"{tmp_path}:1:1: routes: no routes: no alert is ever delivered")


def test_several_directories_each_checked_and_any_error_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    for name, text in FIVE_MISTAKES.items():
        write(bad, name, text)
    result = monitor("rules", "check", str(RULES), str(bad))
    assert result.exit_code == 1
    assert f"{RULES}: " in result.stdout and "OK" in result.stdout
    assert len(errors(result.stdout)) == 5
    assert all(line.startswith(str(bad)) for line in errors(result.stdout))


def test_the_bundled_rules_pass_and_the_default_is_alert_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(REPO)
    result = monitor("rules", "check")
    assert result.exit_code == 0, result.output
    assert errors(result.stdout) == []
    assert "alert_rules: " in result.stdout and "OK" in result.stdout


def test_a_file_instead_of_a_directory_gets_a_hint(tmp_path: Path) -> None:
    write(tmp_path, "esc.yaml", "rules: []\n")
    result = monitor("rules", "check", str(tmp_path / "esc.yaml"))
    assert result.exit_code == 1
    assert f"rules directory not found (hint: give the directory holding it: {tmp_path})" in (
        result.stdout
    )
