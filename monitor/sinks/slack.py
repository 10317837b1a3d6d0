"""Alerts posted to Slack: with a bot token (``chat.postMessage``, one thread per story) or with
an incoming webhook (one message per alert, no threading).

A story's first alert starts its thread; escalations, updates and the short closing "resolved"
note are replies in it. A digest (several stories held together) is one message of its own,
never any story's thread, within Slack's block limits however many stories it holds.

Everything in an alert that comes from feeds (titles, snippets, outlet names, URLs) is
untrusted: it is stripped of control and bidi-override characters, capped, and escaped for
Slack's mrkdwn (``&`` ``<`` ``>``), and every mrkdwn text object is sent ``verbatim`` so that a
title such as ``<!channel>`` or ``<https://evil|click>`` cannot ping anyone or forge a link.

Failures map to :class:`monitor.errors.SinkError`; :class:`RetryableSinkError` marks those worth
retrying (HTTP 5xx, connection errors, timeouts) and :class:`SlackRateLimited` carries Slack's
``Retry-After``. Neither messages nor reprs ever contain the bot token or the webhook URL.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
import unicodedata
import weakref
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from monitor.errors import RetryableSinkError, SinkConfigError, SinkError
from monitor.models import Alert, Digest, Level
from monitor.pipeline.alerting import THREAD_RETENTION
from monitor.sinks.base import Sink
from monitor.sinks.render import (
    coverage,
    digest_alerts,
    digest_headline,
    digest_level,
    format_term,
    kind_label,
    plural,
)

# Slack's limits (https://docs.slack.dev/reference/block-kit/blocks).
MAX_BLOCKS = 50
MAX_HEADER = 150
MAX_SECTION = 3000
MAX_CONTEXT_ELEMENTS = 10
MAX_TEXT = 3000  # the notification fallback: Slack allows more, nobody reads more

# Caps on each untrusted field, before escaping (escaping can make it up to 5× longer).
MAX_TITLE = 300
MAX_SNIPPET = 280
MAX_SOURCE = 60
MAX_SOURCES_SHOWN = 10
MAX_URL = 1000
# A link as sent (%-encoded, escaped): a URL of 1000 non-ASCII characters is 6000. Longer is not
# linked: with the escaped title (5 × 300 at most) a headline must fit one section, or cutting
# it left a dangling "<https://…" in the message.
MAX_LINK = 1400
MAX_LABEL = 200

# A digest: a header, one section per story while they fit, then "… and N more". Slack also
# refuses a message whose blocks hold more than ~13,000 characters in all (msg_blocks_too_long,
# undocumented), hence a total budget below that.
MAX_DIGEST_CHARS = 12_000
MAX_DIGEST_SECTION = 2000  # one story: never cut inside its headline's link (see _digest_story)
MAX_DIGEST_TITLE = 200
MAX_DIGEST_LINK = 500  # escaped; a longer URL is not linked in a digest
MAX_DIGEST_WHY = 300
MAX_DIGEST_SOURCES = 5

ELLIPSIS = "…"

EMOJI = {
    Level.none: "⚪",
    Level.low: "🔵",
    Level.medium: "🟡",
    Level.high: "🟠",
    Level.critical: "🔴",
}

# Slack error codes (ok: false) that a later attempt can get past.
RETRYABLE_API_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)

# The SDK logs request URLs at debug level (for a webhook, the URL is the secret): give it a
# logger of its own that never goes below WARNING, whatever the root logger's level.
_SDK_LOG = logging.getLogger("monitor.sinks.slack.sdk")
_SDK_LOG.setLevel(logging.WARNING)


class SlackRateLimited(RetryableSinkError):
    """Slack answered HTTP 429; ``retry_after`` comes from its ``Retry-After`` header."""

    retry_after: float

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, retry_after)


@dataclass(frozen=True)
class SlackConfig:
    """How to reach Slack. A bot token (with its channel) is used when given, as only the Web API
    can thread; otherwise the incoming webhook. Secrets stay :class:`SecretStr` (masked in
    reprs); every error message names settings, never their values."""

    webhook_url: SecretStr | None = None
    bot_token: SecretStr | None = None
    channel: str | None = None  # a channel id (C0123…) or name; required with a bot token
    api_base_url: str = "https://slack.com/api/"
    timeout: float = 10

    def __post_init__(self) -> None:
        # Empty settings (MONITOR_SLACK_BOT_TOKEN=) count as not given.
        if self.webhook_url is not None and not self.webhook_url.get_secret_value().strip():
            object.__setattr__(self, "webhook_url", None)
        if self.bot_token is not None and not self.bot_token.get_secret_value().strip():
            object.__setattr__(self, "bot_token", None)
        if self.channel is not None and not self.channel.strip():
            object.__setattr__(self, "channel", None)
        if self.webhook_url is None and self.bot_token is None:
            raise SinkConfigError(
                "slack: neither a webhook URL nor a bot token given "
                "(set MONITOR_SLACK_WEBHOOK_URL, or MONITOR_SLACK_BOT_TOKEN and "
                "MONITOR_SLACK_CHANNEL)"
            )
        if self.bot_token is not None and self.channel is None:
            raise SinkConfigError(
                "slack: a bot token needs a channel to post to (set MONITOR_SLACK_CHANNEL)"
            )
        if self.webhook_url is not None and not _is_http_url(self.webhook_url.get_secret_value()):
            raise SinkConfigError("slack: the webhook URL must be an http(s) URL")
        if not _is_http_url(self.api_base_url):
            raise SinkConfigError(
                f"slack: the API base URL must be an http(s) URL, not {self.api_base_url!r}"
            )
        if not self.api_base_url.endswith("/"):  # the SDK joins method names onto it
            object.__setattr__(self, "api_base_url", self.api_base_url + "/")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise SinkConfigError(f"slack: timeout must be a positive number, not {self.timeout}")

    @property
    def mode(self) -> str:
        """``"bot"`` (Web API, threaded) or ``"webhook"``."""
        return "bot" if self.bot_token is not None else "webhook"


PRUNE_EVERY = 200  # new threads between sweeps of the thread table


def _ts_seconds(ts: str) -> float:
    try:
        return float(ts)
    except ValueError:
        return float("inf")  # not a Slack ts: keep it rather than guess


class SlackSink(Sink):
    """Posts each alert to Slack as Block Kit.

    With a bot token, a story's first alert starts a message and later ones (escalations,
    updates, the closing "resolved" note) are replies in its thread; an escalation is broadcast
    to the channel when it reaches *critical*. ``threads`` (story id -> the ``ts`` of the story's
    message) is where that is remembered: pass a durable mapping (an SQLite table, a Faust table)
    to keep threading across restarts; the default is an in-memory dict. With only a webhook,
    every alert is a new message.

    A digest is always a message of its own, never a reply and never recorded as a thread: it
    speaks of several stories. A story whose first alert went out in a digest gets its thread
    from its next single alert."""

    name = "slack"

    def __init__(
        self,
        config: SlackConfig,
        threads: MutableMapping[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.config = config
        self.threads: MutableMapping[str, str] = {} if threads is None else threads
        self._session = session
        self._own_session = session is None
        self._web: AsyncWebClient | None = None
        self._webhook: AsyncWebhookClient | None = None
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._new_threads = 0

    def __repr__(self) -> str:
        where = f"channel={self.config.channel!r}" if self.config.mode == "bot" else "webhook"
        return f"SlackSink({self.config.mode}, {where})"

    async def send(self, alert: Alert) -> None:
        message = build_message(alert)
        if self.config.mode == "webhook":
            await self._post_webhook(message)
            return
        # One story at a time: two alerts of one story sent concurrently must not both open it.
        lock = self._locks.get(alert.story_id)
        if lock is None:
            lock = self._locks[alert.story_id] = asyncio.Lock()
        async with lock:
            thread_ts = self.threads.get(alert.story_id)
            broadcast = (
                thread_ts is not None
                and alert.kind == "escalated"
                and alert.level >= Level.critical
            )
            ts = await self._post_message(message, thread_ts=thread_ts, broadcast=broadcast)
            # The first message of a story is its thread's root; but a lone "resolved" note
            # (the story's thread is unknown) is no place for what may follow.
            if thread_ts is None and alert.kind != "resolved":
                self.threads[alert.story_id] = ts
                self._new_threads += 1
                if self._new_threads % PRUNE_EVERY == 0:
                    self.prune(time.time())

    def prune(self, now: float) -> int:
        """Forget threads older than THREAD_RETENTION (a story is closed long before: later
        copies make a new story, with a new thread). A thread's ``ts`` is its post time."""
        cutoff = now - THREAD_RETENTION.total_seconds()
        stale = [k for k, ts in list(self.threads.items()) if _ts_seconds(ts) < cutoff]
        for key in stale:
            del self.threads[key]
        return len(stale)

    async def send_digest(self, digest: Digest) -> None:
        message = build_digest(digest)
        if self.config.mode == "webhook":
            await self._post_webhook(message)
        else:
            await self._post_message(message, thread_ts=None, broadcast=False)

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None
        self._web = None
        self._webhook = None

    # -- transport -------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.timeout)
            )
            self._own_session = True
            self._web = None
            self._webhook = None
        return self._session

    def _web_client(self) -> AsyncWebClient:
        session = self._http()
        if self._web is None:
            assert self.config.bot_token is not None
            self._web = AsyncWebClient(
                token=self.config.bot_token.get_secret_value(),
                base_url=self.config.api_base_url,
                timeout=math.ceil(self.config.timeout),
                session=session,
                logger=_SDK_LOG,
                retry_handlers=[],  # the delivery stage retries, honouring Retry-After
            )
        return self._web

    def _webhook_client(self) -> AsyncWebhookClient:
        session = self._http()
        if self._webhook is None:
            assert self.config.webhook_url is not None
            self._webhook = AsyncWebhookClient(
                url=self.config.webhook_url.get_secret_value(),
                timeout=math.ceil(self.config.timeout),
                session=session,
                logger=_SDK_LOG,
                retry_handlers=[],
            )
        return self._webhook

    async def _post_message(
        self, message: Message, *, thread_ts: str | None, broadcast: bool
    ) -> str:
        assert self.config.channel is not None
        what = "slack: chat.postMessage"
        try:
            response = await self._web_client().chat_postMessage(
                channel=self.config.channel,
                text=message.text,
                blocks=message.blocks,
                thread_ts=thread_ts,
                reply_broadcast=True if broadcast else None,
                unfurl_links=False,
                unfurl_media=False,
                link_names=False,
                parse="none",
            )
        except SlackApiError as exc:
            raw_status = getattr(exc.response, "status_code", None)
            if raw_status is None:  # an aiohttp response, when the JSON was malformed
                raw_status = getattr(exc.response, "status", 0)
            status = raw_status if isinstance(raw_status, int) else 0
            data = getattr(exc.response, "data", None)
            code = _error_code(data.get("error") if isinstance(data, Mapping) else None)
            headers = getattr(exc.response, "headers", None) or {}
            raise _http_error(what, status, code, headers) from None
        except SlackClientError as exc:
            raise SinkError(f"{what} failed: {self._scrub(exc)}") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RetryableSinkError(f"{what} failed: {self._scrub(exc)}") from None
        ts = response.get("ts")
        if not isinstance(ts, str) or not ts:
            raise SinkError(f"{what}: the response carries no message ts")
        return ts

    async def _post_webhook(self, message: Message) -> None:
        what = "slack: webhook"
        body: dict[str, Any] = {
            "text": message.text,
            "blocks": message.blocks,
            "unfurl_links": False,
            "unfurl_media": False,
        }
        try:
            response = await self._webhook_client().send_dict(body)
        except SlackClientError as exc:
            raise SinkError(f"{what} failed: {self._scrub(exc)}") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RetryableSinkError(f"{what} failed: {self._scrub(exc)}") from None
        if response.status_code == 200:
            return
        code = _error_code(response.body)
        raise _http_error(what, response.status_code, code, response.headers or {})

    def _scrub(self, exc: BaseException) -> str:
        """An exception as text, fit for a message: the secrets (and the webhook URL's path,
        which is the secret part) replaced, capped."""
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        for secret in (self.config.webhook_url, self.config.bot_token):
            if secret is None:
                continue
            value = secret.get_secret_value()
            text = text.replace(value, "***")
            path = urlsplit(value).path if secret is self.config.webhook_url else ""
            if len(path) > 1:
                text = text.replace(path, "/***")
        return _cap(" ".join(text.split()), 300)


