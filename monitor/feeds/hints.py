"""What a feed and its server say about how often it should be polled.

* RSS ``<ttl>`` (minutes) and the syndication module's ``<sy:updatePeriod>`` /
  ``<sy:updateFrequency>``: the publisher's "no need to look again before".
* RSS ``<skipHours>`` / ``<skipDays>`` (GMT): hours and days not to poll in.
* HTTP ``Cache-Control: max-age`` on a 200 or a 304.
* HTTP ``Retry-After`` (seconds or an HTTP date) on a 429 or a 503.

The poller takes each as a *lower bound* of the next poll, never past its schedule's ceiling: a
publisher cannot stop us polling a feed for good.

The feed hints are read from the raw bytes, not from feedparser's result: feedparser keeps only
the last ``<hour>`` of ``<skipHours>`` (as ``feed.hour``), and a scan of the channel's own
elements (before the first item, after the last) needs no second XML parse. It matches plain
ASCII element names, so it reads UTF-8 and the single-byte encodings, and nothing inside items.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

HOUR = 3600.0
DAY = 24 * HOUR
_PERIODS = {
    "hourly": HOUR,
    "daily": DAY,
    "weekly": 7 * DAY,
    "monthly": 30 * DAY,
    "yearly": 365 * DAY,
}
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_ITEM = re.compile(rb"<(?:[\w.-]+:)?(?:item|entry)[\s>/]", re.IGNORECASE)
_ITEM_END = re.compile(rb"</(?:[\w.-]+:)?(?:item|entry)\s*>", re.IGNORECASE)
_TTL = re.compile(rb"<ttl\s*>\s*(\d{1,9})\s*</ttl\s*>", re.IGNORECASE)
_PERIOD = re.compile(rb"<(?:[\w.-]+:)?updatePeriod\s*>\s*([A-Za-z]{1,16})\s*<", re.IGNORECASE)
_FREQUENCY = re.compile(rb"<(?:[\w.-]+:)?updateFrequency\s*>\s*(\d{1,9})\s*<", re.IGNORECASE)
_SKIP_HOURS = re.compile(rb"<skipHours\s*>(.{0,2000}?)</skipHours\s*>", re.IGNORECASE | re.DOTALL)
_SKIP_DAYS = re.compile(rb"<skipDays\s*>(.{0,2000}?)</skipDays\s*>", re.IGNORECASE | re.DOTALL)
_HOUR = re.compile(rb"<hour\s*>\s*(\d{1,2})\s*</hour\s*>", re.IGNORECASE)
_DAY = re.compile(rb"<day\s*>\s*([A-Za-z]{1,12})\s*</day\s*>", re.IGNORECASE)
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d{1,12})\"?", re.IGNORECASE)
_SCAN = 256 * 1024  # the channel's own elements sit in its first or last bytes


@dataclass(frozen=True)
class FeedHints:
    ttl: float = 0.0  # seconds (<ttl> is in minutes)
    update_period: float = 0.0  # seconds between updates, from sy:updatePeriod / updateFrequency
    skip_hours: frozenset[int] = field(default_factory=frozenset)  # 0-23, GMT
    skip_days: frozenset[int] = field(default_factory=frozenset)  # 0 = Monday, GMT

    @property
    def min_interval(self) -> float:
        """The publisher's lower bound between two polls, in seconds (0: none)."""
        return max(self.ttl, self.update_period)


def feed_hints(data: bytes) -> FeedHints:
    """The polling hints a feed document carries about itself (none for a non-RSS feed)."""
    first = _ITEM.search(data, 0, _SCAN)
    head = data[: first.start()] if first else data[:_SCAN]
    tail = b""
    if first:
        # after the last item: RSS 2.0 allows channel elements after the items
        start = max(first.end(), len(data) - _SCAN)
        ends = list(_ITEM_END.finditer(data, start))
        tail = data[ends[-1].end() :] if ends else b""
    ttl = update = 0.0
    hours: set[int] = set()
    days: set[int] = set()
    for part in (head, tail):
        if m := _TTL.search(part):
            ttl = max(ttl, int(m.group(1)) * 60.0)
        if m := _PERIOD.search(part):
            period = _PERIODS.get(m.group(1).decode("ascii").lower(), 0.0)
            f = _FREQUENCY.search(part)
            frequency = max(1, int(f.group(1))) if f else 1
            update = max(update, period / frequency)
        if m := _SKIP_HOURS.search(part):
            for h in _HOUR.findall(m.group(1)):
                if 0 <= int(h) <= 24:
                    hours.add(int(h) % 24)  # some feeds count 1-24
        if m := _SKIP_DAYS.search(part):
            for d in _DAY.findall(m.group(1)):
                name = d.decode("ascii").lower()
                if name in _DAYS:
                    days.add(_DAYS.index(name))
    return FeedHints(ttl, update, frozenset(hours), frozenset(days))


def next_allowed(when: float, skip_hours: frozenset[int], skip_days: frozenset[int]) -> float:
    """The first time at or after ``when`` outside the skipped hours and days (GMT). A feed
    that skips every hour or every day is ignored: it cannot mean "never"."""
    if len(skip_hours) >= 24 or len(skip_days) >= 7 or not (skip_hours or skip_days):
        return when
    at = datetime.fromtimestamp(when, UTC)
    for _ in range(24 * 8):
        if at.hour not in skip_hours and at.weekday() not in skip_days:
            return at.timestamp()
        at = at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return when  # unreachable: some hour of some day is allowed


def max_age(cache_control: str) -> float | None:
    """``Cache-Control: max-age`` in seconds; None when absent, or when the response may not
    be reused as it is (no-store, no-cache)."""
    lowered = cache_control.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return None
    m = _MAX_AGE.search(cache_control)
    return float(m.group(1)) if m else None


def retry_after(value: str, now: float) -> float | None:
    """Seconds to wait from ``now`` by a ``Retry-After`` header (a number of seconds or an HTTP
    date); None when it says nothing usable. A date in the past is 0."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT
        when = when.replace(tzinfo=UTC)
    seconds = when.timestamp() - now
    return max(0.0, seconds) if math.isfinite(seconds) else None
