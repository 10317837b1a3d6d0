"""The checks beyond the schema (monitor.rules.lint), through check_ruleset / load_ruleset."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import RuleLoadError
from monitor.rules.ruleset import check_ruleset, load_ruleset
from tests.conftest import RULES

ROUTES = "routes:\n  - {name: desk, sink: console, min_level: medium}\n"


def rules_dir(tmp_path: Path, rules: str, routes: str | None = ROUTES, tests: str = "") -> Path:
    (tmp_path / "esc.yaml").write_text(f"rules:\n{rules}{tests}", encoding="utf-8")
    if routes is not None:
        (tmp_path / "routes.yaml").write_text(routes, encoding="utf-8")
    return tmp_path


def found(directory: Path, severity: str | None = None) -> list[str]:
    issues, _ = check_ruleset(directory)
    return [str(i) for i in issues if severity is None or i.severity == severity]


def rule(rid: str, any_: str, weight: float, extra: str = "") -> str:
    return f"  - id: {rid}\n    match:\n      any: {any_}\n{extra}    weight: {weight}\n"


def cases(*ids: str) -> str:
    return "tests:\n" + "".join(f"  - text: example\n    expect: [{i}]\n" for i in ids)


def test_the_bundled_rules_have_no_errors() -> None:
    issues, ruleset = check_ruleset(RULES)
    assert ruleset is not None
    assert [str(i) for i in issues if i.severity == "error"] == []


def test_unknown_sink_and_duplicate_route_names_are_refused_by_the_loader(tmp_path: Path) -> None:
    routes = (
        "routes:\n"
        "  - {name: desk, sink: console}\n"
        "  - {name: desk, sink: jsonl}\n"
        "  - {name: mail, sink: e-mail}\n"
    )
    directory = rules_dir(tmp_path, rule("x", "[x]", 40), routes, cases("x"))
    with pytest.raises(RuleLoadError) as caught:
        load_ruleset(directory)
    got = [str(i) for i in caught.value.issues]
    assert got == [
        f"{tmp_path}/routes.yaml:3:12: routes[1].name: duplicate route name 'desk' (first at "
        "line 2) (hint: each route needs its own name: alerts are sent and counted per route "
        "name)",
        f"{tmp_path}/routes.yaml:4:24: routes[2].sink: unknown sink 'e-mail' (hint: did you "
        "mean 'email'?)",
    ]


def test_an_unknown_sink_far_from_any_lists_the_known_ones(tmp_path: Path) -> None:
    routes = "routes:\n  - {name: desk, sink: carrier-pigeon}\n"
    directory = rules_dir(tmp_path, rule("x", "[x]", 40), routes, cases("x"))
    [issue] = found(directory)
    assert "unknown sink 'carrier-pigeon' (hint: known: console, email, jsonl" in issue


def test_unreachable_counts_the_spike_bonus_and_the_lowest_route(tmp_path: Path) -> None:
    routes = (
        "routes:\n"
        "  - {name: pager, sink: console, min_level: critical}\n"
        "  - {name: desk, sink: console, min_level: high}\n"
    )
    rules = rule("weak", "[weak]", 10) + rule(
        "surging", "[surging]", 10, "    spike: {bonus: 20}\n"
    )
    directory = rules_dir(tmp_path, rules, routes, cases("weak", "surging"))
    # weak: 10 x 1.5 + 30 = 45 < 60 (high, the lowest route); surging: 45 + 20 = 65
    [issue] = found(directory, "warning")
    assert issue.startswith(f"{tmp_path}/esc.yaml:5:13: rules[0].weight: no route can deliver")
    assert "below high (60)" in issue and "lower route 'desk' min_level" in issue


def test_no_delivery_warnings_when_routes_or_scoring_did_not_load(tmp_path: Path) -> None:
    routes = "routes:\n  - {name: desk, sink: console, min_level: high, colour: red}\n"
    directory = rules_dir(tmp_path, rule("weak", "[weak]", 1), routes, cases("weak"))
    assert found(directory, "warning") == []
    (tmp_path / "routes.yaml").write_text(ROUTES)
    (tmp_path / "scoring.yaml").write_text("title_boost: lots\n")
    assert found(directory, "warning") == []


def test_a_shared_phrase_is_a_warning_only_when_nothing_tells_the_rules_apart(
    tmp_path: Path,
) -> None:
    rules = (
        rule("a", "[shelling]", 40)
        + rule("b", "[shelled]", 30)  # the same stem: shell
        + rule("c", "[shelling]", 40)  # the same weight as a
        + rule("d", "[shelling]", 20, "      near: {terms: [border]}\n")  # context
        + rule("e", "[{phrase: shelling, exact: true}]", 10)  # another phrase: exact
    )
    directory = rules_dir(tmp_path, rules, tests=cases(*"abcde"))
    [issue] = found(directory, "warning")
    assert issue.startswith(
        f"{tmp_path}/esc.yaml:8:13: rules[1].match.any[0]: 'shelled' also fires rule 'a' "
        f"({tmp_path}/esc.yaml:4) with weight 40, this rule 30"
    )


def test_a_schema_error_hides_neither_other_rules_nor_tests(tmp_path: Path) -> None:
    rules = rule("broken", "[x]", 40, "    colour: red\n") + rule("empty", '["?!"]', 40)
    directory = rules_dir(tmp_path, rules, tests=cases("broken", "empty", "missing"))
    got = found(directory, "error")
    assert len(got) == 3, got
    assert "rules[0].colour: unknown key" in got[0]
    assert "rules[1].match.any[0]: phrase '?!' has no words once normalised" in got[1]
    assert "expect: unknown rule id 'missing'" in got[2]  # 'broken' is known, if invalid
