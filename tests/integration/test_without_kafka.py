"""`monitor run` needs no Kafka: installed without the kafka extra (as `make run` installs it),
the embedded runtime and the commands on its state file work. Simulated here by making the
Kafka packages unimportable in the child process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

WITHOUT_KAFKA = """
import sys
class NoKafka:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("aiokafka", "faust", "mode", "rocksdict"):
            raise ModuleNotFoundError(f"No module named {name!r} (the kafka extra is absent)")
sys.meta_path.insert(0, NoKafka())
from monitor.cli import main
sys.argv = ["monitor", *sys.argv[1:]]
main()
"""


def monitor_without_kafka(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_KAFKA, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_run_and_its_state_commands_need_no_kafka(tmp_path: Path) -> None:
    state = str(tmp_path / "state.db")
    jsonl = tmp_path / "alerts.jsonl"
    run = monitor_without_kafka("run", "--once", "--state", state, "--jsonl", str(jsonl))
    assert run.returncode == 0, run.stderr[-3000:]
    assert jsonl.read_text().strip(), "no alert from the samples"
    for command in (
        ("articles", "dead", "--state", state),
        ("alerts", "dead", "--state", state),
        ("silence", "list", "--state", state),
        ("feeds", "status", "--state", state),
        ("state", "check", "--state", state),
        ("rules", "check", "alert_rules"),
    ):
        done = monitor_without_kafka(*command)
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-3000:])
