"""A rule set: every file of a rules directory, validated together and compiled once.

Layout of a rules directory: ``scoring.yaml`` (levels and score factors), ``routes.yaml`` (where
alerts go), and any number of other ``*.yaml`` rule files, each with ``rules`` and ``tests``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from monitor.errors import Issue, RuleLoadError
from monitor.pipeline.tagging import Tagger, phrase_key
from monitor.rules.models import Route, RoutesFile, Rule, RuleFile, RuleTest, Scoring
from monitor.yamlfile import Located, load_model, position

SCORING_FILE = "scoring.yaml"
ROUTES_FILE = "routes.yaml"


@dataclass(frozen=True)
class LocatedTest:
    path: str
    line: int
    case: RuleTest
    expect_at: tuple[tuple[int, int], ...] = ()  # where each expected id is written


@dataclass
class RuleSet:
    rules: list[Rule]
    scoring: Scoring
    routes: list[Route]
    tests: list[LocatedTest] = field(default_factory=list)
    version: str = ""
    tagger: Tagger = field(init=False)

    def __post_init__(self) -> None:
        self.tagger = Tagger(self.rules)
        self.by_id = {r.id: r for r in self.rules}


def rule_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in {".yaml", ".yml"} and p.is_file())


def load_ruleset(directory: Path | str) -> RuleSet:
    """Load and check a rules directory; raise :class:`RuleLoadError` listing every problem."""
    root = Path(directory)
    if not root.is_dir():
        raise RuleLoadError([Issue(str(root), 1, 1, "(directory)", "rules directory not found")])
    issues: list[Issue] = []
    rules: list[Rule] = []
    tests: list[LocatedTest] = []
    scoring = Scoring()
    routes: list[Route] = []
    digest = hashlib.sha256()
    seen_ids: dict[str, str] = {}
    files = rule_files(root)
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        if path.name == SCORING_FILE:
            model_s, found, _ = load_model(path, Scoring)
            issues += found
            scoring = model_s or scoring
        elif path.name == ROUTES_FILE:
            model_r, found, _ = load_model(path, RoutesFile)
            issues += found
            routes = model_r.routes if model_r else routes
        else:
            model_f, found, located = load_model(path, RuleFile)
            issues += found
            if model_f is None:
                continue
            for i, rule in enumerate(model_f.rules):
                line, col = position(located, ("rules", i, "id"))
                if rule.id in seen_ids:
                    issues.append(
                        Issue(
                            str(path),
                            line,
                            col,
                            f"rules[{i}].id",
                            f"duplicate rule id '{rule.id}' (first in {seen_ids[rule.id]})",
                        )
                    )
                seen_ids.setdefault(rule.id, f"{path}:{line}")
                issues += _empty_phrases(rule, i, path, located)
                rules.append(rule)
            for i, case in enumerate(model_f.tests):
                line, _ = position(located, ("tests", i))
                where = tuple(
                    position(located, ("tests", i, "expect", j)) for j in range(len(case.expect))
                )
                tests.append(LocatedTest(str(path), line, case, where))
    if not any(p.name not in {SCORING_FILE, ROUTES_FILE} for p in files):
        issues.append(Issue(str(root), 1, 1, "(directory)", "no rule files (*.yaml) found"))
    for t in tests:
        for rid, (line, col) in zip(t.case.expect, t.expect_at, strict=True):
            if rid not in seen_ids:
                issues.append(Issue(t.path, line, col, "expect", f"unknown rule id '{rid}'"))
    if issues:
        raise RuleLoadError(issues)
    return RuleSet(rules, scoring, routes, tests, digest.hexdigest()[:12])


def _empty_phrases(rule: Rule, index: int, path: Path, located: Located) -> list[Issue]:
    out: list[Issue] = []
    spec = rule.match
    groups: list[tuple[str, Sequence[str]]] = [
        ("any", spec.any),
        ("all", spec.all),
        ("none", spec.none),
    ]
    if spec.near:
        groups.append(("near.terms", spec.near.terms))
    for group, phrases in groups:
        for j, phrase in enumerate(phrases):
            if not phrase_key(phrase):
                loc: tuple[str | int, ...] = ("rules", index, "match", *group.split("."), j)
                line, col = position(located, loc)
                out.append(
                    Issue(
                        str(path),
                        line,
                        col,
                        f"rules[{index}].match.{group}[{j}]",
                        f"phrase {phrase!r} has no words once normalised",
                    )
                )
    return out
