"""JSON Feed reading on arbitrary JSON inside a JSON Feed envelope: never a crash, every item
that becomes an article has a bounded one-line title and an id."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from monitor.feeds.parse import parse_document
from tests.property.strategies import ANY_CHAR, MODEST
from tests.unit.feeds.helpers import FETCHED_AT, source

TEXT = st.text(ANY_CHAR, max_size=200)
JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)
FIELDS = ("id", "url", "external_url", "title", "content_html", "content_text", "summary")
ITEM = st.dictionaries(
    st.sampled_from((*FIELDS, "date_published", "date_modified")), JSON | TEXT, max_size=8
)


@MODEST
@given(items=st.lists(ITEM | JSON, max_size=6), title=JSON)
def test_any_items_parse_or_fail_cleanly(items: list[Any], title: Any) -> None:
    data = json.dumps(
        {"version": "https://jsonfeed.org/version/1.1", "title": title, "items": items}
    ).encode()
    # a JSON Feed envelope always reads: odd items are skipped or read as best they can be
    parsed = parse_document(data, source(), FETCHED_AT, "https://wire.example/feed.json")
    for article in parsed.articles:
        assert article.id and "\n" not in article.title and len(article.title) <= 500
        assert article.published <= FETCHED_AT
