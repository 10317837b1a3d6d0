"""Alerts sent as email over SMTP (aiosmtplib): a plain-text and an HTML part, one thread per story.

Everything in an alert that came from a feed (title, snippets, sources, link) is untrusted:
control characters never reach a header, the HTML part escapes every value, and only http(s)
links become links. Threading needs no state: a story's ``opened`` alert carries the story's root
Message-ID ``<story-{story_id}@{thread_domain}>``; its later alerts get their own Message-ID and
point at that root with In-Reply-To / References, so mail clients keep one thread per story
(escalations, updates and the closing "resolved" message alike).

A digest (several stories held by a group window, quiet hours or a rate limit) is one email of
its own, in no story's thread: its Message-ID is ``<digest-{digest_id}@{thread_domain}>``. It
lists each story with the same escaping as a single alert, and its size is bounded however many
stories it holds.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Literal, get_args
from urllib.parse import urlsplit

import aiosmtplib
from pydantic import SecretStr

from monitor.errors import RetryableSinkError, SinkConfigError, SinkError
from monitor.models import Alert, Digest
from monitor.sinks.base import Sink
from monitor.sinks.render import (
    KIND_WORDS,
    clean,
    coverage,
    digest_alerts,
    digest_headline,
    digest_level,
    format_term,
    kind_label,
)

Security = Literal["none", "starttls", "tls"]

SUBJECT_TITLE_MAX = 150  # characters of the title in the subject
TITLE_MAX = 1000  # ... and in the body: a hostile feed must not make a megabyte email
SNIPPET_MAX = 500
SOURCE_MAX = 200
SOURCES_MAX = 50  # sources listed, the rest are counted
URL_MAX = 2048
ID_MAX = 200

# A digest lists at most this many stories, each shorter than a single alert's email, and stops
# early (with "and N more") once its text and HTML parts together reach DIGEST_BODY_MAX.
DIGEST_STORIES_MAX = 100
DIGEST_TITLE_MAX = 300
DIGEST_SOURCES_MAX = 10
DIGEST_TERMS_MAX = 12
DIGEST_BODY_MAX = 200_000

_ID_SAFE = re.compile(rf"[A-Za-z0-9._-]{{1,{ID_MAX}}}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# What may not appear in an address: whitespace, and the specials that separate addresses.
_ADDR_BAD = re.compile(r'[\s<>(),;:"\[\]\\]')


def safe_url(url: str) -> str | None:
    """``url`` if it is an absolute http(s) URL fit to be a link, else None."""
    if not url or len(url) > URL_MAX or clean(url) != url or " " in url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def _id_part(value: str) -> str:
    """An id made fit for a Message-ID's left-hand side; anything unusual is hashed (stable)."""
    if _ID_SAFE.fullmatch(value):
        return value
    return "h" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _check_address(value: object, what: str) -> str:
    """The bare address of ``value`` ("a@b" or "Name <a@b>"); SinkConfigError if it is not one."""
    if not isinstance(value, str) or not value.strip():
        raise SinkConfigError(f"email: {what} {value!r} is not an email address")
    text = value.strip()
    _name, addr = parseaddr(text)
    local, at, domain = addr.rpartition("@")
    ok = (
        bool(at)
        and bool(local)
        and bool(domain)
        and clean(text) == text
        and not _ADDR_BAD.search(addr)
        and "@" not in local
        and (text == addr or text.endswith(f"<{addr}>"))
    )
    if not ok:
        raise SinkConfigError(f"email: {what} {value!r} is not an email address")
    return addr


def parse_recipients(text: str) -> tuple[str, ...]:
    """Recipients from one setting: comma- or semicolon-separated (``a@x, b@y``)."""
    return tuple(part.strip() for part in re.split(r"[,;]", text) if part.strip())