def _http_error(what: str, status: int, code: str, headers: Mapping[str, str]) -> SinkError:
    detail = f"HTTP {status}" + (f" ({code})" if code else "")
    if status == 429 or code == "ratelimited":
        after = _retry_after(headers)
        return SlackRateLimited(f"{what} rate limited: {detail}, retry after {after:g}s", after)
    if status >= 500 or code in RETRYABLE_API_ERRORS:
        return RetryableSinkError(f"{what} failed: {detail}")
    if status == 200 and code:
        return SinkError(f"{what} failed: Slack error {code}")
    return SinkError(f"{what} failed: {detail}")


def _retry_after(headers: Mapping[str, str], default: float = 1.0) -> float:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    raw = ""
    for key, value in headers.items():
        if key.lower() == "retry-after":
            raw = str(value).strip()
            break
    if not raw:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return default
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return default
    return max(0.0, seconds)


_CODE = re.compile(r"[a-z0-9_]{1,64}")


def _error_code(value: object) -> str:
    """Slack's error code (``channel_not_found``, ``no_service``), or "" for anything else: the
    server's words are not copied into our messages wholesale."""
    if not isinstance(value, str):
        return ""
    value = value.strip()
    return value if _CODE.fullmatch(value) else ""


# -- rendering ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """What goes to Slack: the notification fallback ``text`` and the Block Kit ``blocks``."""

    text: str
    blocks: list[dict[str, Any]]


