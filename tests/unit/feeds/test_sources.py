"""The feed list: what an analyst writes, and the located errors they get back."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.durations import parse_duration
from monitor.errors import ConfigError, RuleLoadError
from monitor.feeds.sources import FeedSource, load_feeds, sample_feeds_path


def write(tmp_path: Path, text: str, name: str = "feeds.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def located(path: Path) -> list[tuple[int, int, str, str]]:
    """(line, col, field, message) of every issue load_feeds reports for ``path``."""
    with pytest.raises(RuleLoadError) as caught:
        load_feeds(path)
    for issue in caught.value.issues:
        assert issue.path == str(path)
        assert str(issue).startswith(f"{path}:{issue.line}:{issue.col}: {issue.field}: ")
    return [(i.line, i.col, i.field, i.message) for i in caught.value.issues]


def test_the_bundled_sample_feeds_load_and_point_at_existing_files() -> None:
    feeds = load_feeds(sample_feeds_path())
    assert [f.name for f in feeds] == [
        "global-wire",
        "harbour-times",
        "eastern-ledger",
        "capital-observer",
        "daily-courier",
        "metro-digest",
    ]
    for feed in feeds:
        assert feed.url.startswith("file:///")
        assert Path(feed.url.removeprefix("file://")).is_file()
    by_name = {f.name: f for f in feeds}
    assert by_name["global-wire"].interval == 15 * 60
    assert by_name["harbour-times"].interval == 30 * 60
    assert by_name["eastern-ledger"].interval == 3600
    assert by_name["metro-digest"].reliability == 0.45


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15m", 900),
        ("1h", 3600),
        ("1h30m", 5400),
        ("1h 5m 10s", 3910),
        (90, 90),
        ("1d", 86400),
        ("2w", 1209600),
        ("1.5h", 5400),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["soon", "", "15 minutes", "-5m", True, None])
def test_bad_durations_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_relative_paths_resolve_against_the_feed_list_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "feeds").mkdir()
    (tmp_path / "feeds" / "local.xml").write_text("<rss/>", encoding="utf-8")
    path = write(
        tmp_path / "feeds",
        "feeds:\n"
        "  - name: local\n"
        "    url: local.xml\n"
        "    interval: 1h30m\n"
        "  - name: dotted\n"
        "    url: ./sub/../local.xml\n"
        "  - name: remote\n"
        "    url: https://news.example/rss\n"
        "  - name: paused\n"
        "    url: https://paused.example/rss\n"
        "    enabled: false\n",
    )
    monkeypatch.chdir("/")  # not the file's folder: resolution must not depend on the cwd
    feeds = load_feeds(path)
    expected = (tmp_path / "feeds" / "local.xml").resolve().as_uri()
    assert [(f.name, f.url) for f in feeds] == [
        ("local", expected),
        ("dotted", expected),
        ("remote", "https://news.example/rss"),
    ]
    assert feeds[0].interval == 5400
    assert feeds[1].interval == 900  # the default, 15 minutes


def test_every_error_is_located_at_path_line_col(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "feeds:\n"  # 1
        "  - name: good\n"  # 2
        "    url: https://news.example/rss\n"  # 3
        "  - name: Bad Name\n"  # 4
        "    url: ftp://files.example/feed\n"  # 5
        "    reliability: 2\n"  # 6
        "    interval: soon\n"  # 7
        "    colour: red\n",  # 8
    )
    issues = located(path)
    assert [(line, col, field) for line, col, field, _ in issues] == [
        (4, 11, "feeds[1].name"),
        (5, 10, "feeds[1].url"),
        (6, 18, "feeds[1].reliability"),
        (7, 15, "feeds[1].interval"),
        (8, 5, "feeds[1].colour"),
    ]
    messages = {field: message for _, _, field, message in issues}
    assert "http" in messages["feeds[1].url"]
    assert "duration" in messages["feeds[1].interval"]
    assert "unknown key" in messages["feeds[1].colour"]


def test_a_duplicate_name_points_at_the_second_entry(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "feeds:\n"
        "  - name: wire\n"
        "    url: https://a.example/rss\n"
        "  - name: other\n"
        "    url: https://b.example/rss\n"
        "  - name: wire\n"
        "    url: https://c.example/rss\n",
    )
    [(line, col, field, message)] = located(path)
    assert (line, col, field) == (6, 11, "feeds[2].name")
    assert "duplicate" in message and "wire" in message


def test_a_missing_local_file_is_reported_at_its_url(tmp_path: Path) -> None:
    path = write(tmp_path, "feeds:\n  - name: gone\n    url: nowhere.xml\n")
    [(line, col, field, message)] = located(path)
    assert (line, col, field) == (3, 10, "feeds[0].url")
    assert str(tmp_path / "nowhere.xml") in message


def test_duplicates_and_missing_files_are_found_in_the_same_pass_as_other_errors(
    tmp_path: Path,
) -> None:
    # Analysts fix files in batches: one run must list everything.
    path = write(
        tmp_path,
        "feeds:\n"
        "  - name: wire\n"
        "    url: https://a.example/rss\n"
        "    reliability: 0\n"
        "  - name: wire\n"
        "    url: nowhere.xml\n",
    )
    fields = [field for _, _, field, _ in located(path)]
    assert fields == ["feeds[0].reliability", "feeds[1].name", "feeds[1].url"]


def test_yaml_syntax_errors_are_located(tmp_path: Path) -> None:
    path = write(tmp_path, "feeds:\n  - name: a\n    url: [unclosed\n")
    [(line, _col, field, _message)] = located(path)
    assert field == "(yaml)"
    assert line >= 3


def test_a_missing_feed_list_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        load_feeds(missing)


def test_an_empty_feed_list_is_no_feeds(tmp_path: Path) -> None:
    assert load_feeds(write(tmp_path, "# nothing yet\n")) == []


@pytest.mark.parametrize(
    ("url", "private"),
    [
        ("http://127.0.0.1:8080/rss", True),
        ("http://localhost/rss", True),
        ("http://feeds.localhost/rss", True),
        ("http://10.1.2.3/rss", True),
        ("http://[::1]/rss", True),
        ("http://192.168.0.9/feed.xml", True),
        ("http://169.254.169.254/latest/meta-data", False),  # link-local: never by itself
        ("https://feeds.bbci.co.uk/news/rss.xml", False),
        ("https://10.example.org/rss", False),  # a name, whatever it resolves to
        ("file:///srv/feeds/wire.xml", False),
        ("http://[::1/rss", False),  # malformed: nothing allowed
    ],
)
def test_a_private_address_written_in_the_url_allows_private_fetches(
    url: str, private: bool
) -> None:
    assert FeedSource(name="f", url=url).private_allowed is private
    assert FeedSource(name="f", url=url, allow_private=True).private_allowed


def test_the_switches_load_from_yaml_and_a_wrong_type_is_located(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "feeds:\n  - name: a\n    url: https://a.example/rss\n    fetch_article: true\n"
        "    allow_private: true\n    websub: false\n",
    )
    [feed] = load_feeds(path)
    assert (feed.fetch_article, feed.allow_private, feed.websub) == (True, True, False)
    bad = write(
        tmp_path, "feeds:\n  - name: a\n    url: https://a.example/rss\n    fetch_article: maybe\n"
    )
    [(line, _col, field, _message)] = located(bad)
    assert (line, field) == (4, "feeds[0].fetch_article")