@dataclass(frozen=True, kw_only=True)
class EmailConfig:
    """SMTP relay and addresses. ``thread_domain`` (the right-hand side of Message-IDs) defaults
    to the sender's domain. The password never appears in repr, str or error messages."""

    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    username: str | None = None
    password: SecretStr | None = field(default=None, repr=False)
    security: Security = "starttls"
    timeout: float = 15.0
    thread_domain: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host.strip() or clean(self.host) != self.host:
            raise SinkConfigError(f"email: SMTP host {self.host!r} is not a host name")
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise SinkConfigError(f"email: SMTP port {self.port!r} is not a number")
        if not 0 < self.port < 65536:
            raise SinkConfigError(f"email: SMTP port {self.port} is out of range (1-65535)")
        if self.security not in get_args(Security):
            raise SinkConfigError(
                f"email: SMTP security {self.security!r} is not one of: none, starttls, tls"
            )
        if not self.timeout > 0:
            raise SinkConfigError(f"email: timeout {self.timeout!r} must be positive")
        sender = _check_address(self.sender, "sender")
        if isinstance(self.recipients, str):  # a lone string would be taken letter by letter
            object.__setattr__(self, "recipients", parse_recipients(self.recipients))
        else:
            object.__setattr__(self, "recipients", tuple(self.recipients))
        if not self.recipients:
            raise SinkConfigError("email: no recipients given")
        for recipient in self.recipients:
            _check_address(recipient, "recipient")
        if self.username == "":  # an empty setting means "no login"
            object.__setattr__(self, "username", None)
        if self.password is not None and not self.password.get_secret_value():
            object.__setattr__(self, "password", None)
        if (self.username is None) != (self.password is None):
            raise SinkConfigError(
                "email: SMTP username and password must be given together (or neither)"
            )
        domain = self.thread_domain or sender.rpartition("@")[2]
        with contextlib.suppress(UnicodeError):  # an IDN domain: its ASCII form
            domain = domain.encode("idna").decode("ascii").lower()
        if not _DOMAIN.fullmatch(domain):
            raise SinkConfigError(
                f"email: thread domain {domain!r} is not a domain name (set thread_domain)"
            )
        object.__setattr__(self, "thread_domain", domain)

    @property
    def envelope_sender(self) -> str:
        return parseaddr(self.sender)[1]

    @property
    def envelope_recipients(self) -> list[str]:
        return [parseaddr(r)[1] for r in self.recipients]


def thread_root_id(story_id: str, domain: str) -> str:
    """The Message-ID of a story's first email: every later alert replies to it."""
    return f"<story-{_id_part(story_id)}@{domain}>"


def alert_message_id(alert_id: str, domain: str) -> str:
    return f"<{_id_part(alert_id)}@{domain}>"


def _subject_title(title: str) -> str:
    """A title fit for the Subject header: one line, bounded, and no ``=?`` left.

    The email package parses the Subject we set as a header value and decodes any RFC 2047
    encoded word in it; a title holding ``=?utf-8?q?=0D=0ABcc:_x@evil.example?=`` became a
    subject with a real CR LF, written to the wire as is (CPython before 3.11.10 / 3.12.5,
    CVE-2024-6923): a header injected. Every encoded word starts with ``=?``: split it."""
    return (clean(title, SUBJECT_TITLE_MAX) or "(no title)").replace("=?", "= ?")


def subject(alert: Alert) -> str:
    """``[HIGH] title``, ``[CRITICAL] Escalated: title``, ``[HIGH] Update: title`` or
    ``[HIGH] Resolved: title``: one line, bounded."""
    title = _subject_title(alert.title)
    change = "" if alert.kind == "opened" else f"{KIND_WORDS[alert.kind]}: "
    return f"[{alert.level.name.upper()}] {change}{title}"


def digest_subject(digest: Digest) -> str:
    """``[HIGH] 3 stories: <first title> and 2 more``: one line, bounded. The first title is
    the most severe story's."""
    alerts = digest_alerts(digest)
    level = digest_level(digest).name.upper()
    if not alerts:
        return f"[{level}] No stories"
    title = _subject_title(alerts[0].title)
    if len(alerts) == 1:
        return f"[{level}] 1 story: {title}"
    return f"[{level}] {len(alerts)} stories: {title} and {len(alerts) - 1} more"


def _sources(alert: Alert, limit: int = SOURCES_MAX) -> list[str]:
    names = [clean(s, SOURCE_MAX) for s in alert.sources[:limit]]
    if len(alert.sources) > limit:
        names.append(f"and {len(alert.sources) - limit} more")
    return names


