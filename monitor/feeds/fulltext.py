"""Full text for feeds that carry only a teaser (a feed's ``fetch_article: true``).

For each article, fetch its page and extract the main text with trafilatura; when the
extraction is longer than the teaser it replaces the body (or, when the teaser is not part of
the page, follows it). Fetching is polite and bounded: a few pages at a time overall, one at a
time per host with a pause between two requests to the same host, timeouts and a size cap.
Extraction is CPU work: it runs in threads, a bounded number at once.

Nothing here loses an article: any failure (network, HTTP status, not HTML, nothing extracted,
a bug) keeps the teaser, and is counted and logged. Pages already fetched are remembered (a
size-bounded cache by URL), so a feed that changes does not have all its pages fetched again.

Fetch with a guarded session (:mod:`monitor.feeds.netguard`): article URLs come from the feed.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from monitor.feeds.netguard import is_refusal
from monitor.logs import log
from monitor.metrics import Metrics
from monitor.models import Article

HTML_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"
_HTML_TYPES = ("text/html", "application/xhtml+xml", "application/xml", "text/xml", "text/plain")
_MAX_BODY = 200_000  # as parse.py caps feed bodies

_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u200b]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
# Words teasers end with when they stop short of the article ("…" and "[...]" are not words).
_TRAILERS = ("read more", "continue reading", "more")
_WORDS = re.compile(r"\w+")


@dataclass(frozen=True)
class FullTextLimits:
    concurrency: int = 8  # pages fetched at once, all hosts together
    per_host: int = 1  # pages fetched at once from one host
    host_delay: float = 1.0  # seconds between the end of one request to a host and the next
    extractions: int = 2  # extractions running at once (threads)
    total_timeout: float = 20.0
    connect_timeout: float = 10.0
    read_timeout: float = 15.0
    max_bytes: int = 5 * 1024 * 1024  # a page larger than this (decompressed) is not read
    max_body: int = _MAX_BODY
    # Less text than this is not an article (a page without one yields its menu or a notice);
    # it is ignored, so a title-only feed's empty body never gets a page's crumbs.
    min_chars: int = 150
    cache_chars: int = 20_000_000  # extracted text kept, by URL, across polls
    retry_after: float = 3600.0  # a page that failed is tried again after this long
    # One enrich() call's time: pages not started by then keep their teasers (and are tried
    # at the next poll), so a feed with a hundred new links does not hold its poll for long.
    budget: float = 300.0


class Outcome:
    """Metric labels, one per way a page can go."""

    EXTENDED = "extended"  # the body now has the full text
    NO_GAIN = "no_gain"  # extracted, but no longer than the teaser: teaser kept
    EMPTY = "empty"  # nothing (or too little to be an article) extracted
    CACHED = "cached"  # full text from an earlier poll
    SKIPPED = "skipped"  # no http(s) URL, already known downstream, or failed recently
    HTTP_ERROR = "http_error"
    NOT_HTML = "not_html"
    TOO_LARGE = "too_large"
    TIMEOUT = "timeout"
    DEADLINE = "deadline"  # the call's budget ran out before the page's turn came
    REFUSED = "refused"  # the address guard refused the URL or a redirect
    ERROR = "error"


class PageError(Exception):
    def __init__(self, outcome: str, message: str) -> None:
        self.outcome = outcome
        super().__init__(message)


class _Host:
    __slots__ = ("gate", "next_at", "users")

    def __init__(self, per_host: int) -> None:
        self.gate = asyncio.Semaphore(per_host)
        self.next_at = 0.0  # monotonic time before which no request starts
        self.users = 0


class _Cache:
    """URL -> extracted text ("" when the page failed), least recently used out first, bounded
    by total characters."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.chars = 0
        self.items: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def get(self, url: str) -> tuple[str, float] | None:
        item = self.items.get(url)
        if item is not None:
            self.items.move_to_end(url)
        return item

    def put(self, url: str, text: str) -> None:
        old = self.items.pop(url, None)
        if old is not None:
            self.chars -= len(old[0]) + len(url)
        self.items[url] = (text, time.monotonic())
        self.chars += len(text) + len(url)
        while self.chars > self.max_chars and self.items:
            key, (gone, _) = self.items.popitem(last=False)
            self.chars -= len(gone) + len(key)


