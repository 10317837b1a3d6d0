"""Conformance with feedparser's own well-formed test feeds: parse_feed never crashes on them and
never loses an entry feedparser finds (read from ../shared/corpus, never copied into the repo)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import feedparser
import pytest

from monitor.errors import ParseError
from monitor.feeds.parse import parse_feed
from tests.conftest import unavailable
from tests.unit.feeds.helpers import FETCHED_AT, source

CORPUS = Path(__file__).resolve().parents[3] / ".." / "shared" / "corpus"
# RSS 0.9x/2.0, Atom 0.3 and 1.0, RSS 1.0 (RDF): every dialect a news outlet serves today.
FOLDERS = ("rss", "atom", "atom10", "rdf")


def wellformed_feeds() -> list[Path]:
    root = CORPUS / "feedparser" / "wellformed"
    if not root.is_dir():
        unavailable(f"feedparser corpus not found at {root.resolve()} (expected ../shared/corpus)")
    files = sorted(f for folder in FOLDERS for f in (root / folder).glob("*.xml"))
    assert len(files) > 500, f"corpus at {root} looks truncated: {len(files)} feeds"
    return files


def kept(entry: Any) -> bool:
    """Whether parse_feed makes an Article of a feedparser entry: it needs a title, text or a
    link to show a reader and to match rules. An id is enough only when it is a URL (the guid
    then serves as the link); an opaque id alone ("abc") carries nothing to read."""
    texts = [entry.get("title"), entry.get("link"), entry.get("summary")]
    texts += [c.get("value") for c in entry.get("content") or []]
    guid = (entry.get("id") or "").strip()
    return any((t or "").strip() for t in texts) or guid.startswith(("http://", "https://"))


@pytest.mark.corpus
def test_every_wellformed_feed_parses_without_losing_entries() -> None:
    problems: list[str] = []
    articles = 0
    for path in wellformed_feeds():
        data = path.read_bytes()
        name = path.relative_to(path.parents[1]).as_posix()
        expected = sum(1 for e in feedparser.parse(io.BytesIO(data)).entries if kept(e))
        try:
            got = parse_feed(data, source("corpus"), FETCHED_AT, "http://example.org/feed.xml")
        except ParseError as exc:
            if expected:
                problems.append(f"{name}: ParseError but feedparser finds {expected}: {exc}")
            continue
        except Exception as exc:
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        articles += len(got)
        if len(got) != expected:
            problems.append(f"{name}: {len(got)} articles, feedparser finds {expected} entries")
        for a in got:
            if a.published > FETCHED_AT or a.published.utcoffset() is None:
                problems.append(f"{name}: published {a.published!r} not UTC or in the future")
    assert not problems, "\n".join(problems)
    assert articles > 100  # the corpus really was exercised (most files test channel fields)
