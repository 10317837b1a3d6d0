"""`monitor feeds status` after a real `monitor run --once` against a local server: the healthy
feed is ok, the failing one is failing with its error, the retired one retired, a feed added to
the list since is not polled yet; exit 1 while any is failing, 0 once all are well."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.conftest import monitor_cli
from tests.unit.feeds.helpers import rss
from tests.unit.feeds.served import Reply, ThreadedServer


def monitor(*args: str) -> subprocess.CompletedProcess[str]:
    return monitor_cli(*args, env={"MONITOR_LOG_LEVEL": "warning"})


def test_status_of_each_feed_from_the_state(tmp_path: Path) -> None:
    good = rss("<title>Quiet day</title><link>https://wire.example/q</link>")
    replies = {
        "/good": Reply(good, headers={"Content-Type": "application/rss+xml"}),
        "/broken": Reply(b"upstream down", status=500),
        "/gone": Reply(b"", status=410),
    }
    feeds = tmp_path / "feeds.yaml"
    state = tmp_path / "state.db"
    with ThreadedServer(replies) as server:
        feeds.write_text(
            "feeds:\n"
            + "".join(
                f"  - {{name: {n}, url: '{server.url('/' + n)}', interval: 10m}}\n"
                for n in ("good", "broken", "gone")
            )
        )
        ran = monitor("run", "--once", "--feeds", str(feeds), "--state", str(state))
        assert ran.returncode == 0, ran.stderr
    feeds.write_text(feeds.read_text() + "  - {name: added, url: 'https://new.example/rss'}\n")
    started = time.time()

    status = monitor("feeds", "status", "--feeds", str(feeds), "--state", str(state), "--json")
    assert status.returncode == 1, status.stderr  # a feed failing
    rows: dict[str, dict[str, Any]] = {r["name"]: r for r in json.loads(status.stdout)}
    assert {n: r["status"] for n, r in rows.items()} == {
        "good": "ok",
        "broken": "failing",
        "gone": "retired",
        "added": "not polled yet",
    }
    assert rows["good"]["last_success"] <= started and rows["good"]["entries"] == 1
    assert rows["good"]["next_poll"] > started  # scheduled, not due
    assert rows["broken"]["consecutive_errors"] == 1 and rows["broken"]["last_success"] is None
    assert "HTTP 500" in rows["broken"]["last_error"]
    assert rows["gone"]["next_poll"] is None

    table = monitor("feeds", "status", "--feeds", str(feeds), "--state", str(state), "--failing")
    assert table.returncode == 1
    assert "broken" in table.stdout and "good " not in table.stdout
    assert "broken: HTTP 500" in table.stdout  # the error in full, under the table
    assert "4 feed(s): 1 ok, 1 failing, 1 retired, 1 not polled yet" in table.stdout

    # the list without the failing ones: all well, exit 0
    feeds.write_text("feeds:\n  - {name: good, url: '" + rows["good"]["url"] + "'}\n")
    healthy = monitor("feeds", "status", "--feeds", str(feeds), "--state", str(state))
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "1 feed(s): 1 ok" in healthy.stdout
