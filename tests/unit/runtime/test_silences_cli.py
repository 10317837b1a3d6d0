"""`monitor silence add/list/remove` on a state file (the embedded runtime), through the real
command line, and what a silence does to the next `monitor run`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner, Result

from monitor.cli import app
from monitor.models import Alert, Level, RuleHit, Silence
from monitor.runtime.silences import apply_record, new_silence
from monitor.state.sqlite import Store
from tests.conftest import RULES

HOUR = timedelta(hours=1)


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("MONITOR_KAFKA_BOOTSTRAP", "MONITOR_STATE", "MONITOR_JSONL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MONITOR_RULES", str(RULES))
    monkeypatch.setenv("MONITOR_LOG_FORMAT", "json")
    yield
    structlog.reset_defaults()  # the CLI pointed logging at the runner's captured stderr


def monitor(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def add(state: Path, *args: str, for_: str = "1h", reason: str = "x") -> Result:
    """`monitor silence add ARGS --for FOR --reason REASON --state STATE`."""
    flags = ["--for", for_, "--reason", reason, "--state", str(state)]
    return monitor("silence", "add", *args, *flags)


def added_id(result: Result) -> str:
    assert result.exit_code == 0, result.output
    found = re.search(r"\bsil-[0-9a-f]{8}\b", result.stdout)
    assert found, result.stdout
    return found.group(0)


def listed(state: Path, *flags: str) -> dict[str, dict[str, object]]:
    result = monitor("silence", "list", "--json", "--state", str(state), *flags)
    assert result.exit_code == 0, result.output
    return {row["id"]: row for row in json.loads(result.stdout)}


def test_add_by_rule_and_by_story_list_and_remove(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    by_rule = added_id(add(state, "--rule", "invasion", for_="4h", reason="feature series"))
    result = add(state, "--story", "3f2a9c", "--route", "archive", for_="1d", reason="covered")
    by_story = added_id(result)
    assert by_rule != by_story
    assert "until" in result.stdout and "story 3f2a9c" in result.stdout

    rows = listed(state)
    assert rows.keys() == {by_rule, by_story}
    assert rows[by_rule]["rule"] == "invasion" and rows[by_rule]["route"] is None
    assert rows[by_story]["story"] == "3f2a9c" and rows[by_story]["route"] == "archive"
    assert rows[by_rule]["silenced"] == 0 and rows[by_rule]["active"] is True
    until = datetime.fromisoformat(str(rows[by_rule]["until"]))
    created = datetime.fromisoformat(str(rows[by_rule]["created_at"]))
    assert until - created == timedelta(hours=4)

    table = monitor("silence", "list", "--state", str(state))
    assert table.exit_code == 0, table.output
    assert by_rule in table.stdout and by_story in table.stdout
    assert "rule" in table.stdout and "feature" in table.stdout and "in 3h59m" in table.stdout

    removed = monitor("silence", "remove", by_rule, "--state", str(state))
    assert removed.exit_code == 0, removed.output
    assert by_rule in removed.stdout
    assert listed(state).keys() == {by_story}


def test_expired_silences_only_with_all(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    store = Store(state)
    old = new_silence(
        rule="invasion",
        story=None,
        route=None,
        duration=timedelta(hours=1),
        reason="last week",
        now=datetime.now(UTC) - timedelta(days=7),
    )
    store.models("silences", Silence)[old.id] = old
    store.close()
    assert listed(state) == {}
    everything = listed(state, "--all")
    assert everything[old.id]["active"] is False
    plain = monitor("silence", "list", "--state", str(state))
    assert "no active silences" in plain.stdout and "1 expired" in plain.stdout


@pytest.mark.parametrize("duration", ["4 hours", "soon", "-1h", "0s", ""])
def test_a_bad_duration_is_a_usage_error_naming_it(tmp_path: Path, duration: str) -> None:
    result = add(tmp_path / "s.db", "--rule", "invasion", for_=duration)
    assert result.exit_code == 2, result.output
    assert "--for" in result.stderr
    if duration.strip():
        assert repr(duration) in result.stderr or duration in result.stderr
    assert not (tmp_path / "s.db").exists()  # nothing written


def test_exactly_one_of_rule_and_story(tmp_path: Path) -> None:
    state = tmp_path / "s.db"
    both = add(state, "--rule", "invasion", "--story", "abc")
    assert both.exit_code == 2
    assert "exactly one of --rule ID or --story ID" in both.stderr
    neither = add(state)
    assert neither.exit_code == 2
    assert "exactly one of --rule ID or --story ID" in neither.stderr
    no_reason = add(state, "--rule", "invasion", reason=" ")
    assert no_reason.exit_code == 2 and "--reason" in no_reason.stderr
    missing_for = monitor("silence", "add", "--rule", "invasion", "--reason", "x")
    assert missing_for.exit_code == 2 and "--for" in missing_for.output
    assert not state.exists()


def test_an_unknown_rule_or_route_is_refused_with_a_hint(tmp_path: Path) -> None:
    state = tmp_path / "s.db"
    typo = add(state, "--rule", "invasoin")
    assert typo.exit_code == 2
    assert "--rule 'invasoin': no such rule" in typo.stderr
    assert "did you mean 'invasion'" in typo.stderr
    route = add(state, "--rule", "invasion", "--route", "archiv")
    assert route.exit_code == 2
    assert "did you mean 'archive'" in route.stderr
    assert not state.exists()
    # without a rules directory there is nothing to check against: the silence is made
    nowhere = add(state, "--rule", "not-yet-written", "--rules", str(tmp_path / "none"))
    assert added_id(nowhere) in listed(state)


def test_removing_an_unknown_silence_fails_clearly(tmp_path: Path) -> None:
    state = tmp_path / "s.db"
    kept = added_id(add(state, "--rule", "invasion"))
    result = monitor("silence", "remove", "sil-00000000", "--state", str(state))
    assert result.exit_code == 1
    assert "no silence 'sil-00000000'" in result.stderr and str(state) in result.stderr
    assert listed(state).keys() == {kept}
    # no state file at all: the same error, and no file made
    missing = monitor("silence", "remove", kept, "--state", str(tmp_path / "other.db"))
    assert missing.exit_code == 1 and not (tmp_path / "other.db").exists()


def test_a_silence_holds_back_the_next_run_and_counts_what_it_held(tmp_path: Path) -> None:
    """Added from the command line, the silence is read by `monitor run` (another process in
    production), which keeps the seed story's alerts instead of sending them."""
    state, out = tmp_path / "state.db", tmp_path / "alerts.jsonl"
    sid = added_id(
        add(state, "--rule", "military-technical-response", "--route", "archive", reason="drill")
    )
    run = monitor("run", "--once", "--state", str(state), "--jsonl", str(out))
    assert run.exit_code == 0, run.output
    sent = [json.loads(line) for line in out.read_text().splitlines()]
    assert sent, "the run sent nothing at all"
    assert not any("militarily and technically" in a["title"] for a in sent)
    held = listed(state)[sid]["silenced"]
    assert isinstance(held, int) and held >= 1
    # the other routes were not silenced
    assert "militarily and technically" in run.stdout