def clean_text(text: str) -> str:
    """Control characters out, spaces collapsed, blank lines dropped."""
    text = _CONTROL.sub("", text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _words(text: str) -> str:
    return " ".join(_WORDS.findall(text.lower()))


def extract_text(html: bytes | str, url: str = "", title: str = "") -> str:
    """The main text of a page ('' when none is found). Synchronous and CPU-bound: callers run
    it in a thread. A first line that repeats the headline is dropped (rules match the title on
    its own)."""
    import trafilatura  # here: 0.1 s of imports (lxml, ...) only for processes that use it

    extracted = trafilatura.extract(
        html,
        url=url or None,
        output_format="txt",
        include_comments=False,
        include_tables=False,
        include_images=False,
        include_links=False,
        favor_precision=True,
        deduplicate=False,
        with_metadata=False,
    )
    text = clean_text(extracted or "")
    if title and text:
        first, _, rest = text.partition("\n")
        if _words(first) == _words(title):
            text = rest
    return text


def merge_body(teaser: str, full: str, max_body: int = _MAX_BODY) -> str | None:
    """The new body for an article whose page yielded ``full``; None to keep the teaser.

    The full text replaces the teaser when the teaser is a part of it (its lead, usually cut
    short with "…" or "Read more"); otherwise the teaser (a summary written for the feed) is
    kept in front of it."""
    if len(full) <= len(teaser):
        return None
    lead = _words(teaser)
    for trailer in _TRAILERS:
        if lead == trailer or lead.endswith(" " + trailer):
            lead = lead[: -len(trailer)].rstrip()
    if not lead or _words(full).find(lead[:200]) >= 0:
        return full[:max_body]
    return f"{teaser}\n{full}"[:max_body]


class FullText:
    """Fetches the pages of teaser-only feeds' articles. One per process: its per-host gates
    and its cache are shared by every feed.

    ``await full_text.enrich(session, feed_name, articles)`` returns the articles in the same
    order, each with its full text where that could be had, otherwise as it came."""

    def __init__(
        self,
        limits: FullTextLimits | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.limits = limits or FullTextLimits()
        self._gate = asyncio.Semaphore(self.limits.concurrency)
        self._cpu = asyncio.Semaphore(self.limits.extractions)
        self._hosts: dict[str, _Host] = {}
        self._cache = _Cache(self.limits.cache_chars)
        self._timeout = aiohttp.ClientTimeout(
            total=self.limits.total_timeout,
            sock_connect=self.limits.connect_timeout,
            sock_read=self.limits.read_timeout,
        )
        metrics = metrics if metrics is not None else Metrics()
        self.pages = metrics.fulltext_pages
        self.seconds = metrics.fulltext_seconds

    async def enrich(
        self,
        session: aiohttp.ClientSession,
        feed: str,
        articles: Sequence[Article],
        skip: Callable[[Article], bool] | None = None,
    ) -> list[Article]:
        """The articles with full text where it could be had. Never raises for a page: each
        failure keeps that article's teaser. ``skip`` says which articles need no page (those
        already processed downstream, say): they come back unchanged."""
        deadline = time.monotonic() + self.limits.budget
        results = await asyncio.gather(
            *(self._one(session, feed, a, skip, deadline) for a in articles)
        )
        return list(results)

    async def _one(
        self,
        session: aiohttp.ClientSession,
        feed: str,
        article: Article,
        skip: Callable[[Article], bool] | None,
        deadline: float,
    ) -> Article:
        outcome = Outcome.ERROR
        try:
            outcome, body = await self._body(session, article, skip, deadline)
        except PageError as exc:
            outcome, body = exc.outcome, None
            log.info(
                "fulltext_failed", feed=feed, url=article.url, outcome=exc.outcome, error=str(exc)
            )
        except Exception as exc:  # a bug or an unforeseen page must not lose the article
            body = None
            log.warning(
                "fulltext_crashed",
                feed=feed,
                url=article.url,
                error=f"{type(exc).__name__}: {exc}",
                exc_info=True,
            )
        self.pages.labels(feed, outcome).inc()
        if body is None:
            return article
        return article.model_copy(update={"body": body})

    async def _body(
        self,
        session: aiohttp.ClientSession,
        article: Article,
        skip: Callable[[Article], bool] | None,
        deadline: float,
    ) -> tuple[str, str | None]:
        url = article.url
        if urlsplit(url).scheme.lower() not in {"http", "https"} or (skip and skip(article)):
            return Outcome.SKIPPED, None
        cached = self._cache.get(url)
        if cached is not None:
            text, at = cached
            if text:
                body = merge_body(article.body, text, self.limits.max_body)
                return (Outcome.CACHED if body else Outcome.NO_GAIN), body
            if time.monotonic() - at < self.limits.retry_after:
                return Outcome.SKIPPED, None
        try:
            page, charset = await self._fetch(session, url, deadline)
            started = time.monotonic()
            text = await self._extract(page, charset, url, article.title)
            self.seconds.labels("extract").observe(time.monotonic() - started)
        except PageError as exc:
            if exc.outcome != Outcome.DEADLINE:  # not the page's fault: next poll tries it
                self._cache.put(url, "")
            raise
        if len(text) < self.limits.min_chars:
            text = ""
        self._cache.put(url, text)
        if not text:
            return Outcome.EMPTY, None
        body = merge_body(article.body, text, self.limits.max_body)
        return (Outcome.EXTENDED if body else Outcome.NO_GAIN), body

    async def _fetch(
        self, session: aiohttp.ClientSession, url: str, deadline: float
    ) -> tuple[bytes, str | None]:
        key = (urlsplit(url).netloc or url).lower()
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host(self.limits.per_host)
        host.users += 1
        try:
            # the host's turn first, then a slot overall: waiting for a busy host must not
            # hold a slot that another host could use
            async with host.gate:
                delay = max(host.next_at - time.monotonic(), 0.0)
                if time.monotonic() + delay > deadline:
                    raise PageError(Outcome.DEADLINE, f"{url}: no time left this poll")
                if delay:
                    await asyncio.sleep(delay)
                async with self._gate:
                    if time.monotonic() > deadline:
                        raise PageError(Outcome.DEADLINE, f"{url}: no time left this poll")
                    started = time.monotonic()
                    try:
                        return await self._get(session, url)
                    finally:
                        host.next_at = time.monotonic() + self.limits.host_delay
                        self.seconds.labels("fetch").observe(time.monotonic() - started)
        finally:
            host.users -= 1
            if host.users == 0:  # idle: forget the host once its pause is over
                asyncio.get_running_loop().call_later(
                    self.limits.host_delay, self._forget_host, key, host
                )

    def _forget_host(self, key: str, host: _Host) -> None:
        if host.users == 0 and self._hosts.get(key) is host:
            del self._hosts[key]

    async def _get(self, session: aiohttp.ClientSession, url: str) -> tuple[bytes, str | None]:
        try:
            async with session.get(
                url,
                headers={"Accept": HTML_ACCEPT},
                timeout=self._timeout,
                allow_redirects=True,
                max_redirects=5,
                # whatever the session does for feeds: aiohttp inflates in bounded steps, and
                # the cap below counts inflated bytes
                auto_decompress=True,
            ) as resp:
                if resp.status >= 400:
                    raise PageError(Outcome.HTTP_ERROR, f"HTTP {resp.status} from {url}")
                ctype = resp.content_type.lower() if resp.content_type else ""
                if ctype and ctype != "application/octet-stream" and ctype not in _HTML_TYPES:
                    raise PageError(Outcome.NOT_HTML, f"{ctype} from {url}")
                length = resp.content_length
                cap = self.limits.max_bytes
                if length is not None and length > cap:
                    raise PageError(Outcome.TOO_LARGE, f"{url}: {length} bytes (cap {cap})")
                chunks: list[bytes] = []
                size = 0
                # counts decompressed bytes: caps compression bombs too
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > cap:
                        raise PageError(Outcome.TOO_LARGE, f"{url}: larger than {cap} bytes")
                    chunks.append(chunk)
                return b"".join(chunks), resp.charset
        except TimeoutError:
            raise PageError(Outcome.TIMEOUT, f"timed out fetching {url}") from None
        except aiohttp.ClientError as exc:
            outcome = Outcome.REFUSED if is_refusal(exc) else Outcome.ERROR
            raise PageError(outcome, f"{type(exc).__name__}: {exc}") from None

    async def _extract(self, page: bytes, charset: str | None, url: str, title: str) -> str:
        html: bytes | str = page
        if charset:
            try:
                html = page.decode(charset)
            except (LookupError, UnicodeDecodeError):
                html = page  # let trafilatura detect it
        async with self._cpu:
            text = await asyncio.to_thread(extract_text, html, url, title)
        return text[: self.limits.max_body]
