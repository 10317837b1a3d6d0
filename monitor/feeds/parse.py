"""Feed bytes to Articles with feedparser (JSON Feed: :mod:`monitor.feeds.jsonfeed`).
Synchronous and CPU-bound: callers run it in a thread.

Feed bytes come from servers we do not control. Before feedparser sees them they are screened
for XML entity bombs (see :func:`entity_bomb`); feedparser itself never reads external entities
(its SAX parser has external general entities switched off and its DOCTYPE rewriting drops
``SYSTEM``/``PUBLIC`` declarations). Titles and bodies are bounded before and after their HTML
is turned into text, and every failure is a :class:`ParseError` naming the feed."""

from __future__ import annotations

import calendar
import hashlib
import io
import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import feedparser

from monitor.errors import ParseError
from monitor.feeds.canonical import canonical_url, url_key
from monitor.feeds.html import clip_markup, html_to_text, one_line
from monitor.feeds.jsonfeed import read_json_feed
from monitor.feeds.sources import FeedSource
from monitor.models import Article

_MAX_TITLE = 500
_MAX_BODY = 200_000
# Raw markup read per title and body: enough for the text kept above, and a 20 MB title is not
# run through the HTML parser for 500 characters of it.
_MAX_RAW_TITLE = 16 * _MAX_TITLE
_MAX_RAW_BODY = 4 * _MAX_BODY
_MAX_URL = 8192
# Entity references may add at most this much text to a document (or its own size, if larger).
_MAX_EXPANSION = 1 << 20

_ENTITY_AT = re.compile(
    rb"""<!ENTITY\s+(?:%\s+)?([^\s"'>%&;]+)\s+(?:"([^"]*)"|'([^']*)'|(?:SYSTEM|PUBLIC)\b)"""
)
_ROOT = re.compile(rb"<\w")
_SUBSET_END = re.compile(rb"\]\s*>")
_REFERENCE = re.compile(rb"[&%]([^\s\"'<>&%;#][^\s\"'<>&%;]{0,127});")


@dataclass(frozen=True)
class ParsedFeed:
    """One fetched document: its Articles and what a person checking the feed wants to see."""

    articles: list[Article]
    title: str  # the feed's own title, one line
    entries: int  # entries in the document as feedparser finds them (before empty/duplicates)
    version: str  # feedparser's name for the format: rss20, atom10, rss10, ... ("" unknown)
    encoding: str  # the character encoding the document was read in
    warning: str = ""  # what feedparser had to forgive: not well-formed, a wrong charset, ...


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


def _text(value: Any, limit: int) -> str:
    return html_to_text(clip_markup(value, limit)) if isinstance(value, str) else ""


def _body(entry: Any) -> str:
    """The longest text among the entry's content and summary (a teaser is often shorter)."""
    candidates = [c.get("value", "") for c in entry.get("content", []) or []]
    candidates.append(entry.get("summary", "") or "")
    texts = [_text(c, _MAX_RAW_BODY) for c in candidates if c]
    return max(texts, key=len, default="")[:_MAX_BODY]


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


