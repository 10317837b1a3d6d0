"""Shared fixtures: the corpus beside the repository, the bundled rules and samples."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

from monitor.rules.ruleset import RuleSet, load_ruleset

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
RULES = REPO / "alert_rules"


def unavailable(reason: str) -> NoReturn:
    """A missing external part (tool, download, service, corpus) fails the test under CI, where
    it must be there, and skips it elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def corpus(*parts: str) -> Path:
    """A path in ../shared/corpus; a missing corpus fails under CI and skips elsewhere."""
    path = CORPUS.joinpath(*parts)
    if not path.exists():
        unavailable(f"corpus not found at {path} (expected ../shared/corpus beside the repository)")
    return path


@pytest.fixture(scope="session")
def ruleset() -> RuleSet:
    return load_ruleset(RULES)


@pytest.fixture(scope="session")
def seed() -> tuple[str, str]:
    """The seed article: (title, body)."""
    text = corpus("seed", "putin-military-technical-measures.txt").read_text(encoding="utf-8")
    title, _, body = text.strip().partition("\n")
    return title.strip(), body.strip()