# C0 and C1 controls; the bidi embeddings, overrides and isolates; the implicit marks.
_UNSAFE = re.compile("[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


def clean(value: str, limit: int) -> str:
    """Untrusted text as one safe line: unsafe characters dropped, whitespace collapsed, capped
    at ``limit`` characters. Not yet escaped."""
    value = unicodedata.normalize("NFC", value)
    value = _UNSAFE.sub(" ", value.replace("\r", " ").replace("\n", " ").replace("\t", " "))
    return _cap(" ".join(value.split()), limit)


def escape(value: str) -> str:
    """Slack's mrkdwn escaping: the three characters Slack gives a meaning."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def safe(value: str, limit: int) -> str:
    """Untrusted text, cleaned, capped and escaped: inert in any mrkdwn field."""
    return escape(clean(value, limit))


def _cap(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    return value[: max(0, limit - 1)].rstrip() + ELLIPSIS


def _cap_escaped(value: str, limit: int) -> str:
    """Cap already-escaped text without cutting an entity (``&amp;``) in half."""
    if len(value) <= limit:
        return value
    cut = value[: max(0, limit - 1)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut.rstrip() + ELLIPSIS


def _fit_lines(lines: Sequence[str], limit: int) -> str:
    """Lines joined while they fit in ``limit``; a line that doesn't is cut, and the rest left
    off behind an ellipsis."""
    out: list[str] = []
    used = 0
    for line in lines:
        need = len(line) + (1 if out else 0)
        if used + need <= limit:
            out.append(line)
            used += need
            continue
        room = limit - used - (1 if out else 0)
        if room >= 2:
            out.append(_cap_escaped(line, room))
        elif out:
            out[-1] = _cap_escaped(out[-1], max(1, len(out[-1]) - 1))
        else:
            out.append(ELLIPSIS)
        break
    return "\n".join(out)


def safe_link(url: str) -> str | None:
    """``url`` ready for ``<url|text>``, or None when it is not a plain http(s) URL."""
    url = clean(url, MAX_URL * 2)
    if len(url) > MAX_URL or not _is_http_url(url):
        return None
    # Keep the URL's own %-escapes and reserved characters; encode what would end the link
    # markup ('|', '>', spaces) or be read as an entity ('&' is escaped below).
    url = escape(quote(url, safe="!#$%&'()*+,/:;=?@[]~-._"))
    return url if len(url) <= MAX_LINK else None


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def _mrkdwn(text: str) -> dict[str, Any]:
    # verbatim: Slack does not auto-link names, channels or @mentions in the text.
    return {"type": "mrkdwn", "text": text, "verbatim": True}


RESOLVED_EMOJI = "✅"


def _verb(alert: Alert) -> str:
    """The notification's opening words (no feed text)."""
    level = alert.level.name.upper()
    if alert.kind == "escalated":
        return f"Escalated to {level} (was {alert.previous_level.name})"
    if alert.kind == "updated":
        return f"Update ({level})"
    if alert.kind == "resolved":
        return f"Resolved ({level})"
    return f"New {level} alert"


def _sources_text(sources: Sequence[str], shown: int) -> str:
    """Outlet names, cleaned and escaped, the first ``shown`` of them; the rest counted."""
    names = [clean(s, MAX_SOURCE) for s in sources[:shown]]
    more = len(sources) - len(names)
    return escape(", ".join(names)) + (f" and {more} more" if more > 0 else "")


def build_message(alert: Alert) -> Message:
    """The Block Kit message for an alert, within Slack's limits, with every feed-supplied
    field made inert. A ``resolved`` alert gets a short note (see :func:`build_resolved`)."""
    if alert.kind == "resolved":
        return build_resolved(alert)
    emoji = EMOJI.get(alert.level, "⚪")
    level = alert.level.name.upper()
    # "or" after cleaning: a title of only spaces, controls or bidi characters cleans to ""
    # and made an empty link label (``<url|>``) or a bare ``**``.
    title = safe(alert.title, MAX_TITLE) or "(untitled)"
    story = safe(alert.story_id, 80)
    link = safe_link(alert.url) if alert.url else None

    header = clean(f"{emoji} {level} · {kind_label(alert)}", MAX_HEADER)

    headline = f"*<{link}|{title}>*" if link else f"*{title}*"
    summary = [
        headline,
        f"Score *{alert.score:g}* · {level} · "
        f"{len(alert.sources)} outlet{'s' if len(alert.sources) != 1 else ''}",
    ]
    if alert.kind == "updated":
        summary.append(f"_More coverage: {coverage(alert)}_")

    why = [f"*Why* — score {alert.score:g}"]
    why += [f"• {safe(format_term(t), MAX_LABEL)}" for t in alert.terms]
    for hit in alert.hits:
        where = "headline" if hit.in_title else "body"
        words = safe(hit.snippet or hit.text, MAX_SNIPPET)
        count = f", {hit.articles} articles" if hit.articles > 1 else ""
        why.append(f"• *{safe(hit.rule_id, 80)}* ({where}{count}): “{words}”")

    sources = _sources_text(alert.sources, MAX_SOURCES_SHOWN)
    context = [
        f"Sources ({len(alert.sources)}): {sources or 'none'}",
        f"Story `{story}`",
    ]
    if alert.rules_version:
        context.append(f"Rules `{safe(alert.rules_version, 40)}`")

    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        {"type": "section", "text": _mrkdwn(_fit_lines(summary, MAX_SECTION))},
        {"type": "section", "text": _mrkdwn(_fit_lines(why, MAX_SECTION))},
        {
            "type": "context",
            "elements": [
                _mrkdwn(_cap_escaped(c, MAX_SECTION)) for c in context[:MAX_CONTEXT_ELEMENTS]
            ],
        },
    ]

    text = _cap_escaped(f"{emoji} {_verb(alert)}: {title} (story {story})", MAX_TEXT)
    return Message(text=text, blocks=blocks[:MAX_BLOCKS])


