"""A rule set: every file of a rules directory, validated together and compiled once.

Layout of a rules directory: ``scoring.yaml`` (levels and score factors), ``routes.yaml`` (where
alerts go), and any number of other ``*.yaml`` rule files, each with ``rules`` and ``tests``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from monitor.errors import Issue, RuleLoadError
from monitor.pipeline.tagging import Tagger, phrase_key
from monitor.rules.lint import lint
from monitor.rules.models import Route, RoutesFile, Rule, RuleFile, RuleTest, Scoring
from monitor.yamlfile import Located, _Loader, load_model, position

SCORING_FILE = "scoring.yaml"
ROUTES_FILE = "routes.yaml"


@dataclass(frozen=True)
class LocatedTest:
    path: str
    line: int
    case: RuleTest
    expect_at: tuple[tuple[int, int], ...] = ()  # where each expected id is written


T = TypeVar("T", bound=BaseModel)


@dataclass(frozen=True)
class Placed(Generic[T]):
    """An entry of a file's list (``rules``, ``routes``) and where it is written."""

    item: T
    path: str
    key: str
    index: int
    located: Located

    def at(self, *loc: str | int) -> tuple[int, int]:
        return position(self.located, (self.key, self.index, *loc))


@dataclass
class RuleSources:
    """A rules directory as read: every entry that is valid on its own (even in a file with
    errors elsewhere, so one run finds every problem), where each is written, the problems."""

    root: Path
    rules: list[Placed[Rule]] = field(default_factory=list)
    tests: list[LocatedTest] = field(default_factory=list)
    routes: list[Placed[Route]] = field(default_factory=list)
    scoring: Scoring = field(default_factory=Scoring)
    routes_path: Path | None = None
    # scoring.yaml and routes.yaml validated whole (or are absent): levels and routes are known
    complete: bool = True
    known_ids: set[str] = field(default_factory=set)  # rule ids written, valid rules or not
    issues: list[Issue] = field(default_factory=list)
    version: str = ""


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
    issues, ruleset = check_ruleset(directory, warnings=False)
    if ruleset is None:
        raise RuleLoadError(issues)
    return ruleset


def check_ruleset(
    directory: Path | str, warnings: bool = True
) -> tuple[list[Issue], RuleSet | None]:
    """Every problem of a rules directory in one pass (errors, and with ``warnings`` the lint
    warnings too), and the rule set when none of them is an error."""
    src = read_rules(directory)
    issues = src.issues + lint(src, warnings=warnings)
    if any(i.severity == "error" for i in issues):
        return issues, None
    rules = [p.item for p in src.rules]
    routes = [p.item for p in src.routes]
    return issues, RuleSet(rules, src.scoring, routes, src.tests, src.version)


def read_rules(directory: Path | str) -> RuleSources:
    """Read a rules directory: its schema errors, duplicate ids, phrases without words and test
    cases naming unknown rules; the other checks are in :mod:`monitor.rules.lint`."""
    root = Path(directory)
    src = RuleSources(root)
    issues = src.issues
    if not root.is_dir():
        hint = f"give the directory holding it: {root.parent}" if root.is_file() else ""
        issues.append(Issue(str(root), 1, 1, "(directory)", "rules directory not found", hint=hint))
        return src
    digest = hashlib.sha256()
    seen_ids: dict[str, str] = {}
    files = rule_files(root)
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        if path.name == SCORING_FILE:
            model_s, found, _ = load_model(path, Scoring)
            issues += found
            src.scoring = model_s or src.scoring
            src.complete = src.complete and model_s is not None
        elif path.name == ROUTES_FILE:
            model_r, found, located = load_model(path, RoutesFile)
            issues += found
            src.routes_path = path
            src.complete = src.complete and model_r is not None
            routes = _entries(path, "routes", Route, model_r.routes if model_r else None)
            src.routes = [Placed(r, str(path), "routes", i, located) for i, r in routes]
        else:
            model_f, found, located = load_model(path, RuleFile)
            issues += found
            raw_rules = [] if model_f else _raw_items(path, "rules")
            src.known_ids.update(
                r["id"] for r in raw_rules if isinstance(r, dict) and isinstance(r.get("id"), str)
            )
            for i, rule in _entries(path, "rules", Rule, model_f.rules if model_f else None):
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
                src.rules.append(Placed(rule, str(path), "rules", i, located))
            for i, case in _entries(path, "tests", RuleTest, model_f.tests if model_f else None):
                line, _ = position(located, ("tests", i))
                where = tuple(
                    position(located, ("tests", i, "expect", j)) for j in range(len(case.expect))
                )
                src.tests.append(LocatedTest(str(path), line, case, where))
    if not any(p.name not in {SCORING_FILE, ROUTES_FILE} for p in files):
        issues.append(Issue(str(root), 1, 1, "(directory)", "no rule files (*.yaml) found"))
    src.known_ids.update(seen_ids)
    for t in src.tests:
        for rid, (line, col) in zip(t.case.expect, t.expect_at, strict=True):
            if rid not in src.known_ids:
                issues.append(Issue(t.path, line, col, "expect", f"unknown rule id '{rid}'"))
    src.version = digest.hexdigest()[:12]
    return src


def _entries(
    path: Path, key: str, model: type[T], valid: Sequence[T] | None
) -> list[tuple[int, T]]:
    """The entries of a file's list with their index: all of them when the file validated, else
    those valid on their own (the file's errors are reported already)."""
    if valid is not None:
        return list(enumerate(valid))
    out = []
    for i, raw in enumerate(_raw_items(path, key)):
        try:
            out.append((i, model.model_validate(raw)))
        except ValidationError:
            continue
    return out


def _raw_items(path: Path, key: str) -> list[Any]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    # RecursionError: nesting too deep for PyYAML, reported by load_model (it crashed here).
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
        return []
    items = data.get(key) if isinstance(data, dict) else None
    return items if isinstance(items, list) else []


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
