"""Rule reloads: valid sets go into force, invalid ones are counted and change nothing."""

from __future__ import annotations

import asyncio
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.errors import RuleLoadError
from monitor.metrics import Metrics
from monitor.rules.reload import (
    RuleReloader,
    fingerprint,
    materialize,
    on_published,
    snapshot,
    watch_directory,
)
from monitor.rules.ruleset import RuleSet, load_ruleset
from tests.conftest import RULES

EXTRA = "rules:\n  - id: zeppelin\n    match:\n      any: [zeppelin]\n    weight: 50\n"


def reloader(start: RuleSet) -> tuple[RuleReloader, list[RuleSet], Metrics]:
    applied: list[RuleSet] = []
    metrics = Metrics()
    return RuleReloader(start, applied.append, metrics), applied, metrics


def count(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value("monitor_rule_reloads_total", {"outcome": outcome})
    return value or 0.0


def test_a_valid_new_set_is_applied_once(tmp_path: Path) -> None:
    rules = tmp_path / "r"
    shutil.copytree(RULES, rules)
    r, applied, metrics = reloader(load_ruleset(rules))
    assert not r.offer(lambda: load_ruleset(rules), "same")  # same version: nothing to do
    (rules / "extra.yaml").write_text(EXTRA)
    assert r.offer(lambda: load_ruleset(rules), "edit")
    assert [s.version for s in applied] == [r.current.version]
    assert "zeppelin" in r.current.by_id and count(metrics, "ok") == 1


def test_an_invalid_set_changes_nothing_and_is_counted(tmp_path: Path) -> None:
    rules = tmp_path / "r"
    shutil.copytree(RULES, rules)
    start = load_ruleset(rules)
    r, applied, metrics = reloader(start)
    (rules / "extra.yaml").write_text(EXTRA.replace("weight: 50", "weight: -1"))
    assert not r.offer(lambda: load_ruleset(rules), "edit")
    assert applied == [] and r.current is start and count(metrics, "error") == 1


def test_a_failing_swap_keeps_the_old_rules(tmp_path: Path) -> None:
    rules = tmp_path / "r"
    shutil.copytree(RULES, rules)
    start = load_ruleset(rules)
    metrics = Metrics()

    def explode(_: RuleSet) -> None:
        raise RuntimeError("half-way")

    r = RuleReloader(start, explode, metrics)
    (rules / "extra.yaml").write_text(EXTRA)
    assert not r.offer(lambda: load_ruleset(rules), "edit")
    assert r.current is start and count(metrics, "error") == 1


def test_fingerprint_sees_added_changed_and_removed_files(tmp_path: Path) -> None:
    rules = tmp_path / "r"
    shutil.copytree(RULES, rules)
    a = fingerprint(rules)
    (rules / "extra.yaml").write_text(EXTRA)
    b = fingerprint(rules)
    (rules / "extra.yaml").write_text(EXTRA + "\n")
    c = fingerprint(rules)
    (rules / "extra.yaml").unlink()
    assert len({a, b, c}) == 3 and fingerprint(rules) == a


async def test_the_watcher_reloads_after_the_files_settle(tmp_path: Path) -> None:
    rules = tmp_path / "r"
    shutil.copytree(RULES, rules)
    r, applied, _ = reloader(load_ruleset(rules))
    stop = asyncio.Event()
    task = asyncio.create_task(watch_directory(rules, r, stop, interval=0.05))
    await asyncio.sleep(0.1)
    (rules / "extra.yaml").write_text(EXTRA)
    for _ in range(100):
        if applied:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task
    assert len(applied) == 1 and "zeppelin" in applied[0].by_id


def test_a_published_set_loads_as_the_same_version(tmp_path: Path) -> None:
    published = snapshot(RULES, timedelta(seconds=5))
    assert published.version == load_ruleset(RULES).version
    again = load_ruleset(materialize(published, tmp_path))
    assert again.version == published.version
    r, _, _ = reloader(load_ruleset(RULES))
    found = on_published(r, tmp_path, published.model_dump_json().encode())
    assert found is not None and 0 < found[0] <= 5  # takes effect ahead, for every worker
    assert on_published(r, tmp_path, b"not json") is None
    assert on_published(r, tmp_path, None) is None


def test_a_published_file_name_cannot_escape_its_directory(tmp_path: Path) -> None:
    published = snapshot(RULES, timedelta(0)).model_copy(
        update={"files": {"../evil.yaml": "rules: []"}}
    )
    with pytest.raises(RuleLoadError):
        materialize(published, tmp_path)
