import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import ParseError
from monitor.feeds.exports import read_export, read_exports
from tests.conftest import corpus

NOW = datetime(2022, 1, 1, tzinfo=UTC)


def test_real_exports_become_articles() -> None:
    articles = list(read_exports(corpus("news-2021"), NOW))
    assert len(articles) > 3500
    bbc = next(a for a in articles if a.source == "feeds.bbci.co.uk")
    assert "at_medium" not in bbc.url and bbc.title and bbc.published.tzinfo is not None
    assert {a.source for a in articles} >= {
        "feeds.bbci.co.uk",
        "rss.cnn.com",
        "www.theguardian.com",
    }


def test_bad_exports_are_named_errors(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ParseError, match=r"x\.json"):
        list(read_export(tmp_path / "x.json"))
    (tmp_path / "y.json").write_text(json.dumps({"title": "a dict, not a list"}))
    with pytest.raises(ParseError, match="expected a list"):
        list(read_export(tmp_path / "y.json"))


def test_odd_entries_are_skipped_or_repaired(tmp_path: Path) -> None:
    entries = [
        {"title": "", "link": "", "description": ""},  # nothing: skipped
        "not an entry",  # skipped
        {"title": "No date", "link": "https://a.example/x?utm_source=rss", "date_published": "?"},
        {"title": "Future", "link": "https://a.example/f", "date_published": "2099-01-01T00:00:00"},
    ]
    (tmp_path / "e.json").write_text(json.dumps(entries))
    got = list(read_export(tmp_path / "e.json", NOW))
    assert [a.title for a in got] == ["No date", "Future"]
    assert got[0].url == "https://a.example/x" and got[0].published == NOW
    assert got[1].published == NOW  # clamped: a future date must not hold a story open