def entity_bomb(data: bytes, content_type: str = "") -> str:
    """Why the document's entity declarations are refused ("" when they are harmless).

    feedparser re-declares the "safe" internal entities of a DOCTYPE for its SAX parser and its
    loose parser, and the loose parser expands them without limit: one 100 kB entity referenced
    100,000 times is 10 GB of text (expat, in the SAX parser, stops such documents itself since
    2.4, but then the loose parser takes over). This adds up what every reference in the document
    to an entity declared before its root element would expand to, nested references included,
    and refuses the document when that would add more than 1 MiB (or the document's own size,
    if larger) or an entity refers to itself. A feed without ``<!ENTITY`` declarations, nearly
    every real one, costs a character set conversion (a few ms a megabyte) and one search."""
    data = _as_utf8(data, content_type)  # UTF-16 or -32, EBCDIC, UTF-7: what feedparser reads
    if b"<!ENTITY" not in data:
        return ""
    prolog = _prolog(data)
    values: dict[bytes, bytes] = {}
    at = prolog.find(b"<!ENTITY")
    while at >= 0:  # overlapping: a parameter entity's value may itself declare entities
        match = _ENTITY_AT.match(prolog, at)
        if match:
            values.setdefault(match[1], match[2] or match[3] or b"")
        at = prolog.find(b"<!ENTITY", at + 1)
    if not values:
        return ""
    limit = max(_MAX_EXPANSION, len(data))
    sizes = _expanded_sizes(values, limit)
    if sizes is None:
        return "an entity declaration refers to itself (an XML entity bomb)"
    uses = Counter(m for m in _REFERENCE.findall(data) if m in values)
    added = sum(sizes[name] * count for name, count in uses.items())
    if added > limit:
        return f"its entities would expand to more than {limit:,} bytes (an XML entity bomb)"
    return ""


def _prolog(data: bytes) -> bytes:
    """The document before its root element, where entities can be declared: what feedparser
    takes its declarations from (up to the first ``<name``) and, if that ends inside an entity's
    value, on to the end of the DOCTYPE's internal subset. Declarations quoted in an article
    (a security blog's CDATA example of a billion laughs) are text, not declarations."""
    first = _ROOT.search(data)
    end = first.start() if first else len(data)
    doctype = data.find(b"<!DOCTYPE", 0, end)
    if doctype >= 0:
        subset = _SUBSET_END.search(data, doctype)
        if subset:
            end = max(end, subset.end())
    return data[:end]


def _expanded_sizes(values: dict[bytes, bytes], limit: int) -> dict[bytes, int] | None:
    """Each entity's expanded length, saturated just above ``limit``; None on a cycle."""
    refs = {name: [r for r in _REFERENCE.findall(v) if r in values] for name, v in values.items()}
    sizes: dict[bytes, int] = {}
    open_: set[bytes] = set()
    for root in values:
        stack = [root]
        while stack:
            name = stack[-1]
            if name in sizes:
                stack.pop()
            elif name in open_:  # its references are done: add them up
                total = len(values[name]) + sum(sizes[r] for r in refs[name])
                sizes[name] = min(total, limit + 1)
                open_.discard(name)
                stack.pop()
            else:
                open_.add(name)
                for r in refs[name]:
                    if r in open_:
                        return None
                    if r not in sizes:
                        stack.append(r)
    return sizes


def _as_utf8(data: bytes, content_type: str) -> bytes:
    """The bytes as feedparser's own character-set detection converts them, before parsing."""
    try:
        from feedparser.encodings import convert_to_utf8

        headers = {"content-type": content_type} if content_type else {}
        converted = convert_to_utf8(headers, data, {})
        return converted if isinstance(converted, bytes) else data
    except Exception:  # an internal of feedparser's: without it, the raw bytes are screened
        return data


def parse_feed(
    data: bytes,
    source: FeedSource,
    fetched_at: datetime,
    base_url: str = "",
    content_type: str = "",
) -> list[Article]:
    """Parse feed bytes into Articles. Raises ParseError when the bytes hold no feed at all;
    a feed that is merely ill-formed but yields entries is accepted (feedparser is lenient)."""
    return parse_document(data, source, fetched_at, base_url, content_type).articles


