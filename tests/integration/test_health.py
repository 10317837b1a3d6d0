"""/healthz and /readyz beside /metrics, in the embedded runtime, the poller and the worker."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp

from monitor.feeds.sources import load_feeds, sample_feeds_path
from monitor.rules.ruleset import RuleSet
from monitor.runtime.embedded import EmbeddedRuntime
from monitor.settings import Settings
from monitor.sinks.testing import ListSink
from tests.conftest import free_port
from tests.integration.kafka_support import REPO, Deployment, wait_for


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


async def test_embedded_health_and_readiness(tmp_path: Path, ruleset: RuleSet) -> None:
    runtime = EmbeddedRuntime(
        Settings(state=tmp_path / "s.db", metrics_port=0),
        ruleset,
        load_feeds(sample_feeds_path()),
        None,
        {"archive": ListSink()},
    )
    # not ready before the first polling round; ready after it; alive throughout
    assert runtime.health.report() == (
        False,
        {"rules": "ok", "feeds": "a polling round: not yet"},
    )
    run = asyncio.create_task(runtime.run())
    try:
        for _ in range(200):
            if runtime.metrics_address and runtime.pipeline.counts.articles:
                break
            await asyncio.sleep(0.05)
        assert runtime.metrics_address
        host, port = runtime.metrics_address
        assert host == "127.0.0.1"  # loopback unless MONITOR_METRICS_HOST says otherwise
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://{host}:{port}/healthz") as r:
                assert r.status == 200
            async with s.get(f"http://{host}:{port}/readyz") as r:
                body = await r.json()
                assert r.status == 200, body
                assert body == {"ready": True, "checks": {"rules": "ok", "feeds": "ok"}}
            async with s.get(f"http://{host}:{port}/metrics") as r:
                assert "monitor_articles_ingested_total" in await r.text()
    finally:
        runtime._stop.set()
        await asyncio.wait_for(run, 30)


def test_poller_and_worker_serve_health_and_readiness(deployment: Deployment) -> None:
    d = deployment
    worker_port, poller_port = free_port(), free_port()
    d.extra_env["MONITOR_METRICS_PORT"] = str(worker_port)
    d.start_worker()
    ready_url = f"http://127.0.0.1:{worker_port}/readyz"
    wait_for(lambda: get(ready_url)[0] == 200, 90, "the worker to be ready", d)
    checks = json.loads(get(ready_url)[1])["checks"]
    assert checks == {"rules": "ok", "kafka": "ok"}
    assert get(f"http://127.0.0.1:{worker_port}/healthz")[0] == 200
    lag_seen = lambda: "monitor_consumer_lag{" in get(f"http://127.0.0.1:{worker_port}/metrics")[1]  # noqa: E731
    wait_for(lag_seen, 30, "consumer lag to be reported", d)

    # a poller that keeps polling (no --once) answers too, and is ready after its first round
    env = {**d.env, "MONITOR_METRICS_PORT": str(poller_port)}
    poller = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "poll", "--state", str(d.root / "p.db")],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{poller_port}/readyz"
        deadline = time.monotonic() + 60
        while get(url)[0] != 200:
            assert poller.poll() is None, "the poller exited"
            assert time.monotonic() < deadline, f"poller never ready: {get(url)}"
            time.sleep(0.2)
        assert json.loads(get(url)[1])["checks"] == {"feeds": "ok", "kafka": "ok"}
    finally:
        poller.terminate()
        poller.wait(timeout=30)
