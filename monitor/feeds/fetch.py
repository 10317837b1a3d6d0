"""Fetching feed bytes: http(s) with aiohttp and ``file://`` for local files.

Polite: conditional GET (ETag, Last-Modified), a User-Agent that says who we are, gzip, the
server's ``Cache-Control: max-age`` and ``Retry-After`` passed on to the schedule, permanent
redirects (301, 308) reported so the poller can remember the new URL, 410 Gone reported as such.

Robust against what servers send: every exchange ends within the total timeout, however slowly
the bytes trickle in; the body is capped *after* decompression, read and inflated a bounded
piece at a time, so a gzip bomb costs at most the cap in memory; an empty body, or an HTML page
where a feed should be, is a clear error (naming the feed the page links to, if it does).
"""

from __future__ import annotations

import asyncio
import html
import re
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit
from urllib.request import url2pathname

import aiohttp

from monitor import __version__
from monitor.errors import FetchError
from monitor.feeds.hints import max_age, retry_after

USER_AGENT = f"news-monitor/{__version__} (RSS/Atom poller; conditional GET; honours Retry-After)"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
# What this module inflates itself (see _Inflater); nothing else is asked for.
ACCEPT_ENCODING = "gzip, deflate"
PERMANENT = frozenset({301, 308})
_READ_CHUNK = 64 * 1024
_INFLATE_STEP = 256 * 1024  # most bytes one decompress call may produce


def user_agent(contact_url: str = "") -> str:
    """``news-monitor/<version> (+URL)``: the URL tells a feed's publisher who polls them and
    how to reach the operator."""
    return f"news-monitor/{__version__} (+{contact_url})" if contact_url else USER_AGENT


@dataclass(frozen=True)
class Validators:
    """What the server told us last time, sent back so it can answer 304 Not Modified."""

    etag: str = ""
    last_modified: str = ""


@dataclass(frozen=True)
class Fetched:
    status: int  # 200, or 304 when not modified
    body: bytes
    url: str  # after redirects
    validators: Validators
    content_type: str = ""
    # Where the feed now lives by permanent redirects (301/308) from the URL asked for; ""
    # when it was not moved (or only temporarily: 302, 303, 307).
    moved_to: str = ""
    max_age: float | None = None  # Cache-Control: max-age, seconds
    links: tuple[str, ...] = ()  # the response's Link header values (WebSub discovery)

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class RetryLater(FetchError):
    """429 Too Many Requests or 503 Service Unavailable; ``delay``: the server's Retry-After in
    seconds, None when it gave none."""

    def __init__(self, feed: str, message: str, delay: float | None) -> None:
        super().__init__(feed, message)
        self.delay = delay


class Gone(FetchError):
    """410 Gone: the publisher says the feed will not come back."""


class NotAFeed(FetchError):
    """The server sent a web page; ``feed_url`` is the feed it advertises, "" if none."""

    def __init__(self, feed: str, message: str, feed_url: str = "") -> None:
        super().__init__(feed, message)
        self.feed_url = feed_url


@dataclass(frozen=True)
class FetchLimits:
    total_timeout: float = 30.0  # the whole exchange, body included
    connect_timeout: float = 10.0
    read_timeout: float = 20.0  # longest wait for the next bytes
    max_bytes: int = 20 * 1024 * 1024  # of the body once decompressed
    max_redirects: int = 5


def session_options(limits: FetchLimits, contact_url: str = "") -> dict[str, Any]:
    """The keyword arguments of a feed-fetching ``aiohttp.ClientSession`` (timeouts, headers,
    decompression left to :func:`fetch`), for whoever builds one with a connector of its own."""
    return {
        "timeout": aiohttp.ClientTimeout(
            total=limits.total_timeout,
            sock_connect=limits.connect_timeout,
            sock_read=limits.read_timeout,
        ),
        "headers": {
            "User-Agent": user_agent(contact_url),
            "Accept": ACCEPT,
            "Accept-Encoding": ACCEPT_ENCODING,
        },
        # fetch() inflates gzip/deflate itself, a bounded piece at a time against the cap
        "auto_decompress": False,
    }


