"""When to poll a feed next: pure functions of its history, so they are tested without a clock.

The configured ``interval`` of a feed is where it starts (and what it keeps when its entries
carry no dates). From there the interval follows how often the feed publishes — the median gap
between its entries of the last week, the time since its newest one counted too — within
``[min_interval, max_interval]``: a wire that publishes every two minutes is polled every five,
an outlet that publishes twice a day every six hours, a feed silent for a week every six hours.
A configured interval outside those bounds widens them (the operator asked for it): a feed set
to 10 s may be polled every 10 s, and one set to a day may wait a day when it is quiet.

On top of that: the publisher's lower bounds (``<ttl>``, ``sy:updatePeriod``, ``Cache-Control:
max-age``, ``<skipHours>``), never past the ceiling; and on errors, exponential back-off from
the feed's interval, capped, with ``Retry-After`` as a lower bound — capped too, so that no
answer from a server stops a feed for good.
"""

from __future__ import annotations

import itertools
import random
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DAY = 86400.0


@dataclass(frozen=True)
class Schedule:
    min_interval: float = 300.0  # the most often a feed is polled by adaptation
    max_interval: float = 6 * 3600.0  # the least often a healthy feed is polled
    jitter: float = 0.1  # each delay is drawn from +-10% (within the bounds)
    max_backoff: float = 3600.0  # the longest wait after errors (or the interval if longer)
    max_retry_after: float = DAY  # the longest Retry-After honoured
    window: float = 7 * DAY  # entries older than this say nothing about the current rate
    keep_entries: int = 30  # entry dates remembered per feed

    def bounds(self, configured: float) -> tuple[float, float]:
        """The interval's floor and ceiling for a feed with this configured interval."""
        return min(self.min_interval, configured), max(self.max_interval, configured)


def publishing_gap(times: Sequence[float], now: float, window: float = 7 * DAY) -> float | None:
    """The median gap between a feed's entries of the last ``window``, the open gap since the
    newest counted as one more (so a feed with few recent entries slows down as it stays
    quiet). ``inf`` when it has dated entries but none in the window (a quiet feed: as slow as
    allowed); None when it has no dated entries at all (nothing to go by).

    The median, not the mean: a burst of entries at once (a CMS publishing a batch) or one long
    night does not swing it."""
    if not times:
        return None
    recent = sorted({t for t in times if now - window <= t <= now}, reverse=True)
    if not recent:
        return float("inf")
    gaps = [a - b for a, b in itertools.pairwise(recent)]
    gaps.append(now - recent[0])
    return float(statistics.median(gaps))


def adaptive_interval(
    configured: float, times: Sequence[float], now: float, schedule: Schedule
) -> float:
    """The interval a feed should be polled at, before jitter and the publisher's hints."""
    floor, ceiling = schedule.bounds(configured)
    gap = publishing_gap(times, now, schedule.window)
    if gap is None:
        return configured
    return min(max(gap, floor), ceiling)


def jittered(
    delay: float, floor: float, ceiling: float, spread: float, rng: random.Random
) -> float:
    """``delay`` +- ``spread`` (a fraction), kept within ``[floor, ceiling]``: feeds started
    together drift apart instead of hitting their servers in step."""
    low = max(floor, delay * (1 - spread))
    high = min(ceiling, delay * (1 + spread))
    if high <= low:
        return min(max(delay, floor), ceiling)
    return rng.uniform(low, high)


def backoff(errors: int, base: float, cap: float) -> float:
    """The wait after ``errors`` consecutive errors: ``base`` doubled each time, at most ``cap``
    (or ``base`` when that is longer): slower, never stopped."""
    doubled: float = base * 2.0 ** min(max(errors, 1) - 1, 30)
    return min(doubled, max(cap, base))


def remember(previous: Iterable[float], new: Iterable[float], keep: int) -> tuple[float, ...]:
    """The newest ``keep`` distinct entry dates of both, newest first."""
    return tuple(sorted(set(previous) | set(new), reverse=True)[:keep])