def build_resolved(alert: Alert) -> Message:
    """The closing note of a story: short, as it mostly lands in the story's thread, but naming
    the story (title, link) so that it also reads on its own (a webhook, a lost thread)."""
    level = alert.level.name.upper()
    title = safe(alert.title, MAX_TITLE) or "(untitled)"
    story = safe(alert.story_id, 80)
    link = safe_link(alert.url) if alert.url else None
    headline = f"*<{link}|{title}>*" if link else f"*{title}*"
    lines = [
        f"{RESOLVED_EMOJI} *Resolved* · {level} · {headline}",
        f"No new coverage for a while; closed at {level} after {coverage(alert)}.",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": _mrkdwn(_fit_lines(lines, MAX_SECTION))},
        {"type": "context", "elements": [_mrkdwn(f"Story `{story}`")]},
    ]
    text = _cap_escaped(f"{RESOLVED_EMOJI} {_verb(alert)}: {title} (story {story})", MAX_TEXT)
    return Message(text=text, blocks=blocks)


def _digest_story(alert: Alert) -> str:
    """One story of a digest as mrkdwn: level, kind and linked title; a short why; sources.
    Every part is capped so the whole stays under MAX_DIGEST_SECTION: the headline, which
    holds the link markup, is never cut (a cut link would leave a dangling ``<``)."""
    emoji = RESOLVED_EMOJI if alert.kind == "resolved" else EMOJI.get(alert.level, "⚪")
    title = safe(alert.title, MAX_DIGEST_TITLE) or "(untitled)"
    link = safe_link(alert.url) if alert.url else None
    if link is not None and len(link) > MAX_DIGEST_LINK:
        link = None
    headline = f"*<{link}|{title}>*" if link else f"*{title}*"
    why = _cap_escaped(escape(", ".join(format_term(t) for t in alert.terms[:8])), MAX_DIGEST_WHY)
    lines = [
        f"{emoji} *{alert.level.name.upper()}* · {escape(kind_label(alert))} · {headline}",
        f"Why: score {alert.score:g}" + (f" ({why})" if why else ""),
        f"Sources ({len(alert.sources)}): "
        f"{_sources_text(alert.sources, MAX_DIGEST_SOURCES) or 'none'}",
    ]
    return _fit_lines(lines, MAX_DIGEST_SECTION)


