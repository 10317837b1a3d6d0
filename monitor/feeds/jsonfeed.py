"""JSON Feed (https://jsonfeed.org, versions 1 and 1.1), read into the entry shape feedparser
gives for RSS and Atom, so one code path makes Articles of both.

feedparser 6.0 reads only XML formats, and no maintained library reads JSON Feed; the format is
small (a JSON object with ``items``), so it is read here, defensively: any JSON that is not a
JSON Feed is left to feedparser, which then reports it as not a feed."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

_VERSION_PREFIX = "https://jsonfeed.org/version/"


@dataclass(frozen=True)
class JsonFeed:
    title: str
    version: str  # "json1", "json11": named as feedparser names its formats
    entries: list[dict[str, Any]]


def _starts_an_object(data: bytes) -> bool:
    """The document begins with ``{`` (after a byte order mark and spaces), in whichever of
    UTF-8, -16 or -32 it is written: a cheap test before parsing anything."""
    head = data[:256]
    text = head.decode(json.detect_encoding(head), "ignore")
    return text.lstrip("\ufeff \t\r\n")[:1] == "{"


def read_json_feed(data: bytes, base_url: str = "") -> JsonFeed | None:
    """The document as a JSON Feed, or None when it is not one (XML, garbage, other JSON).
    Relative item URLs are resolved against ``base_url`` (where the document came from)."""
    if not _starts_an_object(data):
        return None
    try:
        doc = json.loads(data)  # bytes: UTF-8, -16 or -32 detected as RFC 8259 says
    except (ValueError, RecursionError):  # RecursionError: nesting thousands deep
        return None
    if not isinstance(doc, dict):
        return None
    version = doc.get("version")
    if not isinstance(version, str) or not version.startswith(_VERSION_PREFIX):
        return None
    items = doc.get("items")
    if not isinstance(items, list):
        items = []
    entries = [_entry(item, base_url) for item in items if isinstance(item, dict)]
    number = version.removeprefix(_VERSION_PREFIX).replace(".", "")
    return JsonFeed(
        title=html.escape(_string(doc.get("title"))),
        version=f"json{number}"[:16],
        entries=entries,
    )


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""


def _entry(item: dict[str, Any], base_url: str) -> dict[str, Any]:
    """One item in feedparser's shape. Plain-text fields are escaped: the parser treats titles
    and bodies as HTML, and a headline saying "x < y" must stay as written."""
    entry: dict[str, Any] = {
        "title": html.escape(_string(item.get("title"))),
        "link": _link(_string(item.get("url")) or _string(item.get("external_url")), base_url),
        # JSON Feed 1.0 allowed a number as the id
        "id": str(item["id"]) if isinstance(item.get("id"), str | int) else "",
    }
    content = [{"value": _string(item.get("content_html"))}]
    if text := _string(item.get("content_text")):
        content.append({"value": html.escape(text).replace("\n", "<br>")})
    entry["content"] = [c for c in content if c["value"]]
    if summary := _string(item.get("summary")):
        entry["summary"] = html.escape(summary)
    for key, field in (("date_published", "published_parsed"), ("date_modified", "updated_parsed")):
        when = _date(item.get(key))
        if when is not None:
            entry[field] = when.utctimetuple()
    return entry


def _link(url: str, base_url: str) -> str:
    url = url.strip()
    if not url or not base_url:
        return url
    try:
        return urljoin(base_url, url)
    except ValueError:  # a base or URL that does not parse: kept as the feed wrote it
        return url


def _date(value: object) -> datetime | None:
    """An RFC 3339 date; one without a zone is taken as UTC."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
