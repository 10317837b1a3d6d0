"""Clean shutdown: SIGINT and SIGTERM set an event the runtime's loops watch."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from contextlib import contextmanager

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """While inside, SIGINT/SIGTERM set ``stop`` instead of killing the process, so the loops
    finish the article in hand, commit and close. Outside the main thread (tests, embedding)
    asyncio cannot install handlers; then the caller's own stop event is the only way out."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in _SIGNALS:
        try:
            loop.add_signal_handler(sig, stop.set)
        except (RuntimeError, ValueError):  # not the main thread
            continue
        installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
