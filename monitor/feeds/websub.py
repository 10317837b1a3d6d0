"""WebSub (W3C Recommendation, once PubSubHubbub): feeds that advertise a hub push their new
entries to us within seconds, instead of waiting for the next poll. Polling carries on as the
fallback; WebSub only makes news arrive sooner.

The pieces, for the runtime to wire:

* :func:`discover` finds a feed's hub(s) and topic (its ``rel="self"`` URL) in the HTTP
  ``Link`` headers of a poll's response, else in the feed document's ``<link>`` elements.
* :meth:`Subscriber.offer` is told after each poll what the feed advertises; the subscriber's
  :meth:`Subscriber.run` loop subscribes (``hub.mode=subscribe`` with a callback URL unique to
  the subscription, a random ``hub.secret`` and ``hub.lease_seconds``), renews before the lease
  runs out, retries failures with backoff, and unsubscribes from hubs no longer wanted.
* :meth:`Subscriber.routes` are the callback's aiohttp routes, ``/websub/{feed}/{token}``:
  GET answers the hub's verification of intent (the challenge is echoed only for the topic of a
  subscription we asked for; otherwise 404), POST takes content distribution: the body is
  passed to ``on_content(feed, body)`` only when its ``X-Hub-Signature`` (sha1, sha256, sha384
  or sha512 HMAC of the raw body with the subscription's secret) is right. A wrong or missing
  signature is still answered 2xx, as the spec allows, and the content ignored.

Subscriptions (secrets included) live in a mapping the runtime provides (an SQLite table), so
they survive restarts: a hub's pushes keep verifying after one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict

from monitor.errors import FeedError
from monitor.feeds.netguard import SessionFor, url_refusal
from monitor.logs import log
from monitor.metrics import Metrics

OnContent = Callable[[str, bytes], Awaitable[None]]

DEFAULT_LEASE = 10 * 86400  # the spec's suggested default
PATH = "/websub/{feed}/{token}"

_ALGORITHMS = frozenset({"sha1", "sha256", "sha384", "sha512"})
# The spec's alphabet for hub.challenge; a length limit keeps the echo harmless.
_CHALLENGE = re.compile(r"^[+\-./0-9=A-Z_a-z]{1,512}$")

# --- discovery ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Discovery:
    hubs: tuple[str, ...]
    topic: str  # the rel="self" URL; the fetched URL when the feed gives none


_LINK_VALUE = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]*)*)")
_LINK_PARAM = re.compile(r";\s*([A-Za-z0-9*!#$&+.^_`|~-]+)\s*(?:=\s*(\"[^\"]*\"|[^;,\s]*))?")
_LINK_TAG = re.compile(r"<(?:[A-Za-z_][\w.-]*:)?link\b([^>]*)>", re.IGNORECASE)
_ATTR = re.compile(r"([A-Za-z_:][\w:.-]*)\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s\"'>/]+)")
_FIRST_ENTRY = re.compile(r"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s>/]", re.IGNORECASE)
_LAST_ENTRY_END = re.compile(r"</(?:[A-Za-z_][\w.-]*:)?(?:item|entry)\s*>", re.IGNORECASE)


def parse_link_headers(values: Iterable[str]) -> list[tuple[str, frozenset[str]]]:
    """``Link`` header values (RFC 8288) as (URL, rel values) pairs."""
    out = []
    for value in values:
        for match in _LINK_VALUE.finditer(value):
            rels: set[str] = set()
            for name, raw in _LINK_PARAM.findall(match.group(2)):
                if name.lower() == "rel":
                    rels.update(raw.strip('"').lower().split())
            out.append((match.group(1).strip(), frozenset(rels)))
    return out


def _document_links(body: bytes) -> list[tuple[str, frozenset[str]]]:
    """The ``<link rel=... href=...>`` elements of a feed (or HTML page) outside its entries:
    an entry's own links (Blogger gives each a rel="self") are not the feed's."""
    text = body.decode("utf-8", errors="replace")
    first = _FIRST_ENTRY.search(text)
    parts = [text[: first.start()] if first else text]
    if first:
        last = None
        for match in _LAST_ENTRY_END.finditer(text, first.start()):
            last = match
        if last is not None:
            parts.append(text[last.end() :])
    out = []
    for part in parts:
        for tag in _LINK_TAG.finditer(part):
            attrs = {k.lower(): html.unescape(v.strip("\"'")) for k, v in _ATTR.findall(tag[1])}
            rels = frozenset(attrs.get("rel", "").lower().split())
            if "href" in attrs and rels:
                out.append((attrs["href"].strip(), rels))
    return out


def discover(body: bytes, url: str, link_headers: Sequence[str] = ()) -> Discovery | None:
    """The hubs and topic a fetched feed advertises, None when it names no hub. HTTP ``Link``
    headers first, then the document's own links, as the spec orders discovery; relative URLs
    resolve against ``url`` (the URL fetched, after redirects)."""
    for links in (parse_link_headers(link_headers), _document_links(body)):
        hubs = [urljoin(url, href) for href, rels in links if "hub" in rels and href]
        if hubs:
            selfs = [urljoin(url, href) for href, rels in links if "self" in rels and href]
            unique = tuple(dict.fromkeys(hubs))
            return Discovery(hubs=unique, topic=selfs[0] if selfs else url)
    return None


# --- signatures ---------------------------------------------------------------------------


def sign(body: bytes, secret: str, method: str = "sha256") -> str:
    """An ``X-Hub-Signature`` value, as a hub computes it."""
    if method not in _ALGORITHMS:
        raise ValueError(f"unknown signature method {method!r}")
    return f"{method}={hmac.new(secret.encode(), body, method).hexdigest()}"


def signature_ok(header: str | None, body: bytes, secret: str) -> bool:
    """Whether ``X-Hub-Signature`` is a right HMAC of ``body`` under ``secret``, with the
    method it names (sha1, sha256, sha384 or sha512)."""
    if not header or not secret:
        return False
    method, _, digest = header.strip().partition("=")
    algorithm = method.strip().lower()
    if algorithm not in _ALGORITHMS:
        return False
    expected = hmac.new(secret.encode(), body, algorithm).hexdigest().encode()
    return hmac.compare_digest(expected, digest.strip().lower().encode("utf-8", "replace"))


# --- subscriptions ------------------------------------------------------------------------

State = Literal["subscribing", "active", "denied"]


class Subscription(BaseModel):
    """One feed's subscription, as stored. ``token`` makes the callback URL unguessable and
    unique to this subscription; ``secret`` signs what the hub pushes."""

    model_config = ConfigDict(frozen=True)
    feed: str
    hub: str
    topic: str
    token: str
    secret: str
    allow_private: bool = False
    state: State = "subscribing"
    lease_seconds: int = 0  # as the hub granted it
    expires_at: float = 0.0  # unix time; 0 until verified
    verified_at: float = 0.0
    next_attempt: float = 0.0  # when the loop next sends a (re)subscription request
    attempts: int = 0  # requests since the last verification
    last_error: str = ""


@dataclass
class _Leaving:
    sub: Subscription
    until: float  # forget it after this (an unsubscription the hub never verifies)
    sent: bool = False


class Subscriber:
    """Our side of WebSub: subscribes, renews, verifies intents, takes signed content."""

    def __init__(
        self,
        callback_base: str,
        store: MutableMapping[str, Subscription],
        on_content: OnContent,
        sessions: SessionFor,
        *,
        lease_seconds: int = DEFAULT_LEASE,
        renew_margin: float = 86400.0,
        verify_timeout: float = 300.0,
        retry_max: float = 3600.0,
        denied_retry: float = 86400.0,
        allow_http_hubs: bool = False,
        max_bytes: int = 20 * 1024 * 1024,
        on_change: Callable[[], None] | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``callback_base``: the URL at which the hubs reach this process's HTTP endpoint (the
        routes are served under it at ``/websub/...``). ``store``: subscriptions by feed name.
        ``on_content(feed, body)``: a pushed feed document, signature checked. ``sessions``:
        the (guarded) session for a feed, by whether it may reach private addresses.
        ``on_change``: called after the store changes (an SQLite store's commit)."""
        why = url_refusal(callback_base)
        if why is not None:
            raise ValueError(f"WebSub callback base {callback_base!r}: {why}")
        self.callback_base = callback_base.rstrip("/")
        self.store = store
        self.on_content = on_content
        self.sessions = sessions
        self.lease_seconds = lease_seconds
        self.renew_margin = renew_margin
        self.verify_timeout = verify_timeout
        self.retry_max = retry_max
        self.denied_retry = denied_retry
        self.allow_http_hubs = allow_http_hubs
        self.max_bytes = max_bytes
        self.on_change = on_change
        self.clock = clock
        self._leaving: dict[str, _Leaving] = {}  # by token
        self._wake = asyncio.Event()
        metrics = metrics if metrics is not None else Metrics()
        self.notifications = metrics.websub_notifications
        self.requests = metrics.websub_requests
        self.verifications = metrics.websub_verifications
        self._states = metrics.websub_active

    # --- what the runtime calls ---------------------------------------------------------

    def callback_url(self, sub: Subscription) -> str:
        return f"{self.callback_base}/websub/{quote(sub.feed, safe='')}/{sub.token}"

    def offer(self, feed: str, found: Discovery | None, allow_private: bool = False) -> None:
        """What a feed advertised at its last poll (None: no hub). Starts a subscription for a
        new hub or topic, leaves the old one, and does nothing when nothing changed. Call it
        after each poll that got the feed (not after a 304)."""
        current = self.store.get(feed)
        hub = self._choose_hub(feed, found.hubs) if found else None
        if found is None or hub is None:
            if current is not None:
                self._leave(current)
            return
        if current is not None and (current.hub, current.topic, current.allow_private) == (
            hub,
            found.topic,
            allow_private,
        ):
            return
        if current is not None:
            self._leave(current)
        sub = Subscription(
            feed=feed,
            hub=hub,
            topic=found.topic,
            token=secrets.token_urlsafe(24),
            secret=secrets.token_urlsafe(32),  # the spec caps it at 200 bytes
            allow_private=allow_private,
            next_attempt=self.clock(),
        )
        self._save(sub)
        log.info("websub_subscribing", feed=feed, hub=hub, topic=found.topic)

    def retain(self, feeds: Iterable[str]) -> None:
        """Unsubscribe every feed not named (removed from the feed list, or WebSub turned off
        for it). Call it once at start-up with the feeds that use WebSub."""
        keep = set(feeds)
        for feed in list(self.store):
            if feed not in keep:
                self._leave(self.store[feed])

    def active(self, feed: str) -> bool:
        """Whether the hub confirmed a subscription that has not yet run out."""
        sub = self.store.get(feed)
        return sub is not None and sub.state == "active" and sub.expires_at > self.clock()

    def routes(self) -> list[web.RouteDef]:
        """The callback's routes, to add to the process's aiohttp app."""
        return [web.get(PATH, self._verify), web.post(PATH, self._receive)]

    def app(self) -> web.Application:
        """The callback as an app of its own, for a listener apart from ``/metrics`` (which
        need not face the hubs)."""
        application = web.Application()
        application.add_routes(self.routes())
        return application

    async def run(self, stop: asyncio.Event) -> None:
        """Send due (re)subscription and unsubscription requests until ``stop`` is set."""
        while not stop.is_set():
            self._wake.clear()
            try:
                await self.tick()
            except Exception:  # a bug here must not end WebSub for the process
                log.exception("websub_tick_crashed")
            wait = min(max(self._next_due() - self.clock(), 0.05), 60.0)
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            try:
                await asyncio.wait(waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await waiter

    async def tick(self) -> None:
        """One round: every request that is due, sent at once."""
        now = self.clock()
        jobs: list[Awaitable[None]] = []
        for feed in list(self.store):
            sub = self.store.get(feed)
            if sub is None:
                continue
            if sub.state == "active" and sub.expires_at <= now:
                sub = sub.model_copy(update={"state": "subscribing", "expires_at": 0.0})
                self._save(sub, wake=False)
                log.warning("websub_lease_expired", feed=feed, hub=sub.hub)
            if sub.next_attempt <= now:
                if sub.state == "denied":  # try again, long after a denial
                    sub = sub.model_copy(update={"state": "subscribing"})
                    self._save(sub, wake=False)
                jobs.append(self._subscribe(sub))
        for token, leaving in list(self._leaving.items()):
            if leaving.until <= now:
                del self._leaving[token]
            elif not leaving.sent:
                leaving.sent = True
                jobs.append(self._unsubscribe(leaving.sub))
        if jobs:
            await asyncio.gather(*jobs)

    # --- requests to hubs ---------------------------------------------------------------

    def _choose_hub(self, feed: str, hubs: Sequence[str]) -> str | None:
        for hub in hubs:
            parts = urlsplit(hub)
            if parts.scheme.lower() == "http" and not self.allow_http_hubs:
                # the spec: favour https for hubs, even when advertised as http
                hub = urlunsplit(("https", *parts[1:]))
            if url_refusal(hub) is None:
                return hub
        log.info("websub_no_usable_hub", feed=feed, hubs=list(hubs))
        return None

    def _margin(self, lease: float) -> float:
        return min(self.renew_margin, lease / 2)

    async def _subscribe(self, sub: Subscription) -> None:
        now = self.clock()
        if sub.state == "subscribing" and sub.attempts and not sub.last_error:
            # the hub took the request but never verified it: most often the callback URL
            # does not reach this process from outside
            log.warning(
                "websub_not_verified",
                feed=sub.feed,
                hub=sub.hub,
                callback=self.callback_url(sub),
                attempts=sub.attempts,
            )
        attempts = sub.attempts + 1
        # How long to wait for the hub's verification before asking again: longer each time.
        wait = min(
            self.verify_timeout * 2 ** min(attempts - 1, 10),
            max(self.retry_max, self.verify_timeout),
        )
        # Saved before the request: a hub may verify before it even answers, and that
        # verification's schedule (renewal before expiry) must not be overwritten by this one.
        self._save(
            sub.model_copy(update={"next_attempt": now + wait, "attempts": attempts}), wake=False
        )
        error = await self._post(sub, "subscribe")
        current = self.store.get(sub.feed)
        if current is None or current.token != sub.token:
            return  # replaced or left meanwhile
        if error is None:
            if current.last_error:
                self._save(current.model_copy(update={"last_error": ""}), wake=False)
            return
        delay = min(60.0 * 2 ** min(max(current.attempts - 1, 0), 10), self.retry_max)
        self._save(
            current.model_copy(update={"next_attempt": now + delay, "last_error": error}),
            wake=False,
        )
        log.warning(
            "websub_subscribe_failed", feed=sub.feed, hub=sub.hub, error=error, retry_in=delay
        )

    async def _unsubscribe(self, sub: Subscription) -> None:
        error = await self._post(sub, "unsubscribe")
        if error is not None:
            log.info("websub_unsubscribe_failed", feed=sub.feed, hub=sub.hub, error=error)

    async def _post(self, sub: Subscription, mode: str) -> str | None:
        """Send a request to the hub; the error, or None when it accepted (2xx)."""
        form = {"hub.callback": self.callback_url(sub), "hub.mode": mode, "hub.topic": sub.topic}
        if mode == "subscribe":
            form["hub.lease_seconds"] = str(self.lease_seconds)
            form["hub.secret"] = sub.secret
        try:
            session = self.sessions(sub.allow_private)
            async with session.post(
                sub.hub, data=form, headers={"Accept": "*/*"}, allow_redirects=True
            ) as resp:
                if 200 <= resp.status < 300:
                    self.requests.labels(mode, "ok").inc()
                    return None
                detail = (await resp.content.read(300)).decode("utf-8", errors="replace")
                error = f"HTTP {resp.status} from hub: {' '.join(detail.split())[:200]}".strip()
        except TimeoutError:
            error = f"timed out sending {mode} to {sub.hub}"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        self.requests.labels(mode, "error").inc()
        return error

    # --- the callback -------------------------------------------------------------------

    def _find(self, request: web.Request) -> tuple[Subscription | None, _Leaving | None]:
        feed, token = request.match_info["feed"], request.match_info["token"]
        sub = self.store.get(feed)
        if sub is not None and hmac.compare_digest(sub.token.encode(), token.encode()):
            return sub, None
        leaving = self._leaving.get(token)
        if leaving is not None and leaving.sub.feed == feed:
            return None, leaving
        return None, None

    async def _verify(self, request: web.Request) -> web.StreamResponse:
        """The hub verifies an intent (subscribe, unsubscribe) or tells of a denial."""
        query = request.query
        mode = query.get("hub.mode", "")
        topic = query.get("hub.topic", "")
        challenge = query.get("hub.challenge", "")
        sub, leaving = self._find(request)
        now = self.clock()
        if mode == "denied" and sub is not None and _same_topic(topic, sub.topic):
            reason = query.get("hub.reason", "")[:200]
            self._save(
                sub.model_copy(
                    update={
                        "state": "denied",
                        "expires_at": 0.0,
                        "next_attempt": now + self.denied_retry,
                        "last_error": f"denied by hub: {reason}".strip(),
                    }
                )
            )
            self.verifications.labels("denied", "accepted").inc()
            log.warning("websub_denied", feed=sub.feed, hub=sub.hub, reason=reason)
            return web.Response(text="ok", content_type="text/plain")
        ok_challenge = bool(_CHALLENGE.match(challenge))
        if (
            mode == "subscribe"
            and sub is not None
            and sub.state in ("subscribing", "active")
            and ok_challenge
            and _same_topic(topic, sub.topic)
        ):
            lease = _lease(query.get("hub.lease_seconds"), self.lease_seconds)
            self._save(
                sub.model_copy(
                    update={
                        "state": "active",
                        "lease_seconds": lease,
                        "expires_at": now + lease,
                        "verified_at": now,
                        "next_attempt": now + lease - self._margin(lease),
                        "attempts": 0,
                        "last_error": "",
                    }
                )
            )
            self.verifications.labels(mode, "accepted").inc()
            log.info("websub_subscribed", feed=sub.feed, hub=sub.hub, lease=lease)
            return _echo(challenge)
        if (
            mode == "unsubscribe"
            and leaving is not None
            and ok_challenge
            and _same_topic(topic, leaving.sub.topic)
        ):
            self._leaving.pop(leaving.sub.token, None)
            self.verifications.labels(mode, "accepted").inc()
            log.info("websub_unsubscribed", feed=leaving.sub.feed, hub=leaving.sub.hub)
            return _echo(challenge)
        self.verifications.labels(mode if mode in _MODES else "other", "refused").inc()
        log.info("websub_verification_refused", path=request.path, mode=mode, topic=topic)
        raise web.HTTPNotFound()

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        """Content distribution: a feed document (often only its new entries), signed."""
        sub, _ = self._find(request)
        feed = request.match_info["feed"]
        if sub is None or sub.state == "denied":
            self.notifications.labels("-" if sub is None else feed, "gone").inc()
            # 410: the hub may end a subscription we no longer have
            return web.Response(status=410, text="no such subscription", content_type="text/plain")
        body = await _read_capped(request, self.max_bytes)
        if body is None:
            self.notifications.labels(feed, "too_large").inc()
            log.warning("websub_content_too_large", feed=feed, cap=self.max_bytes)
            return web.Response(status=413, text="too large", content_type="text/plain")
        header = request.headers.get("X-Hub-Signature")
        if not signature_ok(header, body, sub.secret):
            outcome = "bad_signature" if header else "unsigned"
            self.notifications.labels(feed, outcome).inc()
            log.warning("websub_content_ignored", feed=feed, reason=outcome, bytes=len(body))
            # the spec: ignore it, but a 2xx answer tells a forger nothing
            return web.Response(status=202, text="accepted", content_type="text/plain")
        try:
            await self.on_content(feed, body)
        except FeedError as exc:
            # Signed, but no feed in it (an entity bomb, garbage): pushing it again will not
            # help, so the hub is told it arrived; the next poll reads the feed itself.
            self.notifications.labels(feed, "unreadable").inc()
            log.warning("websub_content_unreadable", feed=feed, bytes=len(body), error=str(exc))
            return web.Response(status=202, text="accepted", content_type="text/plain")
        except Exception:
            self.notifications.labels(feed, "error").inc()
            log.exception("websub_content_failed", feed=feed, bytes=len(body))
            return web.Response(status=500, text="error", content_type="text/plain")
        self.notifications.labels(feed, "ok").inc()
        log.info("websub_content", feed=feed, bytes=len(body))
        return web.Response(status=202, text="accepted", content_type="text/plain")

    # --- state --------------------------------------------------------------------------

    def _save(self, sub: Subscription, wake: bool = True) -> None:
        self.store[sub.feed] = sub
        if self.on_change is not None:
            self.on_change()
        self.export()
        if wake:
            self._wake.set()

    def _leave(self, sub: Subscription) -> None:
        del self.store[sub.feed]
        if self.on_change is not None:
            self.on_change()
        self.export()
        if sub.state != "denied":
            until = self.clock() + 2 * self.verify_timeout
            self._leaving[sub.token] = _Leaving(sub, until)
            self._wake.set()
        log.info("websub_leaving", feed=sub.feed, hub=sub.hub, topic=sub.topic)

    def export(self) -> None:
        """Subscriptions by state, as a gauge (a lease that ran out counts as subscribing)."""
        counts = dict.fromkeys(("subscribing", "active", "denied"), 0)
        now = self.clock()
        for sub in self.store.values():
            expired = sub.state == "active" and sub.expires_at <= now
            counts["subscribing" if expired else sub.state] += 1
        for state, n in counts.items():
            self._states.labels(state).set(n)

    def _next_due(self) -> float:
        times = [s.next_attempt for s in self.store.values()]
        times += [s.expires_at for s in self.store.values() if s.state == "active"]
        times += [lv.until for lv in self._leaving.values()]
        times += [self.clock() for lv in self._leaving.values() if not lv.sent]
        return min(times, default=self.clock() + 60.0)


_MODES = ("subscribe", "unsubscribe", "denied")


def _same_topic(a: str, b: str) -> bool:
    return bool(a) and (a == b or unquote(a) == unquote(b))


def _lease(raw: str | None, default: int) -> int:
    try:
        lease = int(raw) if raw is not None else default
    except ValueError:
        lease = default
    return max(1, lease)


def _echo(challenge: str) -> web.Response:
    # A safe media type and nosniff: the echo must not be a reflected-XSS vector.
    return web.Response(
        text=challenge,
        content_type="text/plain",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"},
    )


async def _read_capped(request: web.Request, cap: int) -> bytes | None:
    if request.content_length is not None and request.content_length > cap:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