def client_session(limits: FetchLimits, contact_url: str = "") -> aiohttp.ClientSession:
    return aiohttp.ClientSession(**session_options(limits, contact_url))


async def fetch(
    session: aiohttp.ClientSession,
    feed: str,
    url: str,
    validators: Validators,
    limits: FetchLimits,
) -> Fetched:
    scheme = urlsplit(url).scheme.lower()
    if scheme == "file":
        return await _fetch_file(feed, url, limits)
    if scheme not in {"http", "https"}:
        raise FetchError(feed, f"unsupported URL scheme {scheme!r}")
    headers = {}
    if validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    try:
        # aiohttp's own total timeout covers the body too; this one also covers our reading and
        # inflating it, so nothing a server does keeps a poll past its limit.
        async with asyncio.timeout(limits.total_timeout):
            return await _get(session, feed, url, headers, validators, limits)
    except TimeoutError as exc:
        raise FetchError(feed, _timeout_message(exc, url, limits), outcome="timeout") from None
    except aiohttp.TooManyRedirects:
        raise FetchError(feed, f"more than {limits.max_redirects} redirects from {url}") from None
    except aiohttp.NonHttpUrlRedirectClientError as exc:
        raise FetchError(feed, f"{url} redirects to {exc}, not an http(s) URL") from None
    except aiohttp.ClientError as exc:
        raise FetchError(feed, f"{type(exc).__name__}: {exc}") from None


def _duration(seconds: float) -> str:
    """A server's delay in words: "120s", "5h", "3d" (a date years ahead: "over a year")."""
    if seconds < 2 * 3600:
        return f"{seconds:.0f}s"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f}h"
    if seconds < 366 * 86400:
        return f"{seconds / 86400:.0f}d"
    return "over a year"


def _timeout_message(exc: BaseException, url: str, limits: FetchLimits) -> str:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return f"timed out connecting to {url} (after {limits.connect_timeout:g}s)"
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return f"timed out reading {url}: no data for {limits.read_timeout:g}s"
    return f"timed out fetching {url}: not complete after {limits.total_timeout:g}s"


async def _get(
    session: aiohttp.ClientSession,
    feed: str,
    url: str,
    headers: dict[str, str],
    validators: Validators,
    limits: FetchLimits,
) -> Fetched:
    async with session.get(
        url, headers=headers, allow_redirects=True, max_redirects=limits.max_redirects
    ) as resp:
        status = resp.status
        moved_to = _moved_to(url, resp)
        if status == 304:
            age = max_age(resp.headers.get("Cache-Control", ""))
            return Fetched(304, b"", str(resp.url), validators, moved_to=moved_to, max_age=age)
        where = str(resp.url) if str(resp.url) == url else f"{url} (redirected to {resp.url})"
        if status == 410:
            raise Gone(feed, f"HTTP 410 Gone from {where}: the publisher has retired the feed")
        if status in (429, 503):
            delay = retry_after(resp.headers.get("Retry-After", ""), time.time())
            when = f"; Retry-After {_duration(delay)}" if delay is not None else ""
            raise RetryLater(feed, f"HTTP {status} {resp.reason or ''} from {where}{when}", delay)
        if status >= 400:
            raise FetchError(feed, f"HTTP {status} {resp.reason or ''} from {where}".strip())
        if not 200 <= status < 300:
            raise FetchError(feed, f"HTTP {status} {resp.reason or ''} from {where}".strip())
        inflate = not getattr(session, "auto_decompress", True)
        body = await _read_capped(resp, feed, limits.max_bytes, inflate)
        content_type = resp.headers.get("Content-Type", "")
        if not body.strip():
            raise FetchError(feed, f"empty response (HTTP {status}) from {where}")
        if _is_html(body):
            raise _web_page(feed, body, str(resp.url), content_type)
        return Fetched(
            status,
            body,
            str(resp.url),
            Validators(resp.headers.get("ETag", ""), resp.headers.get("Last-Modified", "")),
            content_type,
            moved_to,
            max_age(resp.headers.get("Cache-Control", "")),
            tuple(resp.headers.getall("Link", ())),
        )


