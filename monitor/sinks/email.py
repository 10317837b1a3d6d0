"""Alerts sent as email over SMTP (aiosmtplib): a plain-text and an HTML part, one thread per story.

Everything in an alert that came from a feed (title, snippets, sources, link) is untrusted:
control characters never reach a header, the HTML part escapes every value, and only http(s)
links become links. Threading needs no state: a story's ``opened`` alert carries the story's root
Message-ID ``<story-{story_id}@{thread_domain}>``; its later alerts get their own Message-ID and
point at that root with In-Reply-To / References, so mail clients keep one thread per story.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Literal, get_args
from urllib.parse import urlsplit

import aiosmtplib
from pydantic import SecretStr

from monitor.errors import RetryableSinkError, SinkConfigError, SinkError
from monitor.models import Alert
from monitor.sinks.base import Sink
from monitor.sinks.render import format_term

Security = Literal["none", "starttls", "tls"]

SUBJECT_TITLE_MAX = 150  # characters of the title in the subject
TITLE_MAX = 1000  # ... and in the body: a hostile feed must not make a megabyte email
SNIPPET_MAX = 500
SOURCE_MAX = 200
SOURCES_MAX = 50  # sources listed, the rest are counted
URL_MAX = 2048
ID_MAX = 200

_ID_SAFE = re.compile(rf"[A-Za-z0-9._-]{{1,{ID_MAX}}}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# What may not appear in an address: whitespace, and the specials that separate addresses.
_ADDR_BAD = re.compile(r'[\s<>(),;:"\[\]\\]')


def clean(text: str, limit: int | None = None) -> str:
    """One line of untrusted text: control, format (bidi overrides, zero-width) and line/paragraph
    separator characters become spaces, runs of whitespace one space; cut to ``limit``."""
    out = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch
        for ch in (text[: limit * 4] if limit is not None else text)  # bound the work first
    )
    out = " ".join(out.split())
    if limit is not None and len(out) > limit:
        out = out[: limit - 1].rstrip() + "…"
    return out


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


def subject(alert: Alert) -> str:
    """``[HIGH] title`` or ``[CRITICAL] Escalated: title``: one line, bounded."""
    title = clean(alert.title, SUBJECT_TITLE_MAX) or "(no title)"
    change = "Escalated: " if alert.kind == "escalated" else ""
    return f"[{alert.level.name.upper()}] {change}{title}"


def _sources(alert: Alert) -> list[str]:
    names = [clean(s, SOURCE_MAX) for s in alert.sources[:SOURCES_MAX]]
    if len(alert.sources) > SOURCES_MAX:
        names.append(f"and {len(alert.sources) - SOURCES_MAX} more")
    return names


def _level_line(alert: Alert) -> str:
    if alert.kind == "escalated":
        return f"{alert.level.name} (escalated from {alert.previous_level.name})"
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


class EmailSink(Sink):
    name = "email"

    def __init__(self, config: EmailConfig) -> None:
        self.config = config

    def __repr__(self) -> str:
        c = self.config
        return f"EmailSink({c.host}:{c.port}, {c.security}, to={list(c.recipients)})"

    def message(self, alert: Alert) -> EmailMessage:
        c = self.config
        msg = EmailMessage()
        msg["Subject"] = subject(alert)
        msg["From"] = c.sender
        msg["To"] = ", ".join(c.recipients)
        created = alert.created_at
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        msg["Date"] = format_datetime(created)
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

    async def send(self, alert: Alert) -> None:
        c = self.config
        password = c.password.get_secret_value() if c.password is not None else None
        try:
            await aiosmtplib.send(
                self.message(alert),
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
    """The password as it may appear in text: plain, and base64 as AUTH PLAIN / LOGIN send it."""
    if not password:
        return []
    forms = [password]
    for raw in (password, f"\0{username}\0{password}", f"{username}\0{password}"):
        forms.append(base64.b64encode(raw.encode()).decode())
    return forms


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
