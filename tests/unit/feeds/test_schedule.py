"""The polling schedule as pure functions: the interval from entry dates, its bounds, jitter,
back-off; and the publisher's hints: Retry-After, Cache-Control, <ttl>, sy:updatePeriod,
<skipHours>/<skipDays>."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import formatdate

import pytest

from monitor.feeds.hints import FeedHints, feed_hints, max_age, next_allowed, retry_after
from monitor.feeds.schedule import (
    Schedule,
    adaptive_interval,
    backoff,
    jittered,
    publishing_gap,
    remember,
)

NOW = 1_700_000_000.0
MIN, HOUR, DAY = 60.0, 3600.0, 86400.0
S = Schedule()  # 5 min .. 6 h


def every(gap: float, n: int, newest: float = 0.0) -> list[float]:
    """n entry dates ``gap`` apart, the newest ``newest`` seconds ago."""
    return [NOW - newest - i * gap for i in range(n)]


# --- the publishing rate ---------------------------------------------------------------------


def test_the_gap_is_the_median_between_recent_entries() -> None:
    assert publishing_gap(every(20 * MIN, 10, newest=20 * MIN), NOW) == 20 * MIN
    # one long pause among regular entries does not move the median
    times = [*every(10 * MIN, 8, newest=5 * MIN), NOW - 3 * DAY]
    assert publishing_gap(times, NOW) == 10 * MIN


def test_the_open_gap_since_the_newest_entry_counts() -> None:
    # two entries a minute apart, both two hours ago: the feed is quieter than that minute says
    assert publishing_gap([NOW - 2 * HOUR, NOW - 2 * HOUR - MIN], NOW) == pytest.approx(
        (2 * HOUR + MIN) / 2
    )


def test_no_dates_say_nothing_and_old_dates_say_quiet() -> None:
    assert publishing_gap([], NOW) is None
    assert publishing_gap(every(HOUR, 5, newest=30 * DAY), NOW) == float("inf")


def test_duplicate_dates_count_once() -> None:
    assert publishing_gap([NOW - HOUR] * 5 + [NOW - 2 * HOUR] * 5, NOW) == HOUR


def test_future_dates_are_ignored() -> None:
    assert publishing_gap([NOW + HOUR, NOW - HOUR, NOW - 2 * HOUR], NOW) == HOUR


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        (every(2 * MIN, 20, newest=MIN), 5 * MIN),  # a busy wire: the floor
        (every(20 * MIN, 20, newest=10 * MIN), 20 * MIN),  # in between: its own pace
        (every(12 * HOUR, 10, newest=HOUR), 6 * HOUR),  # twice a day: the ceiling
        (every(HOUR, 10, newest=60 * DAY), 6 * HOUR),  # dead for two months: the ceiling
        ([], 15 * MIN),  # undated entries: the configured interval
    ],
    ids=["busy", "steady", "slow", "dead", "undated"],
)
def test_the_interval_follows_the_publishing_rate_within_bounds(
    times: list[float], expected: float
) -> None:
    assert adaptive_interval(15 * MIN, times, NOW, S) == expected


def test_a_configured_interval_outside_the_bounds_widens_them() -> None:
    busy = every(MIN, 20, newest=1)
    assert S.bounds(10) == (10, 6 * HOUR)
    assert adaptive_interval(10, busy, NOW, S) == MIN  # the operator asked for 10 s: allowed
    assert adaptive_interval(10, [], NOW, S) == 10
    quiet = every(HOUR, 5, newest=30 * DAY)
    assert S.bounds(DAY) == (5 * MIN, DAY)
    assert adaptive_interval(DAY, quiet, NOW, S) == DAY
    assert adaptive_interval(DAY, busy, NOW, S) == 5 * MIN


def test_the_window_decides_what_is_recent() -> None:
    times = every(HOUR, 5, newest=2 * DAY)  # hourly, two days ago
    assert adaptive_interval(15 * MIN, times, NOW, Schedule(window=DAY)) == 6 * HOUR
    assert adaptive_interval(15 * MIN, times, NOW, Schedule(window=7 * DAY)) == HOUR
    recent = every(30 * MIN, 5, newest=10 * MIN)
    assert adaptive_interval(15 * MIN, recent, NOW, Schedule(window=DAY)) == 30 * MIN


def test_remember_keeps_the_newest_distinct_dates() -> None:
    assert remember([5.0, 3.0, 1.0], [4.0, 3.0, 2.0], keep=4) == (5.0, 4.0, 3.0, 2.0)
    assert remember([], [], keep=4) == ()


# --- jitter and back-off ---------------------------------------------------------------------


def test_jitter_spreads_within_ten_percent() -> None:
    rng = random.Random(7)
    draws = [jittered(1000, 300, 21600, 0.1, rng) for _ in range(2000)]
    assert 900 <= min(draws) < 910 and 1090 < max(draws) <= 1100
    assert len({round(d) for d in draws}) > 150  # spread out, not a few values


def test_jitter_never_leaves_the_bounds() -> None:
    rng = random.Random(7)
    at_floor = [jittered(300, 300, 21600, 0.1, rng) for _ in range(500)]
    assert all(300 <= d <= 330 for d in at_floor)
    at_ceiling = [jittered(21600, 300, 21600, 0.1, rng) for _ in range(500)]
    assert all(19440 <= d <= 21600 for d in at_ceiling)
    assert jittered(50, 300, 21600, 0.1, rng) == 300  # below the floor: the floor


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff(n, 60, 3600) for n in range(1, 9)] == [
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
        3600,
    ]
    assert backoff(1000, 60, 3600) == 3600  # no overflow, never more than the cap
    assert backoff(3, 6 * HOUR, 3600) == 6 * HOUR  # a slow feed's errors are not polled faster


# --- Retry-After and Cache-Control -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 30 ", 30.0),
        ("0", 0.0),
        (formatdate(NOW + 3600, usegmt=True), 3600.0),
        (formatdate(NOW - 3600, usegmt=True), 0.0),  # already past: retry now
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
    ],
)
def test_retry_after_in_seconds_or_as_a_date(value: str, expected: float | None) -> None:
    got = retry_after(value, NOW)
    assert got == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("max-age=600", 600.0),
        ("public, max-age=300, must-revalidate", 300.0),
        ('max-age="60"', 60.0),
        ("s-maxage=900", None),  # for shared caches, not for us
        ("no-cache, max-age=600", None),
        ("no-store", None),
        ("", None),
    ],
)
def test_cache_control_max_age(header: str, expected: float | None) -> None:
    assert max_age(header) == expected


# --- the feed's own hints --------------------------------------------------------------------

SY = 'xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"'


def channel(head: str, tail: str = "", items: str = "<item><title>x</title></item>") -> bytes:
    return (
        f'<?xml version="1.0"?><rss version="2.0" {SY}><channel><title>t</title>'
        f"{head}{items}{tail}</channel></rss>"
    ).encode()


def test_ttl_and_the_syndication_module() -> None:
    assert feed_hints(channel("<ttl>60</ttl>")) == FeedHints(ttl=3600.0)
    hints = feed_hints(
        channel(
            "<sy:updatePeriod>hourly</sy:updatePeriod><sy:updateFrequency>2</sy:updateFrequency>"
        )
    )
    assert hints.update_period == 1800.0 and hints.min_interval == 1800.0
    assert feed_hints(channel("<sy:updatePeriod> daily </sy:updatePeriod>")).update_period == DAY
    both = feed_hints(channel("<ttl>5</ttl><sy:updatePeriod>hourly</sy:updatePeriod>"))
    assert both.min_interval == HOUR


def test_skip_hours_and_days_before_or_after_the_items() -> None:
    hints = feed_hints(
        channel(
            "<skipHours><hour>0</hour><hour>1</hour> <hour>24</hour><hour>99</hour></skipHours>",
            tail="<skipDays><day>Saturday</day><day>Sunday</day><day>Caturday</day></skipDays>",
        )
    )
    assert hints.skip_hours == frozenset({0, 1})  # 24 is midnight; 99 is nonsense
    assert hints.skip_days == frozenset({5, 6})


def test_hints_inside_items_are_not_the_channels() -> None:
    item = "<item><title>x</title><description><![CDATA[<ttl>999</ttl>]]></description></item>"
    assert feed_hints(channel("", items=item * 3)) == FeedHints()


def test_no_hints_in_atom_or_garbage() -> None:
    atom = b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><entry/></feed>'
    assert feed_hints(atom) == FeedHints()
    assert feed_hints(b"") == FeedHints()
    assert feed_hints(b"\x00\xff" * 1000) == FeedHints()


def at(hour: int, minute: int = 0, day: int = 1) -> float:
    return datetime(2024, 1, day, hour, minute, tzinfo=UTC).timestamp()  # 2024-01-01: a Monday


def test_next_allowed_skips_hours_and_days() -> None:
    assert next_allowed(at(1, 30), frozenset({1, 2}), frozenset()) == at(3)
    assert next_allowed(at(3, 10), frozenset({1, 2}), frozenset()) == at(3, 10)
    assert next_allowed(at(23, 30), frozenset({23, 0}), frozenset()) == at(1, day=2)
    # Saturday and Sunday skipped: Saturday noon waits for Monday 00:00
    assert next_allowed(at(12, day=6), frozenset(), frozenset({5, 6})) == at(0, day=8)
    # skipping everything means nothing
    assert next_allowed(at(5), frozenset(range(24)), frozenset()) == at(5)
    assert next_allowed(at(5), frozenset(), frozenset(range(7))) == at(5)
