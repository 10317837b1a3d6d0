"""Fixtures of the reliability scenarios, and their report.

Every scenario fills a :class:`Scenario` with its counts (articles published and decided,
alerts delivered, duplicates, lost) and notes (seeds, kill points, timings); the counts of the
whole session are printed at the end of the run (``pytest_terminal_summary``), so they show in
the CI log without ``-s``. With ``MONITOR_RELIABILITY_REPORT=path.json`` they are also written
there as JSON.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.support import Scenario

_REPORT = pytest.StashKey[list["Scenario"]]()
_OUTCOME = pytest.StashKey[str]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" or report.outcome != "passed":
        item.stash[_OUTCOME] = report.outcome
    return report


@pytest.fixture
def scenario(request: pytest.FixtureRequest) -> Iterator[Scenario]:
    s = Scenario(request.node.name.removeprefix("test_"))
    started = time.monotonic()
    yield s
    s.seconds = round(time.monotonic() - started, 1)
    s.outcome = request.node.stash.get(_OUTCOME, "?")
    request.config.stash.setdefault(_REPORT, []).append(s)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    scenarios = config.stash.get(_REPORT, [])
    if not scenarios:
        return
    tr = terminalreporter
    tr.section("reliability scenarios")
    header = (
        f"{'scenario':<52} {'published':>9} {'decided':>8} {'delivered':>9} "
        f"{'dupes':>5} {'lost':>4} {'seconds':>7}  outcome"
    )
    tr.write_line(header)
    for s in scenarios:
        tr.write_line(
            f"{s.name[:52]:<52} {s.published:>9} {s.decided:>8} {s.delivered:>9} "
            f"{s.duplicates:>5} {s.lost:>4} {s.seconds:>7.1f}  {s.outcome}"
        )
        for n in s.notes:
            tr.write_line(f"    {n}")
    total = sum(s.seconds for s in scenarios)
    tr.write_line(f"{len(scenarios)} scenarios in {total:.0f}s")
    out = os.environ.get("MONITOR_RELIABILITY_REPORT")
    if out:
        Path(out).write_text(json.dumps([asdict(s) for s in scenarios], indent=2) + "\n")
