"""Feed bytes to Articles: RSS and Atom, UTC dates, clean text, canonical URLs, and bytes that
are not a feed refused rather than guessed at."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.errors import ParseError
from monitor.feeds.parse import parse_feed
from monitor.models import Article
from tests.unit.feeds.helpers import FETCHED_AT, SAMPLES, rss, source

SAMPLE_COUNTS = {
    "global-wire": 10,
    "harbour-times": 10,
    "eastern-ledger": 9,
    "capital-observer": 8,
    "daily-courier": 9,  # 11 items: two pages are listed twice (tracking link, repeated guid)
    "metro-digest": 8,
}


def sample(name: str) -> list[Article]:
    return parse_feed((SAMPLES / f"{name}.xml").read_bytes(), source(name), FETCHED_AT)


def seed_copy(name: str) -> Article:
    """The outlet's copy of the seed story (Putin's "military-technical" warning)."""
    return next(a for a in sample(name) if "militarily and technically" in a.title)


@pytest.mark.parametrize(("name", "count"), sorted(SAMPLE_COUNTS.items()))
def test_every_sample_item_becomes_an_article(name: str, count: int) -> None:
    articles = sample(name)
    assert len(articles) == count
    for a in articles:
        assert a.source == name and a.title and a.body and a.url.startswith("https://")
        assert a.published.utcoffset() == timedelta(0)
        assert a.fetched_at == FETCHED_AT
        assert "<" not in a.body and "&amp;" not in a.body and "&lt;" not in a.body


@pytest.mark.parametrize(
    ("name", "published"),
    [
        ("global-wire", datetime(2021, 12, 14, 12, 5, tzinfo=UTC)),  # RSS, GMT
        ("harbour-times", datetime(2021, 12, 14, 13, 40, tzinfo=UTC)),  # RSS, -0500
        ("eastern-ledger", datetime(2021, 12, 14, 15, 10, tzinfo=UTC)),  # Atom, +03:00
        ("capital-observer", datetime(2021, 12, 14, 16, 20, tzinfo=UTC)),  # Atom, Z
        ("metro-digest", datetime(2021, 12, 14, 18, 30, tzinfo=UTC)),  # RSS, -0500
    ],
)
def test_dates_are_converted_to_utc(name: str, published: datetime) -> None:
    assert seed_copy(name).published == published


def test_tracking_parameters_and_fragments_leave_the_sample_links() -> None:
    assert seed_copy("harbour-times").url == (
        "https://harbour-times.example/world/2021/12/14/putin-warns-russia-militarily-technically"
    )
    assert seed_copy("capital-observer").url.endswith(
        "/putin-warns-russia-respond-militarily-technically"
    )
    assert seed_copy("metro-digest").url.endswith("-to-western-threats/")


def test_entity_escaped_html_becomes_plain_text() -> None:
    gale = next(a for a in sample("daily-courier") if a.title.startswith("Gale warning"))
    # In the file: &amp;amp; inside entity-escaped <p> elements.
    assert "watch the waves & take photos" in gale.body
    assert "<p>" not in gale.body


def test_script_content_never_reaches_the_text() -> None:
    articles = sample("metro-digest")
    chili = next(a for a in articles if "chili" in a.body)
    for leaked in ("ukraine-invasion", "missile-strike", "nuclear-alert", "googletag"):
        assert all(leaked not in a.body and leaked not in a.title for a in articles), leaked
    assert "smoked paprika" in chili.body


def test_ids_are_stable_and_follow_the_page() -> None:
    first, again = sample("daily-courier"), sample("daily-courier")
    assert [a.id for a in first] == [a.id for a in again]
    # The same page is the same article whatever feed it came through, tracking links and all;
    # listed twice in one feed (once with utm_ parameters), it is one article.
    gale = [a for a in first if a.title.startswith("Gale warning")]
    assert len(gale) == 1
    other = parse_feed((SAMPLES / "daily-courier.xml").read_bytes(), source("other"), FETCHED_AT)
    assert {a.id for a in other} == {a.id for a in first}


def test_entries_without_a_link_are_told_apart_by_feed_and_guid() -> None:
    data = rss("<title>Bulletin</title><guid isPermaLink='false'>42</guid>")
    [a] = parse_feed(data, source("one"), FETCHED_AT)
    [b] = parse_feed(data, source("two"), FETCHED_AT)
    [c] = parse_feed(data, source("one"), FETCHED_AT)
    assert a.id != b.id and a.id == c.id


def test_language_and_reliability_come_from_the_source() -> None:
    data = rss("<title>Headline</title><link>https://news.example/a</link>")
    [a] = parse_feed(data, source(language="uk", reliability=0.3), FETCHED_AT)
    assert (a.language, a.reliability) == ("uk", 0.3)


def test_future_dates_are_clamped_to_the_fetch_time() -> None:
    data = rss(
        "<title>Tomorrow</title><link>https://news.example/t</link>"
        "<pubDate>Tue, 14 Dec 2099 13:30:00 GMT</pubDate>"
    )
    [a] = parse_feed(data, source(), FETCHED_AT)
    assert a.published == FETCHED_AT


def test_missing_or_unreadable_dates_fall_back_to_the_fetch_time() -> None:
    data = rss(
        "<title>No date</title><link>https://news.example/n</link>",
        "<title>Bad date</title><link>https://news.example/b</link><pubDate>soon</pubDate>",
    )
    assert [a.published for a in parse_feed(data, source(), FETCHED_AT)] == [FETCHED_AT] * 2


def test_atom_content_html_title_and_offset_dates() -> None:
    data = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>urn:feed</id>
<updated>2022-02-24T05:10:00+03:00</updated>
<entry>
  <title type="html">Russia &lt;em&gt;invades&lt;/em&gt; Ukraine</title>
  <id>tag:observer.example,2022-02-24:invasion</id>
  <link rel="alternate" href="https://Observer.example/world/invasion?at_medium=RSS"/>
  <updated>2022-02-24T05:10:00+03:00</updated>
  <summary>Short teaser.</summary>
  <content type="html">&lt;p&gt;Missiles struck Kyiv.&lt;/p&gt;&lt;p&gt;Martial law.&lt;/p&gt;</content>
</entry></feed>"""
    [a] = parse_feed(data, source(), FETCHED_AT)
    assert a.title == "Russia invades Ukraine"
    assert a.body == "Missiles struck Kyiv.\nMartial law."  # the full content beats the teaser
    assert a.url == "https://observer.example/world/invasion"
    assert a.guid == "tag:observer.example,2022-02-24:invasion"
    assert a.published == datetime(2022, 2, 24, 2, 10, tzinfo=UTC)


