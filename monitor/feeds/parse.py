"""Feed bytes to Articles with feedparser. Synchronous and CPU-bound: callers run it in a thread."""

from __future__ import annotations

import calendar
import hashlib
import io
import time
from datetime import UTC, datetime
from typing import Any

import feedparser

from monitor.errors import ParseError
from monitor.feeds.canonical import canonical_url, url_key
from monitor.feeds.html import html_to_text, one_line
from monitor.feeds.sources import FeedSource
from monitor.models import Article

_MAX_TITLE = 500
_MAX_BODY = 200_000


def _when(entry: Any, fetched_at: datetime) -> datetime:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        # dict.get, not entry.get: FeedParserDict maps a missing published_parsed onto
        # updated_parsed with a DeprecationWarning; we try each key in turn ourselves.
        parsed = dict.get(entry, key)
        if isinstance(parsed, time.struct_time):
            try:
                when = datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
            except (OverflowError, ValueError, OSError):
                continue
            # A date in the future is a feed's mistake; it must not hold a story open.
            return min(when, fetched_at)
    return fetched_at


def _body(entry: Any) -> str:
    candidates = [c.get("value", "") for c in entry.get("content", []) or []]
    candidates.append(entry.get("summary", "") or "")
    best = max(candidates, key=len)
    return html_to_text(best)[:_MAX_BODY]


def article_id(source: str, url: str, guid: str, title: str, body: str) -> str:
    """A stable id. The page's URL when it has one, whatever feed it came through: the same page
    seen twice is one id, so the Kafka runtime's exact dedupe (a table partitioned by article id)
    finds it in the same partition. Otherwise the feed's GUID, otherwise the content."""
    if url:
        key = "url:" + url_key(url)
    elif guid:
        key = f"guid:{source}\0{guid}"
    else:
        key = f"text:{source}\0{title}\0{body}"
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def parse_feed(
    data: bytes, source: FeedSource, fetched_at: datetime, base_url: str = ""
) -> list[Article]:
    """Parse feed bytes into Articles. Raises ParseError when the bytes hold no feed at all;
    a feed that is merely ill-formed but yields entries is accepted (feedparser is lenient)."""
    # Always a stream: given raw bytes, feedparser first tries them as a *file name*, so a server
    # answering "/etc/passwd" would make us parse a local file.
    headers = {"content-location": base_url} if base_url else None
    parsed = feedparser.parse(io.BytesIO(data), response_headers=headers)
    entries = parsed.get("entries", [])
    if not entries:
        # No RSS/Atom root element: garbage, an empty body, or an HTML page (a login wall, an
        # error page served with 200, a site moved to a new feed URL). HTML often parses without
        # a bozo flag, so the missing version, not bozo, decides. A real feed with no items is [].
        if not parsed.get("version"):
            reason = parsed.get("bozo_exception")
            detail = f"{type(reason).__name__}: {reason}" if reason else "no RSS or Atom element"
            raise ParseError(source.name, f"not a feed ({detail})")
        return []
    out: list[Article] = []
    ids: set[str] = set()
    for entry in entries:
        title = one_line(entry.get("title", "") or "")[:_MAX_TITLE]
        body = _body(entry)
        link = (entry.get("link", "") or "").strip()
        guid = (entry.get("id", "") or "").strip()
        if not link and guid.startswith(("http://", "https://")):
            link = guid
        if not title and not body and not link:
            continue
        if not title:
            title = " ".join(body.split()[:12]) or link
        url = canonical_url(link) if link else ""
        aid = article_id(source.name, url, guid, title, body)
        if aid in ids:  # the same page listed twice in one feed is one article
            continue
        ids.add(aid)
        out.append(
            Article(
                id=aid,
                source=source.name,
                url=url,
                guid=guid,
                title=title,
                body=body,
                published=_when(entry, fetched_at),
                fetched_at=fetched_at,
                language=source.language,
                reliability=source.reliability,
                labels=tuple(source.labels),
            )
        )
    return out