def _level_line(alert: Alert) -> str:
    if alert.kind == "escalated":
        return f"{alert.level.name} (escalated from {alert.previous_level.name})"
    if alert.kind == "updated":
        return f"{alert.level.name} (update: {coverage(alert)})"
    if alert.kind == "resolved":
        return f"{alert.level.name} (resolved: no new coverage for a while, {coverage(alert)})"
    return f"{alert.level.name} (opened)"


def text_body(alert: Alert) -> str:
    lines = [
        clean(alert.title, TITLE_MAX),
        "",
        f"Level:   {_level_line(alert)}",
        f"Score:   {alert.score:g}",
    ]
    if alert.terms:
        lines.append("Why:")
        lines.extend(f"  {clean(format_term(t), TITLE_MAX)}" for t in alert.terms)
    if alert.hits:
        lines.append("Rule hits:")
        for hit in alert.hits:
            where = "headline" if hit.in_title else "body"
            lines.append(
                f"  - {clean(hit.rule_id, ID_MAX)} ({where}): "
                f"“{clean(hit.snippet or hit.text, SNIPPET_MAX)}”"
            )
    sources = _sources(alert)
    lines.append(f"Sources ({len(alert.sources)}): {', '.join(sources)}")
    lines.append(f"Link:    {clean(alert.url, URL_MAX) or '-'}")
    lines.append(f"Story:   {clean(alert.story_id, ID_MAX)}")
    lines.append(f"Alert:   {clean(alert.id, ID_MAX)}")
    lines.append(f"Rules:   {clean(alert.rules_version, ID_MAX) or '-'}")
    return "\n".join(lines) + "\n"


def _e(text: str, limit: int | None = None) -> str:
    return html.escape(clean(text, limit), quote=True)


def _link(url: str, text: str) -> str:
    """``text`` (already escaped) as a link to ``url`` if it is http(s); else just the text."""
    safe = safe_url(url)
    if safe is None:
        return text
    return f'<a href="{html.escape(safe, quote=True)}">{text}</a>'


def html_body(alert: Alert) -> str:
    url = safe_url(alert.url)
    if url is not None:
        link = f'<a href="{html.escape(url, quote=True)}">{_e(url)}</a>'
    else:  # not http(s): shown as text, never as a link
        link = _e(alert.url, URL_MAX) or "-"
    terms = "".join(f"<li>{_e(format_term(t), TITLE_MAX)}</li>" for t in alert.terms)
    hits = "".join(
        f"<li><b>{_e(h.rule_id, ID_MAX)}</b> ({'headline' if h.in_title else 'body'}): "
        f"“{_e(h.snippet or h.text, SNIPPET_MAX)}”</li>"
        for h in alert.hits
    )
    sources = ", ".join(html.escape(s, quote=True) for s in _sources(alert))
    rows: Iterable[tuple[str, str]] = (
        ("Level", html.escape(_level_line(alert))),
        ("Score", _e(f"{alert.score:g}")),
        ("Why", f"<ul>{terms}</ul>" if terms else "-"),
        ("Rule hits", f"<ul>{hits}</ul>" if hits else "-"),
        (f"Sources ({len(alert.sources)})", sources or "-"),
        ("Link", link),
        ("Story", _e(alert.story_id, ID_MAX)),
        ("Alert", _e(alert.id, ID_MAX)),
        ("Rules version", _e(alert.rules_version, ID_MAX) or "-"),
    )
    table = "".join(
        f'<tr><th align="left" valign="top">{name}</th><td>{value}</td></tr>'
        for name, value in rows
    )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
        f"<h2>{html.escape(subject(alert))}</h2>"
        f"<p>{_e(alert.title, TITLE_MAX)}</p>"
        f"<table>{table}</table>"
        "</body></html>\n"
    )


