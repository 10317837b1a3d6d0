"""Properties of the rule loader (monitor/rules/ruleset.py, monitor/yamlfile.py): whatever text
lands in a rules directory, loading it either gives a rule set or raises RuleLoadError whose
issues point inside the files (never a crash, a hang or a position off the end of a file)."""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from monitor.errors import RuleLoadError
from monitor.rules.models import RuleFile
from monitor.rules.ruleset import RuleSet, load_ruleset
from monitor.yamlfile import load_model
from tests.conftest import RULES
from tests.property.strategies import ANY_CHAR, HOSTILE_PIECES, MODEST

SCORING = (RULES / "scoring.yaml").read_text(encoding="utf-8")
ROUTES = (RULES / "routes.yaml").read_text(encoding="utf-8")
GOOD = "rules:\n  - id: invasion\n    match: {any: [invasion]}\n    weight: 35\n"
REAL_LINES = [
    line
    for name in ("escalation.yaml", "scoring.yaml", "routes.yaml")
    for line in (RULES / name).read_text(encoding="utf-8").splitlines()
][:400]  # enough of every shape (rules, tests, routes, scoring), fast to sample

KEYS = (
    "rules", "tests", "id", "description", "match", "any", "all", "none", "near", "terms",
    "within", "weight", "labels", "enabled", "language", "exact", "sources", "only", "except",
    "min_outlets", "spike", "window", "baseline", "factor", "min_count", "title", "body", "text",
    "expect", "level", "phrase", "case", "levels", "low", "medium", "high", "critical",
    "title_boost", "corroboration", "per_outlet", "max", "additional_rule_factor", "routes",
    "name", "sink", "min_level", "group_window", "repeat_interval", "resolve_after",
    "rate_limit", "count", "per", "quiet_hours", "start", "end", "timezone", "<<",
)  # fmt: skip
SYNTAX = (
    ": ", "- ", "  ", "    ", "\t", "\n", "\r\n", "\r", "{", "}", "[", "]", ",", "? ", "|", ">-",
    "&a ", "*a", "&b ", "*b", "<<: *a", "!!str ", "!!int ", "!!float ", "!!binary ", "!!timestamp ",
    "!!python/object:os.system ", "!custom ", "%YAML 1.1\n", "%TAG ! tag:x,2000:\n", "---\n",
    "...\n", "#", "'", '"', "\\", "\\x", "\\u12", "2021-02-30", "2021-13-01 25:61:61", "0x", "0o9",
    "1_000", ".inf", "-.nan", "1e999", "22:00", "1:2:3", "~", "null", "yes", "on", "@", "`",
    "\x00", "\ufeff", "\u2028", "\x85", "\x1b",
)  # fmt: skip

scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(KEYS),
    st.text(ANY_CHAR, max_size=20),
    st.sampled_from(HOSTILE_PIECES),
)
structure = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=5)), inner, max_size=5),
    ),
    max_leaves=25,
)


@st.composite
def dumped(draw: st.DrawFn) -> str:
    """A YAML document of rule-file keys and wild values, as a tool would write it."""
    data = draw(st.dictionaries(st.sampled_from(KEYS), structure, max_size=4))
    flow = draw(st.sampled_from((None, True, False)))
    return yaml.safe_dump(data, default_flow_style=flow, allow_unicode=draw(st.booleans()))


@st.composite
def spliced(draw: st.DrawFn) -> str:
    """Lines of the real rule files, with YAML syntax and noise spliced in."""
    pieces = draw(
        st.lists(
            st.one_of(
                st.sampled_from(REAL_LINES).map(lambda line: line + "\n"),
                st.sampled_from(SYNTAX),
                st.sampled_from(KEYS).map(lambda k: k + ": "),
                st.text(ANY_CHAR, max_size=10),
            ),
            max_size=30,
        )
    )
    return "".join(pieces)


yamlish = st.one_of(dumped(), spliced(), st.text(ANY_CHAR, max_size=200))
FILE_NAMES = ("extra.yaml", "scoring.yaml", "routes.yaml", "more.yml")

# PyYAML's line breaks: what its line numbers count.
_BREAKS = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def _check_located(issues: list[Any], root: Path) -> None:
    assert issues
    for issue in issues:
        path = Path(issue.path)
        assert path == root or path.parent == root, issue
        if path == root:
            assert (issue.line, issue.col) == (1, 1), issue
            continue
        lines = _BREAKS.split(path.read_bytes().decode("utf-8", "replace"))
        assert 1 <= issue.line <= len(lines), issue
        assert 1 <= issue.col <= len(lines[issue.line - 1]) + 1, issue
        assert issue.message, issue


def load(files: dict[str, str]) -> tuple[RuleSet | None, list[Any], Path, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, text in files.items():
            (root / name).write_bytes(text.encode("utf-8"))
        started = time.monotonic()
        try:
            ruleset = load_ruleset(root)
        except RuleLoadError as exc:
            elapsed = time.monotonic() - started
            _check_located(exc.issues, root)
            return None, exc.issues, root, elapsed
        return ruleset, [], root, time.monotonic() - started


@MODEST
@given(yamlish, st.sampled_from(FILE_NAMES), st.booleans())
@example("rules: 2021-02-30\n", "extra.yaml", False)  # a date that is no date: ValueError
@example("a: &x [*x]\n", "extra.yaml", False)  # an alias inside its own anchor: a cycle
@example("rules:\n- &x {id: a, match: {any: [*x]}, weight: 1}\n", "extra.yaml", True)
@example("levels: !!int x\n", "scoring.yaml", True)  # an explicit tag that cannot apply
@example("routes:\n- name: 2001-02-29\n  sink: !!float 1e\n", "routes.yaml", True)
@example("", "extra.yaml", False)
@example("!!timestamp", "extra.yaml", False)  # PyYAML: AttributeError
@example("? !!float\n", "extra.yaml", False)  # PyYAML: IndexError
@example("rules: !!bool x\n", "extra.yaml", True)  # PyYAML: KeyError
@example("[" * 500, "extra.yaml", True)  # PyYAML composes recursively: RecursionError
@example("- " * 1000 + "x\n", "routes.yaml", True)
def test_any_text_in_a_rules_dir_loads_or_is_located(text: str, name: str, good: bool) -> None:
    files = {"scoring.yaml": SCORING, "routes.yaml": ROUTES}
    if good:
        files["good.yaml"] = GOOD
    files[name] = text
    ruleset, issues, _, elapsed = load(files)
    assert ruleset is not None or issues
    assert elapsed < 10


@MODEST
@given(yamlish)
def test_load_model_never_crashes(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yaml"
        path.write_bytes(text.encode("utf-8"))
        model, issues, _ = load_model(path, RuleFile)
        assert (model is None) == bool(issues)
        if issues:
            _check_located(issues, Path(tmp))


def test_an_alias_bomb_is_read_in_linear_time() -> None:
    # Nine aliases of nine aliases of ...: 9**8 (43 million) nodes if every alias were walked
    # anew; each anchored node is located once.
    text = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)
    )
    started = time.monotonic()
    ruleset, issues, _, _ = load({"bomb.yaml": text, "good.yaml": GOOD})
    assert ruleset is None and issues
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("text", "line", "col"),
    [
        ("rules:\n  - id: a\n    weight: 2021-02-30\n", 3, 13),
        ("rules: &x [*x]\n", 1, 8),
    ],
)
def test_unreadable_values_and_cycles_are_issues_at_their_place(
    text: str, line: int, col: int
) -> None:
    _, issues, _, _ = load({"bad.yaml": text})
    assert any((i.line, i.col) == (line, col) for i in issues), [str(i) for i in issues]
