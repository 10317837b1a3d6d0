"""``monitor feeds check``: fetch every feed of a list once, with the poller's own fetch and parse
code, and say for each what came back: a quick verdict on a new feed list, or on why a feed went
quiet. Nothing is stored and no validators are sent: every feed is fetched in full."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from monitor.errors import FeedError
from monitor.feeds.fetch import FetchLimits, Validators, fetch
from monitor.feeds.netguard import GuardedSessions
from monitor.feeds.parse import parse_document
from monitor.feeds.sources import FeedSource
from monitor.feeds.websub import discover

STATUSES = ("ok", "not_modified", "error", "timeout")
FAILED = frozenset({"error", "timeout"})
_HTTP_STATUS = re.compile(r"\bHTTP (\d{3})\b")

# What `monitor feeds check --json` prints: one object, described here for tools that read it.
JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "monitor feeds check --json",
    "type": "object",
    "required": ["file", "seconds", "summary", "feeds"],
    "additionalProperties": False,
    "properties": {
        "file": {"type": "string", "description": "The feed list or OPML file checked."},
        "seconds": {"type": "number", "minimum": 0},
        "summary": {
            "type": "object",
            "required": ["feeds", "failed", *STATUSES],
            "additionalProperties": False,
            "properties": {
                key: {"type": "integer", "minimum": 0} for key in ("feeds", "failed", *STATUSES)
            },
        },
        "feeds": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": [
                    "name",
                    "url",
                    "status",
                    "http_status",
                    "entries",
                    "entries_in_feed",
                    "title",
                    "final_url",
                    "content_type",
                    "format",
                    "encoding",
                    "seconds",
                    "errors",
                    "warnings",
                    "websub_hubs",
                ],
                "properties": {
                    "name": {"type": "string"},
                    "url": {"type": "string"},
                    "status": {"enum": list(STATUSES)},
                    "http_status": {
                        "type": ["integer", "null"],
                        "description": "null for file:// feeds and when no answer came",
                    },
                    "entries": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "articles the pipeline would get from this fetch",
                    },
                    "entries_in_feed": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "entries in the document, empty and repeated ones too",
                    },
                    "title": {"type": "string"},
                    "final_url": {"type": "string", "description": "after redirects"},
                    "content_type": {"type": "string"},
                    "format": {
                        "type": "string",
                        "description": "rss20, atom10, rss10, json11, ...",
                    },
                    "encoding": {"type": "string"},
                    "seconds": {"type": "number", "minimum": 0},
                    "errors": {"type": "array", "items": {"type": "string"}},
                    "warnings": {"type": "array", "items": {"type": "string"}},
                    "websub_hubs": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "WebSub hubs the feed advertises (push within seconds "
                        "when MONITOR_WEBSUB_CALLBACK_URL is set)",
                    },
                },
            },
        },
    },
}


@dataclass
class FeedCheck:
    """One feed's verdict. ``errors`` is empty unless ``status`` is error or timeout."""

    name: str
    url: str
    status: str = "error"
    http_status: int | None = None
    entries: int = 0
    entries_in_feed: int = 0
    title: str = ""
    final_url: str = ""
    content_type: str = ""
    format: str = ""
    encoding: str = ""
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    websub_hubs: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status in FAILED


def _message(exc: FeedError) -> str:
    """The error without the "feed 'name': " prefix (the report shows the name already)."""
    text = str(exc)
    prefix = f"feed {exc.feed!r}: "
    return text.removeprefix(prefix)


def _http_status(exc: FeedError) -> int | None:
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return status
    match = _HTTP_STATUS.search(str(exc))
    return int(match[1]) if match else None


async def check_feed(
    session: aiohttp.ClientSession, source: FeedSource, limits: FetchLimits
) -> FeedCheck:
    """Fetch and parse one feed; every failure is in the result, never raised."""
    result = FeedCheck(source.name, source.url)
    started = time.monotonic()
    try:
        got = await fetch(session, source.name, source.url, Validators(), limits)
        result.final_url, result.content_type = got.url, got.content_type
        found = discover(got.body, got.url, got.links) if got.body else None
        if found is not None:
            result.websub_hubs = list(found.hubs)
        if got.url.startswith(("http://", "https://")):
            result.http_status = got.status
        if got.not_modified:
            result.status = "not_modified"
            return result
        parsed = await asyncio.to_thread(
            parse_document,
            got.body,
            source,
            datetime.now(UTC),
            got.url,
            got.content_type,
        )
    except FeedError as exc:
        result.status = exc.outcome if exc.outcome in FAILED else "error"
        result.http_status = result.http_status or _http_status(exc)
        result.errors.append(_message(exc))
        return result
    except Exception as exc:  # a bug must cost one feed's verdict, not the whole check
        result.errors.append(f"internal error: {type(exc).__name__}: {exc}")
        return result
    finally:
        result.seconds = round(time.monotonic() - started, 3)
    result.status = "ok"
    result.entries, result.entries_in_feed = len(parsed.articles), parsed.entries
    result.title, result.format, result.encoding = parsed.title, parsed.version, parsed.encoding
    if parsed.warning:
        result.warnings.append(parsed.warning)
    left_out = parsed.entries - len(parsed.articles)
    if left_out:
        result.warnings.append(
            f"{left_out} of {parsed.entries} entries left out "
            "(no title, text or link, or the same page twice)"
        )
    if not parsed.entries:
        result.warnings.append("no entries")
    return result


async def check_feeds(
    sources: Sequence[FeedSource],
    limits: FetchLimits | None = None,
    concurrency: int = 16,
    progress: Callable[[FeedCheck], None] | None = None,
    allowed: Sequence[str] = (),
    contact_url: str = "",
) -> list[FeedCheck]:
    """Check every feed, ``concurrency`` at a time; results in the order of ``sources``.
    Fetched as the poller fetches: through the address guard, with the same allowances."""
    limits = limits or FetchLimits()
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(sessions: GuardedSessions, source: FeedSource) -> FeedCheck:
        async with gate:
            result = await check_feed(sessions.get(source.private_allowed), source, limits)
        if progress is not None:
            progress(result)
        return result

    async with GuardedSessions(limits, allowed=allowed, contact_url=contact_url) as sessions:
        return list(await asyncio.gather(*(one(sessions, s) for s in sources)))


def summary(results: Sequence[FeedCheck]) -> dict[str, int]:
    counts = Counter(r.status for r in results)
    return {
        "feeds": len(results),
        **{status: counts.get(status, 0) for status in STATUSES},
        "failed": sum(r.failed for r in results),
    }


def to_json(file: str, results: Sequence[FeedCheck], seconds: float) -> dict[str, Any]:
    return {
        "file": file,
        "seconds": round(seconds, 3),
        "summary": summary(results),
        "feeds": [asdict(r) for r in results],
    }