def _digest_story_text(n: int, alert: Alert) -> str:
    terms = alert.terms[:DIGEST_TERMS_MAX]
    why = "  ".join(clean(format_term(t), SOURCE_MAX) for t in terms)
    if len(alert.terms) > len(terms):
        why += f"  (and {len(alert.terms) - len(terms)} more)"
    sources = _sources(alert, DIGEST_SOURCES_MAX)
    lines = [
        f"{n}. [{alert.level.name.upper()}] {kind_label(alert)}: "
        f"{clean(alert.title, DIGEST_TITLE_MAX) or '(no title)'}",
        f"   Seen:    {coverage(alert)}",
        f"   Why:     score {alert.score:g} = {why or '-'}",
        f"   Sources ({len(alert.sources)}): {', '.join(sources) or '-'}",
        f"   Link:    {clean(alert.url, URL_MAX) or '-'}",
        f"   Story:   {clean(alert.story_id, ID_MAX)}",
    ]
    return "\n".join(lines) + "\n"


def _digest_story_html(alert: Alert) -> str:
    title = _e(alert.title, DIGEST_TITLE_MAX) or "(no title)"
    terms = alert.terms[:DIGEST_TERMS_MAX]
    why = ", ".join(_e(format_term(t), SOURCE_MAX) for t in terms)
    if len(alert.terms) > len(terms):
        why += f" (and {len(alert.terms) - len(terms)} more)"
    sources = ", ".join(html.escape(s, quote=True) for s in _sources(alert, DIGEST_SOURCES_MAX))
    url = "" if safe_url(alert.url) is not None else f"<br>Link: {_e(alert.url, URL_MAX) or '-'}"
    return (
        f"<li><p><b>{alert.level.name.upper()}</b> · {html.escape(kind_label(alert))}: "
        f"<b>{_link(alert.url, title)}</b><br>"
        f"Seen: {html.escape(coverage(alert))}<br>"
        f"Why: score {_e(f'{alert.score:g}')} = {why or '-'}<br>"
        f"Sources ({len(alert.sources)}): {sources or '-'}{url}<br>"
        f"Story: {_e(alert.story_id, ID_MAX)}</p></li>"
    )


def digest_bodies(digest: Digest) -> tuple[str, str]:
    """The text and HTML parts of a digest email. Stories are listed most severe first, as long
    as they fit (DIGEST_STORIES_MAX, DIGEST_BODY_MAX); the rest are counted."""
    alerts = digest_alerts(digest)
    head = html.escape(digest_headline(digest))
    texts: list[str] = []
    items: list[str] = []
    used = 0
    for n, alert in enumerate(alerts[:DIGEST_STORIES_MAX], start=1):
        text, item = _digest_story_text(n, alert), _digest_story_html(alert)
        if texts and used + len(text) + len(item) > DIGEST_BODY_MAX:
            break
        texts.append(text)
        items.append(item)
        used += len(text) + len(item)
    more = len(alerts) - len(texts)
    tail = f"… and {more} more {'story' if more == 1 else 'stories'} not shown\n" if more else ""
    footer = f"Digest:  {clean(digest.id, ID_MAX)}\n"
    text_part = f"{digest_headline(digest)}\n\n" + "\n".join(texts) + "\n" + tail + footer
    html_part = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
        f"<h2>{head}</h2>"
        f"<ol>{''.join(items)}</ol>"
        + (f"<p>{html.escape(tail.strip())}</p>" if tail else "")
        + f"<p>Digest: {_e(digest.id, ID_MAX)}</p>"
        "</body></html>\n"
    )
    return text_part, html_part


