"""A listening port already taken is a clear start-up error naming the setting (exit 2), not a
traceback: the metrics endpoint of `monitor run` and `monitor worker`, and the WebSub
callback listener."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.kafka_support import require_kafka


@pytest.fixture
def taken() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def monitor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args],
        cwd=REPO,
        env={**os.environ, "MONITOR_LOG_LEVEL": "error", **env},
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_run_with_its_metrics_port_taken(taken: int, tmp_path: Path) -> None:
    run = monitor(
        {"MONITOR_METRICS_PORT": str(taken), "MONITOR_STATE": str(tmp_path / "s.db")},
        "run",
        "--once",
    )
    assert run.returncode == 2
    assert (
        f"error: MONITOR_METRICS_HOST/MONITOR_METRICS_PORT: cannot listen on 127.0.0.1:{taken}"
        in run.stderr
    )
    assert "Traceback" not in run.stderr


def test_run_with_its_websub_port_taken(taken: int, tmp_path: Path) -> None:
    env = {
        "MONITOR_WEBSUB_CALLBACK_URL": "https://monitor.example/hooks",
        "MONITOR_WEBSUB_PORT": str(taken),
        "MONITOR_STATE": str(tmp_path / "s.db"),
    }
    run = monitor(env, "run")  # not --once: WebSub listens only in a long run
    assert run.returncode == 2
    assert (
        f"error: MONITOR_WEBSUB_HOST/MONITOR_WEBSUB_PORT: cannot listen on 127.0.0.1:{taken}"
        in run.stderr
    )
    assert "Traceback" not in run.stderr


def test_worker_with_its_metrics_port_taken(taken: int, tmp_path: Path) -> None:
    env = {
        "MONITOR_KAFKA_BOOTSTRAP": require_kafka(),
        "MONITOR_KAFKA_TOPIC_PREFIX": f"tports{taken}-",
        "MONITOR_METRICS_PORT": str(taken),
        "MONITOR_DATA_DIR": str(tmp_path / "w"),
    }
    run = monitor(env, "worker")
    assert run.returncode == 2
    assert (
        f"error: MONITOR_METRICS_HOST/MONITOR_METRICS_PORT: cannot listen on 127.0.0.1:{taken}"
        in run.stderr
    )
    assert "Traceback" not in run.stderr