def parse_document(
    data: bytes,
    source: FeedSource,
    fetched_at: datetime,
    base_url: str = "",
    content_type: str = "",
) -> ParsedFeed:
    """:func:`parse_feed`, with the feed's title, format and entry count.

    ``base_url`` (the URL the bytes came from) resolves relative links; ``content_type`` (the
    HTTP Content-Type header) gives the character set when the server names one, as feedparser
    weighs it against the document's own declaration (RFC 3023)."""
    json_feed = read_json_feed(data, base_url)
    if json_feed is not None:
        return _parsed(json_feed.entries, source, fetched_at, json_feed.title, json_feed.version)
    bomb = entity_bomb(data, content_type)
    if bomb:
        raise ParseError(source.name, f"refused: {bomb}")
    headers = {}
    if base_url:
        headers["content-location"] = base_url
    if content_type:
        headers["content-type"] = content_type
    try:
        # Always a stream: given raw bytes, feedparser first tries them as a *file name*, so a
        # server answering "/etc/passwd" would make us parse a local file. Relative URIs inside
        # HTML are not resolved: we keep the text of the HTML, never its links.
        parsed = feedparser.parse(
            io.BytesIO(data), response_headers=headers or None, resolve_relative_uris=False
        )
    except Exception as exc:  # feedparser promises never to raise; a crash is still one feed's
        raise ParseError(source.name, f"unreadable ({type(exc).__name__}: {exc})") from None
    entries = parsed.get("entries", [])
    warning = _warning(parsed, content_type)
    if not entries and not parsed.get("version"):
        # No RSS/Atom root element: garbage, an empty body, or an HTML page (a login wall, an
        # error page served with 200, a site moved to a new feed URL). HTML often parses without
        # a bozo flag, so the missing version, not bozo, decides. A real feed with no items is [].
        reason = parsed.get("bozo_exception")
        detail = f"{type(reason).__name__}: {reason}"[:300] if reason else "no RSS or Atom element"
        raise ParseError(source.name, f"not a feed ({detail})")
    feed = parsed.get("feed", {})
    return _parsed(
        entries,
        source,
        fetched_at,
        feed.get("title", "") or "",
        str(parsed.get("version") or ""),
        str(parsed.get("encoding") or ""),
        warning,
    )


def _parsed(
    entries: list[Any],
    source: FeedSource,
    fetched_at: datetime,
    raw_title: str,
    version: str,
    encoding: str = "utf-8",
    warning: str = "",
) -> ParsedFeed:
    title = one_line(clip_markup(raw_title, _MAX_RAW_TITLE))[:_MAX_TITLE]
    try:
        articles = _articles(entries, source, fetched_at)
    except Exception as exc:  # an entry no one foresaw: this feed's error, not the poller's
        raise ParseError(source.name, f"unreadable entry ({type(exc).__name__}: {exc})") from None
    return ParsedFeed(
        articles=articles,
        title=title,
        entries=len(entries),
        version=version,
        encoding=encoding,
        warning=warning,
    )


def _warning(parsed: Any, content_type: str) -> str:
    """What feedparser had to forgive in a document it read, in words ("" if nothing)."""
    reason = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if reason is None:
        return ""
    text = f"{type(reason).__name__}: {reason}"[:300]
    if isinstance(reason, feedparser.NonXMLContentType):
        # A local file has no Content-Type; a server naming a non-XML one is worth saying.
        return f"served as a non-XML type ({text})" if content_type else ""
    if isinstance(reason, feedparser.ThingsNobodyCaresAboutButMe):
        return text  # a character set that had to be overridden or guessed, a namespace
    return f"not well-formed, read leniently ({text})"


def _articles(entries: list[Any], source: FeedSource, fetched_at: datetime) -> list[Article]:
    out: list[Article] = []
    ids: set[str] = set()
    for entry in entries:
        raw_title = entry.get("title", "") or ""
        title = one_line(clip_markup(raw_title, _MAX_RAW_TITLE))[:_MAX_TITLE]
        body = _body(entry)
        link = (entry.get("link", "") or "").strip()
        if len(link) > _MAX_URL:
            link = ""  # not a page anyone can open; cut short, it would be another page
        guid = (entry.get("id", "") or "").strip()
        if len(guid) > _MAX_URL:  # still the same id next time, without carrying megabytes
            guid = "sha256:" + hashlib.sha256(guid.encode()).hexdigest()
        if not link and guid.startswith(("http://", "https://")):
            link = guid
        if not title and not body and not link:
            continue  # nothing a reader could see, and nothing a rule could match
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
