"""The email sink against a real SMTP server (aiosmtpd on 127.0.0.1): what arrives, threading,
hostile feed text, size bounds, failures that must not leak the password, and bad settings."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Literal

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword
from pydantic import SecretStr

from monitor.errors import RetryableSinkError, SinkConfigError, SinkError
from monitor.models import Alert, Digest, Level, RuleHit, ScoreTerm
from monitor.sinks.email import DIGEST_STORIES_MAX, EmailConfig, EmailSink

SENDER = "news-monitor@example.org"
RECIPIENTS = ("desk@example.org", "Night Editor <night@example.net>")
PASSWORD = "s3cret-Pa55w0rd!"
HOSTILE = "Breaking\r\nBcc: victim@example.com <script>alert(1)</script>"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Collector:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


class Auth:
    """Accepts only user/PASSWORD; remembers what it was offered."""

    def __init__(self) -> None:
        self.offered: list[tuple[bytes, bytes]] = []

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.offered.append((data.login, data.password))
        ok = data.login == b"user" and data.password == PASSWORD.encode()
        # handled=False: aiosmtpd itself answers a failure with "535 Authentication failed"
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Collector]]:
    handler = Collector()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()


@pytest.fixture
def smtp_auth() -> Iterator[tuple[Controller, Collector, Auth]]:
    handler, auth = Collector(), Auth()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        auth_require_tls=False,
        authenticator=auth,
    )
    controller.start()
    try:
        yield controller, handler, auth
    finally:
        controller.stop()


def config(port: int, **kw: Any) -> EmailConfig:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "sender": SENDER,
        "recipients": RECIPIENTS,
        "security": "none",
        "timeout": 5.0,
    }
    values.update(kw)
    return EmailConfig(**values)


def alert(**kw: Any) -> Alert:
    values: dict[str, Any] = {
        "id": "a1b2c3d4e5f6a1b2c3d4e5f6",
        "story_id": "story42",
        "route": "desk-email",
        "sink": "email",
        "kind": "opened",
        "level": Level.high,
        "score": 88.6,
        "terms": (
            ScoreTerm(label="military-technical-response (headline)", value=67.5),
            ScoreTerm(label="invasion ×0.3 as rule 2", value=3.6),
            ScoreTerm(label="source reliability", value=0.95, op="x"),
            ScoreTerm(label="corroboration (2 outlets)", value=10),
        ),
        "title": "Putin warns of military and technical response",
        "url": "https://example.org/world/putin-warns?id=1&x=2",
        "sources": ("global-wire", "daily-courier"),
        "hits": (
            RuleHit(
                rule_id="military-technical-response",
                phrase="military and technical",
                text="militarily and technically",
                snippet="Russia will respond militarily and technically to unfriendly steps",
                in_title=True,
                articles=2,
            ),
            RuleHit(
                rule_id="invasion",
                phrase="invasion",
                text="invade",
                snippet="fears that troops could invade Ukraine",
            ),
        ),
        "created_at": datetime(2021, 12, 21, 12, 0, tzinfo=UTC),
        "rules_version": "rules-v7",
    }
    values.update(kw)
    return Alert(**values)


def parse(envelope: Envelope) -> EmailMessage:
    assert isinstance(envelope.content, bytes)
    msg = message_from_bytes(envelope.content, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def parts(msg: EmailMessage) -> tuple[str, str]:
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


async def test_opened_alert_arrives(smtp: tuple[Controller, Collector]) -> None:
    controller, handler = smtp
    await EmailSink(config(controller.port)).send(alert())

    [envelope] = handler.envelopes
    assert envelope.mail_from == SENDER
    assert envelope.rcpt_tos == ["desk@example.org", "night@example.net"]
    msg = parse(envelope)
    assert msg["Subject"] == "[HIGH] Putin warns of military and technical response"
    assert msg["From"] == SENDER
    assert "night@example.net" in msg["To"] and "desk@example.org" in msg["To"]
    assert msg["Message-ID"] == "<story-story42@example.org>"
    assert msg["In-Reply-To"] is None and msg["References"] is None
    assert msg["X-Monitor-Story"] == "story42"
    assert msg["X-Monitor-Alert"] == "a1b2c3d4e5f6a1b2c3d4e5f6"
    assert msg["X-Monitor-Level"] == "high"

    text, html = parts(msg)
    for body in (text, html):
        assert "88.6" in body
        assert "+67.5 military-technical-response (headline)" in body
        assert "× 0.95 source reliability" in body
        assert "+10 corroboration (2 outlets)" in body
        assert "Russia will respond militarily and technically to unfriendly steps" in body
        assert "fears that troops could invade Ukraine" in body
        assert "invasion" in body
        assert "global-wire" in body and "daily-courier" in body
        assert "story42" in body
        assert "rules-v7" in body
        assert "high" in body
    assert "https://example.org/world/putin-warns?id=1&x=2" in text
    # an http(s) link is a link, with its '&' escaped in the attribute
    assert '<a href="https://example.org/world/putin-warns?id=1&amp;x=2">' in html


async def test_escalation_threads_under_the_story(smtp: tuple[Controller, Collector]) -> None:
    controller, handler = smtp
    sink = EmailSink(config(controller.port))
    await sink.send(alert())
    await sink.send(
        alert(
            id="ffff0000ffff0000ffff0000",
            kind="escalated",
            level=Level.critical,
            previous_level=Level.high,
            score=97.0,
        )
    )

    first, second = (parse(e) for e in handler.envelopes)
    assert (
        second["Subject"] == "[CRITICAL] Escalated: Putin warns of military and technical response"
    )
    assert second["Message-ID"] == "<ffff0000ffff0000ffff0000@example.org>"
    assert second["Message-ID"] != first["Message-ID"]
    assert second["In-Reply-To"] == first["Message-ID"]
    assert second["References"] == first["Message-ID"]
    assert second["X-Monitor-Level"] == "critical"
    text, html = parts(second)
    for body in (text, html):
        assert "critical" in body and "escalated from high" in body


@pytest.mark.parametrize(
    ("kind", "words", "body_words"),
    [
        ("updated", "Update", "update: 7 articles from 2 outlets"),
        (
            "resolved",
            "Resolved",
            "resolved: no new coverage for a while, 7 articles from 2 outlets",
        ),
    ],
)
async def test_update_and_resolution_thread_under_the_story(
    smtp: tuple[Controller, Collector], kind: str, words: str, body_words: str
) -> None:
    controller, handler = smtp
    sink = EmailSink(config(controller.port))
    await sink.send(alert())
    await sink.send(alert(id=f"{kind}0000ffff0000ffff", kind=kind, articles=7))

    first, second = (parse(e) for e in handler.envelopes)
    assert first["Message-ID"] == "<story-story42@example.org>"
    assert second["Subject"] == f"[HIGH] {words}: Putin warns of military and technical response"
    assert second["Message-ID"] == f"<{kind}0000ffff0000ffff@example.org>"
    assert second["In-Reply-To"] == first["Message-ID"]
    assert second["References"] == first["Message-ID"]
    assert second["X-Monitor-Level"] == "high"
    text, html = parts(second)
    for body in (text, html):
        assert body_words in body


def digest(
    *alerts: Alert, reason: Literal["group", "quiet", "rate"] = "quiet", id: str = "digest-0001"
) -> Digest:
    return Digest(
        id=id,
        route="desk-email",
        sink="email",
        reason=reason,
        alerts=alerts,
        created_at=datetime(2021, 12, 21, 7, 0, tzinfo=UTC),
    )


def three_stories() -> tuple[Alert, Alert, Alert]:
    return (
        alert(id="a-1", story_id="s1", level=Level.medium, title="Calm first title"),
        alert(
            id="a-2",
            story_id="s2",
            level=Level.critical,
            kind="escalated",
            previous_level=Level.high,
            title=HOSTILE,
            url="javascript:alert(1)",
            sources=("<!channel>", "evil<b>feed</b>"),
        ),
        alert(
            id="a-3",
            story_id="s3",
            kind="resolved",
            title="<!channel> Third <script>x()</script>",
            url="https://example.org/third?a=1&b=2",
        ),
    )


async def test_a_digest_is_one_email_listing_every_story(
    smtp: tuple[Controller, Collector],
) -> None:
    controller, handler = smtp
    await EmailSink(config(controller.port)).send_digest(digest(*three_stories()))

    [envelope] = handler.envelopes  # one email, not three
    assert envelope.rcpt_tos == ["desk@example.org", "night@example.net"]
    assert isinstance(envelope.content, bytes)
    assert not [line for line in envelope.content.splitlines() if line.lower().startswith(b"bcc:")]
    msg = parse(envelope)
    assert msg["Bcc"] is None
    # the highest level; the most severe story's title first, sanitised
    assert msg["Subject"] == (
        "[CRITICAL] 3 stories: Breaking Bcc: victim@example.com <script>alert(1)</script> "
        "and 2 more"
    )
    assert msg["Message-ID"] == "<digest-digest-0001@example.org>"
    assert msg["In-Reply-To"] is None and msg["References"] is None  # in no story's thread
    assert msg["X-Monitor-Digest"] == "digest-0001"
    assert msg["X-Monitor-Digest-Reason"] == "quiet"
    assert msg["X-Monitor-Level"] == "critical"

    text, html = parts(msg)
    assert "[CRITICAL] 3 stories (held during quiet hours)" in text
    assert "[CRITICAL] 3 stories (held during quiet hours)" in html
    # every story, with level, kind, why and sources
    assert "Calm first title" in text and "Calm first title" in html
    assert "Breaking Bcc: victim@example.com" in text
    assert "<!channel> Third <script>x()</script>" in text  # plain text is just text
    for body in (text, html):
        assert "+67.5 military-technical-response (headline)" in body
        assert "global-wire, daily-courier" in body
        assert "Escalated (high → critical)" in body and "Resolved" in body
        assert "s1" in body and "s2" in body and "s3" in body
        assert "1 article from 2 outlets" in body
    assert text.index("Breaking") < text.index("Calm first title")  # most severe first
    assert not [line for line in text.splitlines() if line.lower().startswith("bcc:")]
    # hostile feed text is inert in HTML: escaped, and only http(s) links are links
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;!channel&gt; Third &lt;script&gt;x()&lt;/script&gt;" in html
    assert "<b>feed</b>" not in html and "evil&lt;b&gt;feed&lt;/b&gt;" in html
    assert "javascript:alert(1)" in html and 'href="javascript' not in html.lower()
    assert html.lower().count("<a ") == 2  # stories 1 and 3, not the javascript: one
    assert '<a href="https://example.org/third?a=1&amp;b=2">' in html


async def test_a_huge_digest_is_bounded(smtp: tuple[Controller, Collector]) -> None:
    controller, handler = smtp
    many = [
        alert(
            id=f"a-{i}",
            story_id=f"s{i}",
            title="War " * 262_144 if i < 3 else f"Story {i}",
            sources=tuple(f"outlet-{j}" for j in range(200)),
        )
        for i in range(DIGEST_STORIES_MAX + 50)
    ]
    await EmailSink(config(controller.port)).send_digest(digest(*many, reason="rate"))

    [envelope] = handler.envelopes
    assert isinstance(envelope.content, bytes)
    assert len(envelope.content) < 500_000
    msg = parse(envelope)
    assert msg["Subject"].startswith(f"[HIGH] {DIGEST_STORIES_MAX + 50} stories: War War")
    assert msg["Subject"].endswith(f"and {DIGEST_STORIES_MAX + 49} more")
    assert len(msg["Subject"]) < 300
    text, html = parts(msg)
    assert "held by the rate limit" in text
    assert "more stories not shown" in text and "more stories not shown" in html
    assert "and 190 more" in text  # outlets are counted past the first few


async def test_hostile_feed_text_is_inert(smtp: tuple[Controller, Collector]) -> None:
    controller, handler = smtp
    hostile = alert(
        title=HOSTILE,
        url="javascript:alert(document.cookie)",
        sources=("evil<b>feed</b>",),
        hits=(
            RuleHit(
                rule_id="invasion",
                phrase="invasion",
                text="invade",
                snippet=HOSTILE,
            ),
        ),
    )
    await EmailSink(config(controller.port)).send(hostile)

    [envelope] = handler.envelopes
    # no extra recipient, no Bcc header, no line of the raw message starting a header
    assert envelope.rcpt_tos == ["desk@example.org", "night@example.net"]
    assert isinstance(envelope.content, bytes)
    raw_lines = envelope.content.splitlines()
    assert not [line for line in raw_lines if line.lower().startswith(b"bcc:")]
    msg = parse(envelope)
    assert msg["Bcc"] is None
    assert "\r" not in msg["Subject"] and "\n" not in msg["Subject"]
    assert msg["Subject"].startswith("[HIGH] Breaking Bcc: victim@example.com")

    text, html = parts(msg)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()
    assert "<b>feed</b>" not in html and "evil&lt;b&gt;feed&lt;/b&gt;" in html
    # a javascript: URL is shown as text, never as a link
    assert "javascript:alert(document.cookie)" in html
    assert "href" not in html.lower()
    assert "<a " not in html.lower()
    assert not [line for line in text.splitlines() if line.lower().startswith("bcc:")]


async def test_megabyte_title_is_bounded(smtp: tuple[Controller, Collector]) -> None:
    controller, handler = smtp
    await EmailSink(config(controller.port)).send(alert(title="War " * 262_144))

    [envelope] = handler.envelopes
    msg = parse(envelope)
    assert msg["Subject"].startswith("[HIGH] War War")
    assert len(msg["Subject"]) < 300
    assert isinstance(envelope.content, bytes)
    assert len(envelope.content) < 100_000  # the body is bounded too


async def test_refused_connection_names_host_and_port() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(SinkError) as info:
        await EmailSink(config(port, timeout=2.0)).send(alert())
    assert f"127.0.0.1:{port}" in str(info.value)
    assert not isinstance(info.value, SinkConfigError)
    assert isinstance(info.value, RetryableSinkError)  # the server may be back soon


async def test_starttls_required_but_not_offered_fails(smtp: tuple[Controller, Collector]) -> None:
    controller, handler = smtp
    with pytest.raises(SinkError, match="STARTTLS"):
        await EmailSink(config(controller.port, security="starttls")).send(alert())
    assert handler.envelopes == []  # nothing went out in the clear


async def test_auth_failure_does_not_leak_the_password(
    smtp_auth: tuple[Controller, Collector, Auth],
) -> None:
    controller, handler, auth = smtp_auth
    wrong = "wrong-" + PASSWORD
    sink = EmailSink(config(controller.port, username="user", password=SecretStr(wrong)))
    with pytest.raises(SinkError) as info:
        await sink.send(alert())

    assert auth.offered and auth.offered[0][1] == wrong.encode()  # the server did see it
    assert handler.envelopes == []
    message = str(info.value)
    assert not isinstance(info.value, RetryableSinkError)  # a wrong password stays wrong
    assert f"127.0.0.1:{controller.port}" in message
    assert "535" in message or "uthentication" in message
    assert wrong not in message and wrong not in repr(info.value)
    for exc in (info.value.__cause__, info.value.__context__):
        assert exc is None or wrong not in f"{exc} {exc.args!r}"
    assert wrong not in repr(sink) and wrong not in repr(sink.config)


async def test_auth_success_delivers(smtp_auth: tuple[Controller, Collector, Auth]) -> None:
    controller, handler, auth = smtp_auth
    sink = EmailSink(config(controller.port, username="user", password=SecretStr(PASSWORD)))
    await sink.send(alert())
    assert auth.offered == [(b"user", PASSWORD.encode())]
    assert len(handler.envelopes) == 1


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("recipients", ("desk@example.org", "not-an-address"), "not-an-address"),
        ("recipients", ("desk@example.org, other@example.org",), "desk@example.org, other"),
        ("recipients", ("x@example.org\r\nBcc: victim@example.com",), "victim@example.com"),
        ("sender", "monitor", "monitor"),
    ],
)
def test_bad_address_is_a_config_error(field: str, value: Any, named: str) -> None:
    with pytest.raises(SinkConfigError) as info:
        config(25, **{field: value}, username="user", password=SecretStr(PASSWORD))
    assert named in str(info.value)
    assert PASSWORD not in str(info.value)


def test_config_defaults_and_secrecy() -> None:
    c = EmailConfig(
        host="smtp.example.org",
        port=587,
        sender="Monitor <news-monitor@Example.ORG>",
        recipients=("desk@example.org",),
        username="user",
        password=SecretStr(PASSWORD),
    )
    assert c.security == "starttls" and c.timeout == 15.0
    assert c.thread_domain == "example.org"
    assert PASSWORD not in repr(c) and PASSWORD not in str(c)
    with pytest.raises(SinkConfigError, match="together"):
        EmailConfig(host="h", port=25, sender=SENDER, recipients=("a@b",), username="user")


def test_an_error_echoing_the_password_is_redacted_and_not_chained() -> None:
    # aiosmtplib does not echo credentials, but a relay's reply or a future version might
    sink = EmailSink(config(2525, username="user", password=SecretStr(PASSWORD)))
    plain = base64.b64encode(f"\0user\0{PASSWORD}".encode()).decode()
    for text in (f"535 bad credentials {PASSWORD}", f"535 rejected AUTH PLAIN {plain}"):
        error = sink._error(RuntimeError(text), PASSWORD)
        assert PASSWORD not in str(error) and plain not in str(error)
        assert "127.0.0.1:2525" in str(error) and "535" in str(error)
        assert error.__cause__ is None and error.__context__ is None
    harmless = RuntimeError("535 Authentication failed")
    assert sink._error(harmless, PASSWORD).__cause__ is harmless
