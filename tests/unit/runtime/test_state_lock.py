"""One process runs on a state file at a time: a second `monitor run` is refused naming the
first, `monitor state rebuild` will not move the file from under it, and a process killed
with SIGKILL leaves no lock behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.errors import StateError
from monitor.state.lock import holder, running_on
from monitor.state.recovery import rebuild_state
from monitor.state.sqlite import Store
from tests.conftest import REPO

HOLD = """
import sys, time
from pathlib import Path
from monitor.state.lock import running_on
with running_on(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def hold(state: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(state)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_refused_naming_the_first_and_a_kill_frees_the_file(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state.db"
    Store(state).close()
    first = hold(state)
    try:
        assert holder(state) == f"`monitor run` (pid {first.pid})"
        refused = rf"in use by `monitor run` \(pid {first.pid}\)"
        with pytest.raises(StateError, match=refused), running_on(state):
            pass
        with pytest.raises(StateError, match="stop it first"):
            rebuild_state(state)
        assert state.exists()  # not moved
        env = {**os.environ, "MONITOR_STATE": str(state), "MONITOR_LOG_LEVEL": "error"}
        run = subprocess.run(
            [sys.executable, "-m", "monitor.cli", "run", "--once"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 2
        assert f"in use by `monitor run` (pid {first.pid})" in run.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    deadline = time.monotonic() + 5
    while holder(state) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert holder(state) is None
    with running_on(state):  # the kernel let go of a killed process's lock
        assert holder(state) == f"`monitor run` (pid {os.getpid()})"


def test_the_lock_is_released_when_the_run_ends(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    with running_on(state, "monitor poll"):
        pass
    with running_on(state):
        pass
    assert holder(state) is None