class EmailSink(Sink):
    name = "email"

    def __init__(self, config: EmailConfig) -> None:
        self.config = config

    def __repr__(self) -> str:
        c = self.config
        return f"EmailSink({c.host}:{c.port}, {c.security}, to={list(c.recipients)})"

    def _envelope(self, subject_line: str, created: datetime) -> EmailMessage:
        c = self.config
        msg = EmailMessage()
        msg["Subject"] = subject_line
        msg["From"] = c.sender
        msg["To"] = ", ".join(c.recipients)
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        msg["Date"] = format_datetime(created)
        return msg

    def message(self, alert: Alert) -> EmailMessage:
        c = self.config
        msg = self._envelope(subject(alert), alert.created_at)
        # Every kind but "opened" (escalated, updated, resolved) replies to the story's root.
        root = thread_root_id(alert.story_id, c.thread_domain)
        if alert.kind == "opened":
            msg["Message-ID"] = root
        else:
            msg["Message-ID"] = alert_message_id(alert.id, c.thread_domain)
            msg["In-Reply-To"] = root
            msg["References"] = root
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Monitor-Story"] = _id_part(alert.story_id)
        msg["X-Monitor-Alert"] = _id_part(alert.id)
        msg["X-Monitor-Level"] = alert.level.name
        msg.set_content(text_body(alert))
        msg.add_alternative(html_body(alert), subtype="html")
        return msg

    def digest_message(self, digest: Digest) -> EmailMessage:
        """One email for the whole digest, threaded under no story (it belongs to several)."""
        c = self.config
        msg = self._envelope(digest_subject(digest), digest.created_at)
        msg["Message-ID"] = f"<digest-{_id_part(digest.id)}@{c.thread_domain}>"
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Monitor-Digest"] = _id_part(digest.id)
        msg["X-Monitor-Digest-Reason"] = digest.reason
        msg["X-Monitor-Level"] = digest_level(digest).name
        text, html_part = digest_bodies(digest)
        msg.set_content(text)
        msg.add_alternative(html_part, subtype="html")
        return msg

    async def send(self, alert: Alert) -> None:
        await self._send(self.message(alert))

    async def send_digest(self, digest: Digest) -> None:
        await self._send(self.digest_message(digest))

    async def _send(self, message: EmailMessage) -> None:
        c = self.config
        password = c.password.get_secret_value() if c.password is not None else None
        try:
            await aiosmtplib.send(
                message,
                sender=c.envelope_sender,
                recipients=c.envelope_recipients,
                hostname=c.host,
                port=c.port,
                use_tls=c.security == "tls",
                start_tls=c.security == "starttls",
                username=c.username,
                password=password,
                timeout=c.timeout,
            )
        except Exception as exc:
            error = self._error(exc, password)
        else:
            return
        raise error  # outside the except block: no implicit __context__ to leak through

    def _error(self, exc: Exception, password: str | None) -> SinkError:
        c = self.config
        secrets = _secret_forms(c.username or "", password)
        detail = _redact(str(exc) or repr(exc), secrets)
        text = f"email: sending via {c.host}:{c.port} failed: {type(exc).__name__}: {detail}"
        error = RetryableSinkError(text) if _transient(exc) else SinkError(text)
        if not _mentions(exc, secrets):
            error.__cause__ = exc
        return error


def _transient(exc: Exception) -> bool:
    """Worth retrying: the server was unreachable, dropped us, timed out, or answered 4xx
    (greylisting, "try again later"). Not: authentication failures and 5xx refusals."""
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return False
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return 400 <= exc.code < 500
    return isinstance(
        exc,
        aiosmtplib.SMTPConnectError
        | aiosmtplib.SMTPServerDisconnected
        | aiosmtplib.SMTPTimeoutError
        | OSError
        | TimeoutError,
    )


def _secret_forms(username: str, password: str | None) -> list[str]:
    """The credentials as they may appear in text: plain, and base64 as AUTH PLAIN / LOGIN send
    them. The username counts too (MONITOR_SMTP_USERNAME is a secret: servers quote it back in
    refusals); a very short one is left alone, as replacing it would garble the message."""
    forms: list[str] = []
    if password:
        forms.append(password)
        for raw in (password, f"\0{username}\0{password}", f"{username}\0{password}"):
            forms.append(base64.b64encode(raw.encode()).decode())
    if len(username) >= 4:
        forms += [username, base64.b64encode(username.encode()).decode()]
    return sorted(forms, key=len, reverse=True)  # longest first: a form may contain another


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _mentions(exc: BaseException, secrets: list[str]) -> bool:
    """Whether ``exc`` or anything chained to it mentions a secret."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        text = f"{current}\n{current.args!r}\n{getattr(current, 'message', '')}"
        if any(s in text for s in secrets):
            return True
        stack += [current.__cause__, current.__context__]
    return False
