"""Shared fixtures: the corpus beside the repository, the bundled rules and samples."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

from monitor.rules.ruleset import RuleSet, load_ruleset

if TYPE_CHECKING:
    from tests.integration.kafka_support import Deployment

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
RULES = REPO / "alert_rules"


def unavailable(reason: str) -> NoReturn:
    """A missing external part (tool, download, service, corpus) fails the test under CI, where
    it must be there, and skips it elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released), never one handed out
    before in this session: two taken back to back could otherwise be the same."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


class HeldPort:
    """A port on 127.0.0.1 that refuses connections (bound, not listening) and that nothing
    else can take until :meth:`release`: for a server that comes up later, after a long
    outage (a port merely picked free could be taken meanwhile, by an outgoing connection)."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port = int(self._socket.getsockname()[1])

    def release(self) -> int:
        self._socket.close()
        return self.port


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


def monitor_cli(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path = REPO,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``monitor ARGS...`` as an operator runs it: a subprocess, this environment plus ``env``
    (a wide terminal, so tables do not wrap what a test looks for), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """One isolated deployment on the shared broker (its own topics and consumer group); its
    workers stopped and its topics deleted afterwards: a broker collecting every test's
    partitions slows down through the suite, and every later Kafka wait gets tighter."""
    from tests.integration.kafka_support import Deployment, delete_topics, require_kafka

    d = Deployment(tmp_path, require_kafka())
    yield d
    d.stop()
    try:
        delete_topics(d)
    except Exception as exc:  # a scenario stopping the broker may have taken it away
        print(f"could not delete the topics of {d.prefix}: {exc}")
