"""Route policies: group windows, quiet hours, rate limits, silences, supersession."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.models import Alert, Level, RuleHit, Silence
from monitor.pipeline.dispatch import Bucket, Dispatcher, Held
from monitor.rules.models import Route

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, noon UTC


def alert(story: str, level: Level = Level.high, kind: str = "opened", minute: float = 0) -> Alert:
    return Alert(
        id=f"{story}-{kind}-{level.name}",
        story_id=story,
        route="desk",
        sink="list",
        kind=kind,  # type: ignore[arg-type]
        level=level,
        score=70,
        title=f"story {story}",
        url="https://a.example/",
        hits=(RuleHit(rule_id="inv", phrase="invasion", text="invasion"),),
        created_at=T0 + timedelta(minutes=minute),
    )


def dispatcher(route: Route, silences: list[Silence] | None = None) -> Dispatcher:
    held: dict[str, Held] = {}
    buckets: dict[str, Bucket] = {}
    return Dispatcher([route], held, buckets, lambda: silences or [])


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_without_policies_alerts_go_straight_out() -> None:
    d = dispatcher(Route(name="desk", sink="list"))
    adm = d.admit(alert("a"), T0)
    assert [o.alert for o in adm.send] == [alert("a")] and d.held == {}


def test_stories_crossing_together_arrive_as_one_digest() -> None:
    d = dispatcher(Route(name="desk", sink="list", group_window="30s"))
    for i, s in enumerate("abc"):
        assert d.admit(alert(s, minute=i * 0.1), at(i * 0.1)).held == "group"
    assert d.due(at(0.4)) == []  # window still open
    out = d.due(at(0.6))
    assert len(out) == 1 and out[0].digest is not None
    assert [a.story_id for a in out[0].digest.alerts] == ["a", "b", "c"]
    assert out[0].digest.reason == "group"
    # still held until handed over: a crash before the send keeps the batch
    assert len(d.held) == 3
    d.release(out[0])
    assert d.held == {}


def test_a_story_appears_once_in_a_digest_as_its_latest_alert() -> None:
    d = dispatcher(Route(name="desk", sink="list", group_window="1m"))
    first = alert("a", Level.high)
    later = alert("a", Level.critical, "escalated", minute=0.2)
    d.admit(first, T0)
    d.admit(later, at(0.2))
    d.admit(alert("b"), at(0.3))
    (out,) = d.due(at(2))
    assert out.digest is not None
    assert [a.id for a in out.digest.alerts] == [later.id, alert("b").id]  # most severe first
    assert out.superseded == [first]


def test_one_story_alone_goes_out_as_a_plain_alert() -> None:
    d = dispatcher(Route(name="desk", sink="list", group_window="1m"))
    d.admit(alert("a"), T0)
    (out,) = d.due(at(2))
    assert out.digest is None and out.alert == alert("a")


def test_quiet_hours_hold_all_but_critical_until_morning() -> None:
    route = Route(
        name="desk",
        sink="list",
        quiet_hours={"start": "22:00", "end": "07:00", "timezone": "Europe/Paris"},
    )
    d = dispatcher(route)
    night = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)  # 00:30 in Paris
    assert d.admit(alert("a"), night).held == "quiet"
    assert d.admit(alert("b", Level.medium), night).held == "quiet"
    crit = d.admit(alert("c", Level.critical), night)
    assert [o.alert.story_id for o in crit.send if o.alert] == ["c"]  # critical goes now
    assert d.due(datetime(2026, 3, 3, 5, 59, tzinfo=UTC)) == []  # 06:59 Paris
    (out,) = d.due(datetime(2026, 3, 3, 6, 0, tzinfo=UTC))  # 07:00 Paris
    assert out.digest is not None and out.digest.reason == "quiet"
    assert {a.story_id for a in out.digest.alerts} == {"a", "b"}


def test_rate_limit_holds_the_excess_and_sends_it_as_one_digest() -> None:
    d = dispatcher(Route(name="desk", sink="list", rate_limit={"count": 2, "per": "1m"}))
    sent = [d.admit(alert(s), T0) for s in "abcde"]
    assert [bool(a.send) for a in sent] == [True, True, False, False, False]
    assert {a.held for a in sent[2:]} == {"rate"}
    assert d.due(at(0.2)) == []  # no token yet (one every 30 s)
    (out,) = d.due(at(0.51))
    assert out.digest is not None and out.digest.reason == "rate"
    assert [a.story_id for a in out.digest.alerts] == ["c", "d", "e"]
    d.release(out)
    # the digest took the token: the next alert waits again
    assert d.admit(alert("f"), at(0.52)).held == "rate"


def test_silences_match_by_rule_or_story_until_they_expire() -> None:
    by_rule = Silence(id="s1", rule="inv", until=at(60), reason="known exercise", created_at=T0)
    d = dispatcher(Route(name="desk", sink="list"), [by_rule])
    assert d.admit(alert("a"), at(5)).silenced_by == by_rule
    assert d.admit(alert("a"), at(61)).silenced_by is None  # expired
    by_story = Silence(id="s2", story="b", until=at(60), reason="dup", created_at=T0)
    d = dispatcher(Route(name="desk", sink="list"), [by_story])
    assert d.admit(alert("b"), T0).silenced_by == by_story
    assert d.admit(alert("c"), T0).send


def test_held_state_survives_a_new_dispatcher() -> None:
    route = Route(name="desk", sink="list", group_window="1m")
    held: dict[str, Held] = {}
    buckets: dict[str, Bucket] = {}
    Dispatcher([route], held, buckets).admit(alert("a"), T0)
    Dispatcher([route], held, buckets).admit(alert("b"), at(0.5))
    (out,) = Dispatcher([route], held, buckets).due(at(1.1))
    assert out.digest is not None and len(out.digest.alerts) == 2


def test_quiet_hours_times_carry_no_zone_of_their_own() -> None:
    import pytest
    from pydantic import ValidationError

    from monitor.rules.models import QuietHours

    with pytest.raises(ValidationError, match="without a zone"):
        QuietHours(start="22:00Z", end="07:00")  # type: ignore[arg-type]
