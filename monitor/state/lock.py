"""One running process per state file.

Two ``monitor run`` (or ``monitor poll``) processes on one state file would each poll the same
feeds, decide the same stories and race each other to the ledger: the very repeats the ledger
exists to prevent. So the process that runs on a state file holds an exclusive lock on
``<state>.lock`` for as long as it runs; a second one is refused with the first one's pid. The
lock is the kernel's (``flock``): a process that dies, even by SIGKILL, lets go of it.

Short-lived commands that write the state file beside a running process by design
(``monitor silence add``, ``monitor alerts resend``) take no lock; ``monitor state rebuild``
checks it, since moving the file from under a running process would lose its work.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from monitor.errors import StateError


def lock_path(state: Path) -> Path:
    return state.with_name(state.name + ".lock")


@contextlib.contextmanager
def running_on(state: Path, what: str = "monitor run") -> Iterator[None]:
    """Hold the state file's lock while the block runs; StateError if another process has it."""
    if str(state) == ":memory:":
        yield
        return
    path = lock_path(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise StateError(
                f"{state}: in use by {holder}; one process runs on a state file at a time "
                "(give this one its own MONITOR_STATE)"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"`{what}` (pid {os.getpid()})\n")
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()
            fcntl.flock(f, fcntl.LOCK_UN)


def holder(state: Path) -> str | None:
    """Who runs on the state file now (from its lock), None when nobody does."""
    path = lock_path(state)
    if not path.exists():
        return None
    with path.open("r") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return f.read().strip() or "another process"
        fcntl.flock(f, fcntl.LOCK_UN)
    return None
