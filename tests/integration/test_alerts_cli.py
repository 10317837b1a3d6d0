"""`monitor alerts dead` and `monitor alerts resend`, as an operator runs them (subprocesses).

Embedded: `monitor run --once` over the bundled samples with its only route on Slack, the
local Slack stand-in answering 500 to everything, so the alerts end up dead in the state
file; once the stand-in is back, `alerts resend --all` delivers each exactly once.

Kafka: a dead alert on news.alerts.dead is listed, resent onto news.alerts (where a worker
delivers it) and cleared from the dead topic.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from monitor.models import Alert, DeadAlert, Delivery, Level
from monitor.runtime.delivery import ledger_key
from monitor.state.sqlite import Store
from tests.conftest import REPO, RULES
from tests.integration.kafka_support import Deployment, produce, read_topic, wait_for
from tests.unit.sinks.slack_server import SlackServer


async def monitor(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess, awaited, so a server in this event loop can answer it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor.cli",
        *args,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 180)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return subprocess.CompletedProcess(list(args), proc.returncode, out.decode(), err.decode())


def slack_only_rules(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    (rules / "routes.yaml").write_text(
        "routes:\n  - name: desk-slack\n    sink: slack\n    min_level: high\n"
    )
    return rules


def slack_env(slack: SlackServer, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    return {
        **env,
        "MONITOR_RULES": str(slack_only_rules(tmp_path)),
        "MONITOR_STATE": str(tmp_path / "state.db"),
        "MONITOR_SLACK_BOT_TOKEN": slack.token,
        "MONITOR_SLACK_CHANNEL": "#desk",
        "MONITOR_SLACK_API_URL": slack.api_base_url,
        "MONITOR_DELIVERY_ATTEMPTS": "1",  # no retry waits: a 500 sets the alert aside at once
        "MONITOR_LOG_FORMAT": "json",
        "COLUMNS": "200",
    }


async def test_dead_alerts_are_listed_and_resent_exactly_once(tmp_path: Path) -> None:
    async with SlackServer() as slack:
        slack.script("api", 500, "internal_error", times=1_000_000)  # down until we say so
        env = slack_env(slack, tmp_path)

        run = await monitor("run", "--once", env=env)
        assert run.returncode == 0, run.stderr
        assert slack.api, "the run sent nothing to Slack"
        tried = len(slack.api)

        listed = await monitor("alerts", "dead", "--json", env=env)
        assert listed.returncode == 0, listed.stderr
        dead = json.loads(listed.stdout)
        assert len(dead) == tried  # one attempt each (MONITOR_DELIVERY_ATTEMPTS=1), all kept
        assert {d["alert"]["route"] for d in dead} == {"desk-slack"}
        assert all("500" in d["delivery"]["error"] for d in dead), dead
        seed = [d for d in dead if "militarily and technically" in d["alert"]["title"]]
        assert [d["alert"]["kind"] for d in seed] == ["opened", "escalated"]

        table = await monitor("alerts", "dead", env=env)
        assert table.returncode == 0, table.stderr
        for d in dead:
            assert d["alert"]["id"] in table.stdout
        assert "desk-slack" in table.stdout and "500" in table.stdout

        # Still down: a resend of one alert fails, and it stays dead with the new error.
        first = dead[0]["alert"]["id"]
        failed = await monitor("alerts", "resend", first, env=env)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "FAILED" in failed.stdout and first in failed.stdout
        still = json.loads((await monitor("alerts", "dead", "--json", env=env)).stdout)
        assert {d["key"] for d in still} == {d["key"] for d in dead}

        slack._scripts["api"].clear()  # Slack is back
        before = len(slack.api)
        resend = await monitor("alerts", "resend", "--all", env=env)
        assert resend.returncode == 0, resend.stdout + resend.stderr
        assert f"{len(dead)} resent, 0 failed" in resend.stdout
        landed = slack.api[before:]
        assert len(landed) == len(dead)  # each dead alert once, nothing else
        texts = [str(s.body.get("text", "")) for s in landed]
        assert len(set(texts)) == len(texts), texts  # no alert twice
        # the seed story's two alerts: the opening starts a thread, the escalation replies in it
        seed_msgs = [s.body for s in landed if "militarily and technically" in str(s.body)]
        assert len(seed_msgs) == 2
        assert "thread_ts" not in seed_msgs[0] and seed_msgs[1].get("thread_ts")

        store = Store(tmp_path / "state.db")
        try:
            assert len(store.table("dead_alerts")) == 0
            ledger = store.table("ledger")
            assert all(d["key"] in ledger for d in dead)
        finally:
            store.close()

        again = await monitor("alerts", "resend", "--all", env=env)
        assert again.returncode == 0, again.stderr
        assert "nothing to resend" in again.stdout
        assert len(slack.api) == before + len(dead)
        empty = await monitor("alerts", "dead", env=env)
        assert empty.returncode == 0 and "no dead alerts" in empty.stdout


async def test_resend_names_alerts_by_id_or_key_and_reports_unknown_ones(tmp_path: Path) -> None:
    async with SlackServer() as slack:
        slack.script("api", 500, "internal_error", times=1_000_000)
        env = slack_env(slack, tmp_path)
        assert (await monitor("run", "--once", env=env)).returncode == 0
        dead = json.loads((await monitor("alerts", "dead", "--json", env=env)).stdout)
        assert len(dead) >= 2
        slack._scripts["api"].clear()

        unknown = await monitor("alerts", "resend", "nosuchalert", env=env)
        assert unknown.returncode == 1
        assert "no dead alert 'nosuchalert'" in unknown.stderr
        both = await monitor("alerts", "resend", dead[0]["alert"]["id"], "--all", env=env)
        assert both.returncode == 2 and "--all" in both.stderr
        neither = await monitor("alerts", "resend", env=env)
        assert neither.returncode == 2

        by_key = await monitor("alerts", "resend", dead[0]["key"], env=env)
        assert by_key.returncode == 0, by_key.stdout + by_key.stderr
        assert "sent" in by_key.stdout
        left = json.loads((await monitor("alerts", "dead", "--json", env=env)).stdout)
        assert [d["key"] for d in left] == [d["key"] for d in dead[1:]]


# --- Kafka ---------------------------------------------------------------------------------------


def dead_alert(title: str, route: str = "archive") -> DeadAlert:
    now = datetime.now(UTC)
    alert = Alert(
        id=f"a{os.urandom(8).hex()}",
        story_id=f"s{os.urandom(6).hex()}",
        route=route,
        sink="jsonl",
        kind="opened",
        level=Level.high,
        score=80.0,
        title=title,
        url="https://example.org/story",
        created_at=now,
    )
    delivery = Delivery(
        alert_id=alert.id,
        route=alert.route,
        sink="jsonl",
        outcome="error",
        error="SinkError: disk full",
        at=now,
    )
    return DeadAlert(alert=alert, delivery=delivery)


def test_kafka_dead_alert_is_listed_resent_to_the_workers_and_cleared(
    deployment: Deployment,
) -> None:
    d = deployment
    env = {**d.env, "COLUMNS": "200"}
    kept = dead_alert("Dam [bold]breach[/bold] upstream of the capital")
    other = dead_alert("A second undelivered story")
    # a route no worker has: it fails again at once, as a refused login would
    again = dead_alert("Fails again at once", route="retired-route")
    key = ledger_key(kept.alert)
    produce(
        d,
        "news.alerts.dead",
        [
            (key.encode(), kept.model_dump_json().encode()),
            (ledger_key(other.alert).encode(), other.model_dump_json().encode()),
            (ledger_key(again.alert).encode(), again.model_dump_json().encode()),
        ],
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "monitor.cli", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    listed = cli("alerts", "dead", "--json")
    assert listed.returncode == 0, listed.stderr
    everything = {key, ledger_key(other.alert), ledger_key(again.alert)}
    assert {e["key"] for e in json.loads(listed.stdout)} == everything
    table = cli("alerts", "dead")
    assert table.returncode == 0, table.stderr
    assert "[bold]breach[/bold]" in table.stdout  # an untrusted title, shown as written
    assert "disk full" in table.stdout

    d.start_worker()
    resend = cli("alerts", "resend", kept.alert.id)
    assert resend.returncode == 0, resend.stdout + resend.stderr
    assert "queued" in resend.stdout

    # back on news.alerts, keyed by story
    alerts = [(k, v) for k, v in read_topic(d, "news.alerts") if k == kept.alert.story_id.encode()]
    assert [Alert.model_validate_json(v).id for _, v in alerts] == [kept.alert.id]

    # the worker delivers it, once, and then clears its dead entry with a null value
    wait_for(
        lambda: any(a.get("alert_id") == kept.alert.id for a in d.alerts()),
        90,
        "the resent alert in the worker's jsonl file",
        d,
    )
    assert Counter(a.get("alert_id") for a in d.alerts())[kept.alert.id] == 1

    def dead_values(k: str) -> list[bytes | None]:
        return [v for rk, v in read_topic(d, "news.alerts.dead") if rk == k.encode()]

    wait_for(lambda: dead_values(key)[-1] is None, 30, "the dead entry cleared", d)
    left = json.loads(cli("alerts", "dead", "--json").stdout)
    assert {e["key"] for e in left} == {ledger_key(other.alert), ledger_key(again.alert)}

    # resent and failed again at once: kept anew with the new error, never erased
    again_key = ledger_key(again.alert)
    assert cli("alerts", "resend", again.alert.id).returncode == 0
    wait_for(lambda: len(dead_values(again_key)) == 2, 60, "the fresh dead entry", d)
    time.sleep(2)  # nothing clears it afterwards
    [_, fresh] = dead_values(again_key)
    assert fresh is not None
    assert "not active" in DeadAlert.model_validate_json(fresh).delivery.error
    left = {e["key"] for e in json.loads(cli("alerts", "dead", "--json").stdout)}
    assert left == {ledger_key(other.alert), again_key}
