"""A Kafka broker of the scenario's own, started and stopped with deploy/kafka/broker (the same
script, jars and configuration as the CI broker), on its own port and data directory.

Why not stop the shared broker: it holds every earlier test's topics (thousands of partitions:
a restart then takes a minute), and stopping it would break any test running beside this one.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

from tests.conftest import REPO, unavailable

SCRIPT = REPO / "deploy" / "kafka" / "broker"


def _free_pair() -> int:
    """A port p with p + 1 free too (the broker's controller listens on p + 1)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port >= 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two adjacent free ports")


class PrivateBroker:
    def __init__(self, root: Path) -> None:
        self.port = _free_pair()
        self.data = root / "kafka"
        self.env = {
            **os.environ,
            "MONITOR_KAFKA_DATA": str(self.data),
            "MONITOR_KAFKA_PORT": str(self.port),
        }
        self.log: list[str] = []

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self, command: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(SCRIPT), command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        self.log.append(f"$ broker {command} -> {done.returncode}\n{done.stdout}{done.stderr}")
        return done

    def start(self, first: bool = False) -> None:
        done = self._run("start")
        if first and done.returncode != 0:  # java or the jars missing: fail under CI, else skip
            unavailable(f"could not start a Kafka broker:\n{done.stderr}")
        assert done.returncode == 0, "\n".join(self.log)

    def stop(self) -> None:
        done = self._run("stop")
        assert done.returncode == 0, "\n".join(self.log)

    def remove(self) -> None:
        self._run("stop")
        shutil.rmtree(self.data, ignore_errors=True)
