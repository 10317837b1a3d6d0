"""JSON Feed documents become Articles like RSS and Atom ones; other JSON, and hostile JSON, is
"not a feed", never a crash."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from monitor.errors import ParseError
from monitor.feeds.parse import parse_document, parse_feed
from tests.unit.feeds.helpers import FETCHED_AT, source


def doc(*items: dict[str, object], version: str = "https://jsonfeed.org/version/1.1") -> bytes:
    return json.dumps({"version": version, "title": "Wire & <Co>", "items": list(items)}).encode()


def test_items_become_articles_with_their_link_text_and_date() -> None:
    parsed = parse_document(
        doc(
            {
                "id": "https://wire.example/a?utm_source=x",
                "url": "https://wire.example/a?utm_source=x",
                "title": "Troops x < y at the border",
                "content_html": "<p>Moscow said it would respond <b>militarily</b>.</p>",
                "summary": "A teaser",
                "date_published": "2022-02-24T03:00:00+02:00",
            },
            {
                "id": 7,  # JSON Feed 1.0 allowed a number
                "external_url": "https://other.example/b",
                "content_text": "Line one\nLine two",
                "date_modified": "2022-02-24T05:00:00Z",
            },
        ),
        source(),
        FETCHED_AT,
    )
    assert (parsed.title, parsed.version, parsed.entries) == ("Wire & <Co>", "json11", 2)
    first, second = parsed.articles
    assert first.url == "https://wire.example/a"  # canonical, tracking dropped
    assert first.title == "Troops x < y at the border"  # plain text kept as written
    assert first.body == "Moscow said it would respond militarily."
    assert first.published == datetime(2022, 2, 24, 1, 0, tzinfo=UTC)
    assert second.url == "https://other.example/b" and second.guid == "7"
    assert second.title == "Line one Line two"  # no title: the text's first words
    assert second.body.split() == ["Line", "one", "Line", "two"]
    assert second.published == datetime(2022, 2, 24, 5, 0, tzinfo=UTC)


def test_version_one_and_utf16_and_a_bom_are_read() -> None:
    item = {"id": "1", "url": "https://wire.example/1", "title": "Caf\u00e9 \u4e2d\u6587"}
    text = json.dumps({"version": "https://jsonfeed.org/version/1", "items": [item]})
    for data in (text.encode("utf-16"), b"\xef\xbb\xbf" + text.encode()):
        parsed = parse_document(data, source(), FETCHED_AT)
        assert parsed.version == "json1"
        assert [a.title for a in parsed.articles] == ["Caf\u00e9 \u4e2d\u6587"]


def test_dates_in_the_future_or_unreadable_fall_back_like_rss() -> None:
    [future, junk] = parse_feed(
        doc(
            {"id": "f", "title": "Future", "date_published": "2999-01-01T00:00:00Z"},
            {"id": "j", "title": "Junk", "date_published": "yesterday-ish"},
        ),
        source(),
        FETCHED_AT,
    )
    assert future.published == FETCHED_AT and junk.published == FETCHED_AT


@pytest.mark.parametrize(
    "data",
    [
        b'{"version": "1", "items": [{"title": "not a JSON Feed"}]}',
        b'{"items": []}',
        b"[1, 2, 3]",
        b'{"version": "https://jsonfeed.org/version/1", "items": ' + b"[" * 200_000 + b"]}",
        b"{" + b'"a":' * 10 + b"}",
    ],
    ids=["other-version", "no-version", "array", "nested-200k", "broken"],
)
def test_other_or_hostile_json_is_not_a_feed(data: bytes) -> None:
    with pytest.raises(ParseError, match="not a feed"):
        parse_feed(data, source(), FETCHED_AT)


def test_odd_items_are_skipped_not_fatal() -> None:
    data = json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "items": [
                "a string",
                None,
                {"id": ["a", "list"], "title": 5, "url": {"no": 1}, "content_html": 3},
                {"id": "ok", "title": "Kept", "url": "https://wire.example/ok"},
            ],
        }
    ).encode()
    parsed = parse_document(data, source(), FETCHED_AT)
    assert [a.title for a in parsed.articles] == ["Kept"]
    items_not_a_list = b'{"version": "https://jsonfeed.org/version/1.1", "items": {"a": 1}}'
    assert parse_document(items_not_a_list, source(), FETCHED_AT).articles == []


def test_relative_item_urls_are_resolved_against_the_feed_url() -> None:
    data = doc({"id": "r", "title": "Relative", "url": "/news/r"})
    [article] = parse_feed(data, source(), FETCHED_AT, "https://wire.example/feed.json")
    assert article.url == "https://wire.example/news/r"