def test_follower_applies_adds_replacements_and_removals() -> None:
    silences: dict[str, Silence] = {}
    s = new_silence(rule="invasion", story=None, route=None, duration=HOUR, reason="x")
    apply_record(silences, s.id.encode(), s.model_dump_json().encode())
    assert silences == {s.id: s}
    longer = s.model_copy(update={"until": s.until + timedelta(hours=1)})
    apply_record(silences, s.id.encode(), longer.model_dump_json().encode())
    assert silences[s.id].until == longer.until
    apply_record(silences, b"sil-bad", b"{not json")  # logged and skipped
    apply_record(silences, None, s.model_dump_json().encode())
    assert silences.keys() == {s.id}
    apply_record(silences, s.id.encode(), None)
    assert silences == {}
    apply_record(silences, b"sil-unknown", None)  # removing what is not there: nothing


def test_a_silence_matches_what_it_names() -> None:
    now = datetime.now(UTC)
    alert = Alert(
        id="a1",
        story_id="st1",
        route="archive",
        sink="jsonl",
        kind="opened",
        level=Level.high,
        score=70,
        title="t",
        url="https://example.org",
        hits=(RuleHit(rule_id="invasion", phrase="invasion", text="invasion"),),
        created_at=now,
    )
    rule = new_silence(rule="invasion", story=None, route=None, duration=HOUR, reason="x")
    story = new_silence(rule=None, story="st1", route="desk-slack", duration=HOUR, reason="x")
    assert rule.matches(alert, now) and not rule.matches(alert, now + timedelta(hours=2))
    assert not story.matches(alert, now)  # another route
    with pytest.raises(ValueError, match="exactly one"):
        new_silence(rule="a", story="b", route=None, duration=HOUR, reason="x")