def test_relative_links_resolve_against_the_feed_url() -> None:
    data = rss("<title>Relative</title><link>/world/story?utm_source=rss</link>")
    [a] = parse_feed(data, source(), FETCHED_AT, base_url="https://News.example/feeds/rss.xml")
    assert a.url == "https://news.example/world/story"


def test_entries_without_title_text_or_link_are_skipped_and_titles_fall_back_to_text() -> None:
    data = rss(
        "",
        "<description>Body words only, no headline given here at all by this "
        "outlet today</description>",
        "<title>Kept</title>",
    )
    articles = parse_feed(data, source(), FETCHED_AT)
    assert [a.title for a in articles] == [
        "Body words only, no headline given here at all by this outlet",
        "Kept",
    ]


@pytest.mark.parametrize(
    "empty",
    [
        rss(),
        b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>x</title></feed>',
        b'<rss version="2.0"><channel></channel></rss>',
        b'{"version": "https://jsonfeed.org/version/1.1", "items": []}',
    ],
)
def test_a_feed_with_no_items_is_no_articles(empty: bytes) -> None:
    assert parse_feed(empty, source(), FETCHED_AT) == []


@pytest.mark.parametrize(
    "not_a_feed",
    [
        b"<!DOCTYPE html><html><head><title>Sign in</title></head>"
        b"<body><p>Please log in to continue.</p></body></html>",
        b"<html><body><h1>Moved</h1><a href='/new-feed'>here</a></body></html>",
        b"\x00\x01\x02 garbage \xff\xfe",
        b"just some text",
        b'{"title": "JSON, but not a JSON Feed", "items": []}',
        b"",
    ],
)
def test_bytes_that_hold_no_feed_are_a_parse_error_naming_the_feed(not_a_feed: bytes) -> None:
    with pytest.raises(ParseError) as caught:
        parse_feed(not_a_feed, source("login-wall"), FETCHED_AT)
    assert caught.value.feed == "login-wall"
    assert "login-wall" in str(caught.value) and "not a feed" in str(caught.value)


def test_bytes_that_look_like_a_local_path_are_never_opened(tmp_path: Path) -> None:
    # A valid feed on disk. If parse_feed ever handed the bytes to feedparser as a file name,
    # the server answering with this path would make us read (and publish) a local file.
    secret = tmp_path / "secret-feed.xml"
    secret.write_bytes(rss("<title>Local secret</title><link>https://secret.example/</link>"))
    for answer in (str(secret).encode(), secret.as_uri().encode(), b"/etc/hostname"):
        with pytest.raises(ParseError):
            parse_feed(answer, source(), FETCHED_AT)
