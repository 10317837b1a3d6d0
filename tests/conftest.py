"""Shared fixtures: the corpus beside the repository, the bundled rules and samples."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
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


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(
    condition: Callable[[], bool], within: float = 5.0, what: str = "the condition"
) -> float:
    """Seconds it took for ``condition`` to hold, checked every 50 ms while the event loop
    serves the test's own servers; AssertionError after ``within`` seconds."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > within:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


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