def _moved_to(url: str, resp: aiohttp.ClientResponse) -> str:
    """The URL reached from ``url`` by permanent redirects only (the chain's leading 301/308
    hops); "" when the first hop was temporary or there was none."""
    hops = list(resp.history)
    moved = ""
    for i, hop in enumerate(hops):
        if hop.status not in PERMANENT:
            break
        moved = str(hops[i + 1].url if i + 1 < len(hops) else resp.url)
    return "" if moved == url else moved


async def _read_capped(
    resp: aiohttp.ClientResponse, feed: str, cap: int, inflate: bool = False
) -> bytes:
    """The body, at most ``cap`` bytes once decompressed. With ``inflate`` (a session that leaves
    decompression to us) gzip and deflate are inflated here at most ``_INFLATE_STEP`` bytes per
    call, so a bomb is refused after inflating ``cap`` bytes, not all of it. Without, aiohttp has
    inflated already and the count is of inflated bytes all the same."""
    encoding = resp.headers.get("Content-Encoding", "").strip().lower() if inflate else ""
    if encoding in ("", "identity"):
        inflater = None
        if resp.content_length is not None and resp.content_length > cap:
            raise FetchError(feed, f"response larger than {cap} bytes ({resp.content_length})")
    else:
        inflater = _Inflater(feed, encoding)
    body = bytearray()
    async for chunk in resp.content.iter_chunked(_READ_CHUNK):
        if inflater is None:
            body += chunk
        else:
            inflater.inflate_into(body, chunk, cap + 1)
        if len(body) > cap:
            raise FetchError(feed, _too_large(cap, encoding))
    if inflater is not None:
        body += inflater.finish()
        if len(body) > cap:
            raise FetchError(feed, _too_large(cap, encoding))
    return bytes(body)


def _too_large(cap: int, encoding: str) -> str:
    return f"response larger than {cap} bytes" + (f" once {encoding}-decoded" if encoding else "")


class _Inflater:
    """Streaming gzip (several members too) and deflate (zlib-wrapped or raw), at most
    ``_INFLATE_STEP`` bytes of output a call into zlib and never past the caller's limit."""

    def __init__(self, feed: str, encoding: str) -> None:
        if encoding not in ("gzip", "x-gzip", "deflate"):
            raise FetchError(feed, f"unsupported Content-Encoding {encoding!r}")
        self.feed = feed
        self.encoding = encoding
        self.gzip = encoding != "deflate"
        self._z: Any = zlib.decompressobj(16 + zlib.MAX_WBITS) if self.gzip else None
        self._done = False

    def inflate_into(self, out: bytearray, data: bytes, limit: int) -> None:
        """Inflate ``data`` onto ``out``, stopping once ``out`` holds ``limit`` bytes."""
        try:
            if self._z is None and data:  # deflate: zlib-wrapped (RFC 9110) or raw (as IIS sends)
                raw = data[0] & 0x0F != 8
                self._z = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
            while data and not self._done and len(out) < limit:
                out += self._z.decompress(data, min(_INFLATE_STEP, limit - len(out)))
                if self._z.eof:
                    data = self._z.unused_data
                    if self.gzip and data.startswith(b"\x1f\x8b"):
                        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)  # the next member
                    else:
                        self._done = True  # trailing bytes after the stream are ignored
                else:
                    data = self._z.unconsumed_tail
        except zlib.error as exc:
            raise FetchError(self.feed, f"cannot decode the {self.encoding} body: {exc}") from None

    def finish(self) -> bytes:
        if self._z is None or self._done:
            return b""
        try:  # a stream cut short keeps what it held: feedparser copes with a cut-off end
            return bytes(self._z.flush())
        except zlib.error as exc:
            raise FetchError(self.feed, f"cannot decode the {self.encoding} body: {exc}") from None