def build_digest(digest: Digest) -> Message:
    """One Block Kit message for a digest: a header, a section per story (most severe first),
    then "… and N more" for the stories that did not fit in MAX_BLOCKS blocks or in
    MAX_DIGEST_CHARS characters. Feed text is made inert exactly as in single alerts."""
    level = digest_level(digest)
    emoji = EMOJI.get(level, "⚪")
    alerts = digest_alerts(digest)
    header = clean(f"{emoji} {digest_headline(digest)}", MAX_HEADER)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}}
    ]
    used = len(header)
    tail_room = 100  # for the closing context block
    for i, alert in enumerate(alerts):
        # Leave room for the "… and N more" block (unless this is the last story).
        last = i == len(alerts) - 1
        if len(blocks) >= MAX_BLOCKS - (0 if last else 1):
            break
        section = _digest_story(alert)
        if used + len(section) > MAX_DIGEST_CHARS - tail_room:
            break
        blocks.append({"type": "section", "text": _mrkdwn(section)})
        used += len(section)
    shown = len(blocks) - 1
    more = len(alerts) - shown
    if more > 0:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    _mrkdwn(f"{ELLIPSIS} and {plural(more, 'more story', 'more stories')}")
                ],
            }
        )
    titles = "; ".join((safe(a.title, 100) or "(untitled)") for a in alerts[:5])
    if len(alerts) > 5:
        titles += f"; {ELLIPSIS} and {len(alerts) - 5} more"
    text = _cap_escaped(f"{emoji} {escape(digest_headline(digest))}: {titles}", MAX_TEXT)
    return Message(text=text, blocks=blocks)
