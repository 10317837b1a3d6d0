"""Articles from JSON entry exports: files holding a JSON list of feed entries (``title``,
``link``, ``description``, ``date_published``, ``source``) as feed archivers write them. Used to
replay past news (backtests, benchmarks)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from monitor.errors import ParseError
from monitor.feeds.canonical import canonical_url
from monitor.feeds.html import html_to_text, one_line
from monitor.feeds.parse import article_id
from monitor.models import Article


def source_name(entry: dict[str, Any], path: Path) -> str:
    """The outlet: the host of the entry's feed URL ("feeds.bbci.co.uk"), else the file name."""
    host = urlsplit(str(entry.get("source") or "")).hostname
    return host or path.stem


def entry_article(entry: dict[str, Any], source: str, fetched_at: datetime) -> Article | None:
    link = str(entry.get("link") or "").strip()
    title = one_line(str(entry.get("title") or ""))
    body = html_to_text(str(entry.get("description") or entry.get("summary") or ""))
    if not (title or body or link):
        return None
    url = canonical_url(link) if link else ""
    try:
        published = datetime.fromisoformat(str(entry.get("date_published")))
        published = published if published.tzinfo else published.replace(tzinfo=UTC)
    except ValueError:
        published = fetched_at
    return Article(
        id=article_id(source, url, "", title, body),
        source=source,
        url=url,
        title=title or " ".join(body.split()[:12]) or link,
        body=body,
        published=min(published.astimezone(UTC), fetched_at),
        fetched_at=fetched_at,
        language=str(entry.get("language") or "en").split("-")[0].lower() or "en",
    )


def read_export(path: Path, fetched_at: datetime | None = None) -> Iterator[Article]:
    """Every usable entry of one export file; a file that is not such an export is a ParseError."""
    when = fetched_at or datetime.now(UTC)
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ParseError(str(path), f"not a JSON entry export ({exc})") from None
    if not isinstance(entries, list):
        raise ParseError(str(path), "not a JSON entry export (expected a list of entries)")
    for entry in entries:
        if isinstance(entry, dict):
            article = entry_article(entry, source_name(entry, path), when)
            if article is not None:
                yield article


def read_exports(root: Path, fetched_at: datetime | None = None) -> Iterator[Article]:
    """Every export file under ``root`` (``**/*.json``), in path order."""
    for path in sorted(root.glob("**/*.json")):
        yield from read_export(path, fetched_at)