# --- HTML where a feed should be ------------------------------------------------------------

_HTML_START = re.compile(
    rb"^(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]{0,200}\?>\s*)?(?:<!--.{0,2000}?-->\s*)*"
    rb"<(?:!doctype\s+html|html[\s>])",
    re.IGNORECASE | re.DOTALL,
)
_LINK = re.compile(rb"<link\b([^>]{0,2000})>", re.IGNORECASE)
_BASE = re.compile(rb"<base\b([^>]{0,2000})>", re.IGNORECASE)
_ATTR = re.compile(rb"""([a-z][\w:-]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE)
_FEED_TYPES = frozenset(
    {
        "application/rss+xml",
        "application/atom+xml",
        "application/rdf+xml",
        "application/feed+json",
        "application/json",
        "application/xml",
        "text/xml",
    }
)
_HTML_SCAN = 512 * 1024


def _is_html(body: bytes) -> bool:
    """A web page, not a feed: the document starts as HTML (no RSS or Atom does)."""
    return _HTML_START.match(body[:4096]) is not None


def _attrs(tag: bytes) -> dict[str, str]:
    out = {}
    for m in _ATTR.finditer(tag):
        value = next(v for v in m.groups()[1:] if v is not None)
        out[m.group(1).decode("ascii").lower()] = html.unescape(value.decode("utf-8", "replace"))
    return out


def feed_links(page: bytes, page_url: str) -> list[str]:
    """The feeds a web page advertises (``<link rel="alternate" type="application/rss+xml"
    href=...>``, RSS and Atom first), as absolute URLs."""
    page = page[:_HTML_SCAN]
    base = page_url
    if m := _BASE.search(page):
        href = _attrs(m.group(1)).get("href", "").strip()
        if href:
            base = urljoin(page_url, href)
    found: list[tuple[int, str]] = []
    for m in _LINK.finditer(page):
        attrs = _attrs(m.group(1))
        rel = attrs.get("rel", "").lower().split()
        kind = attrs.get("type", "").lower().split(";")[0].strip()
        href = attrs.get("href", "").strip()
        if "alternate" in rel and kind in _FEED_TYPES and href:
            url = urljoin(base, href)
            if urlsplit(url).scheme in ("http", "https") and url not in (u for _, u in found):
                rank = 0 if kind in ("application/rss+xml", "application/atom+xml") else 1
                found.append((rank, url))
    return [url for _, url in sorted(found, key=lambda f: f[0])]


def _web_page(feed: str, body: bytes, url: str, content_type: str) -> NotAFeed:
    links = feed_links(body, url)
    kind = f" ({content_type.split(';')[0].strip()})" if content_type else ""
    if links:
        more = f" (and {len(links) - 1} more)" if len(links) > 1 else ""
        return NotAFeed(
            feed,
            f"not a feed: {url} is a web page{kind}; its feed is at {links[0]}{more}",
            links[0],
        )
    return NotAFeed(feed, f"not a feed: {url} is a web page{kind} that links to no feed")


# --- local files ----------------------------------------------------------------------------


async def _fetch_file(feed: str, url: str, limits: FetchLimits) -> Fetched:
    path = Path(url2pathname(unquote(urlsplit(url).path)))

    def read() -> bytes:
        if path.stat().st_size > limits.max_bytes:
            raise FetchError(feed, f"{path} is larger than {limits.max_bytes} bytes")
        return path.read_bytes()

    try:
        body = await asyncio.to_thread(read)
    except OSError as exc:
        raise FetchError(feed, f"cannot read {path}: {exc.strerror or exc}") from None
    return Fetched(200, body, url, Validators())
