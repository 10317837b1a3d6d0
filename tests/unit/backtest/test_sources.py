"""Reading --input: feed files, JSON exports, the state archive; errors name the input."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.backtest.sources import InputError, Window, load_input, parse_when
from monitor.models import Article
from monitor.state.archive import ArticleArchive
from monitor.state.sqlite import Store
from tests.conftest import REPO

SAMPLES = REPO / "monitor" / "samples"
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def test_parse_when_takes_dates_times_and_durations_ago() -> None:
    assert parse_when("2021-11-20", NOW) == datetime(2021, 11, 20, tzinfo=UTC)
    assert parse_when("2021-11-20T12:30Z", NOW) == datetime(2021, 11, 20, 12, 30, tzinfo=UTC)
    assert parse_when("2021-11-20T12:30+02:00", NOW) == datetime(2021, 11, 20, 10, 30, tzinfo=UTC)
    assert parse_when("7d", NOW) == NOW - timedelta(days=7)
    assert parse_when("1h30m", NOW) == NOW - timedelta(minutes=90)
    with pytest.raises(ValueError, match="neither a date/time"):
        parse_when("last tuesday", NOW)


def test_feed_directory_uses_its_feed_list_and_comes_in_publication_order() -> None:
    loaded = load_input(str(SAMPLES), Window(), now=NOW)
    arts = loaded.articles
    assert len(arts) > 40
    assert [(a.published, a.id) for a in arts] == sorted((a.published, a.id) for a in arts)
    # feeds.yaml beside the files names them and sets their reliability, as a poll would
    by_source = {a.source: a.reliability for a in arts}
    assert by_source["global-wire"] == 0.95
    assert by_source["metro-digest"] == 0.45
    assert loaded.notes == []


def test_a_feed_file_on_its_own_is_named_by_its_stem(tmp_path: Path) -> None:
    feed = tmp_path / "Harbour Times.xml"
    shutil.copy(SAMPLES / "harbour-times.xml", feed)
    arts = load_input(str(feed), Window(), now=NOW).articles
    assert arts
    assert {a.source for a in arts} == {"harbour-times"}
    assert {a.reliability for a in arts} == {1.0}


def test_window_keeps_since_inclusive_until_exclusive() -> None:
    arts = load_input(str(SAMPLES), Window(), now=NOW).articles
    middle = arts[len(arts) // 2].published
    before = load_input(str(SAMPLES), Window(until=middle), now=NOW).articles
    after = load_input(str(SAMPLES), Window(since=middle), now=NOW).articles
    assert len(before) + len(after) == len(arts)
    assert all(a.published < middle for a in before)
    assert all(a.published >= middle for a in after)


def test_json_exports_are_read_recursively(tmp_path: Path) -> None:
    day = tmp_path / "2021-11-01"
    day.mkdir()
    entries = [
        {
            "title": "Troops mass on the border",
            "link": "https://news.example/a",
            "description": "<p>Tanks were seen.</p>",
            "date_published": "2021-11-01T10:00:00+00:00",
            "source": "https://feeds.example.org/world.xml",
        },
        {
            "title": "Earlier story",
            "link": "https://news.example/b",
            "date_published": "2021-11-01T09:00:00+00:00",
        },
    ]
    (day / "world.json").write_text(json.dumps(entries))
    arts = load_input(str(tmp_path), Window(), now=NOW).articles
    assert [a.title for a in arts] == ["Earlier story", "Troops mass on the border"]
    assert arts[1].source == "feeds.example.org"
    assert arts[0].source == "world"


def test_state_archive_is_read_by_publication_time(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = Store(path)
    archive = ArticleArchive(store.db)
    base = datetime(2021, 11, 1, tzinfo=UTC)
    for i in (3, 1, 2):
        archive.add(
            Article(
                id=f"a{i}",
                source="s",
                url=f"https://x.example/{i}",
                title=f"t{i}",
                published=base + timedelta(hours=i),
                fetched_at=base + timedelta(hours=5),
            )
        )
    store.close()
    loaded = load_input(f"state:{path}", Window(since=base + timedelta(hours=2)))
    assert [a.id for a in loaded.articles] == ["a2", "a3"]


def test_empty_state_archive_is_noted(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Store(path).close()
    loaded = load_input(f"state:{path}", Window())
    assert loaded.articles == []
    assert "no archived articles" in loaded.notes[0]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no/such/dir", "--input 'no/such/dir': no such file or directory"),
        ("state:missing.db", "--input 'state:missing.db': state file missing.db not found"),
        ("state:", "give the state file"),
        ("kafka:", "give a topic"),
        ("kafka:news.articles", "MONITOR_KAFKA_BOOTSTRAP is not set"),
    ],
)
def test_bad_inputs_are_named(spec: str, message: str) -> None:
    with pytest.raises(InputError) as exc:
        load_input(spec, Window())
    assert message in str(exc.value)


def test_files_that_are_not_feeds_are_named(tmp_path: Path) -> None:
    (tmp_path / "notes.xml").write_text("<html><body>hello</body></html>")
    with pytest.raises(InputError, match=r"notes\.xml: not a feed"):
        load_input(str(tmp_path), Window())
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("nothing here")
    with pytest.raises(InputError, match="no feed files"):
        load_input(str(empty), Window())
    (tmp_path / "bad.json").write_text('{"not": "a list"}')
    with pytest.raises(InputError, match="not a JSON entry export"):
        load_input(str(tmp_path / "bad.json"), Window())


def test_a_file_that_is_not_a_state_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_text("not sqlite at all, " * 100)
    with pytest.raises(InputError, match=r"state:.*not a usable state file"):
        load_input(f"state:{path}", Window())
