"""Hostile feed text in every sink: whatever a feed puts in a title, a body (hence a rule hit's
words and snippet), an outlet name or a link, each sink's output is inert and bounded.

* console: no rich markup taken from feed text, no escape sequence, NUL, bidi override or line
  break of its own reaching the terminal; capped;
* jsonl: one valid JSON object per line, one line per alert (also for str.splitlines());
* email: no header injection, the subject one bounded line that reads back as sent, the HTML
  part escaped (only our own tags and http(s) links), the text part bounded and clean;
* Slack: mrkdwn escaped so that no mention, channel ping or link can be forged, bidi controls
  stripped, Block Kit limits respected.

Explicit cases run each sink end to end (rich on a StringIO, a file, a real aiosmtpd, the local
Slack server); hypothesis then drives the pure renderers (no network) with generated text.

How feed text arrives (monitor/feeds/parse.py): feedparser decodes a document whose bytes are
not valid in its declared encoding as a legacy single-byte charset ("Ã©", "ÿþ", C1 controls);
one holding a lone surrogate (``&#xD800;``) is refused as unreadable. So text reaching an alert
holds mojibake and U+FFFD but never a surrogate: the strategies exclude surrogates.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import socket
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from aiosmtplib.email import flatten_message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from rich.console import Console

from monitor.models import Alert, AlertKind, Digest, Level, RuleHit, ScoreTerm
from monitor.sinks.console import ConsoleSink
from monitor.sinks.email import (
    SUBJECT_TITLE_MAX,
    EmailConfig,
    EmailSink,
    digest_bodies,
    digest_subject,
    html_body,
    subject,
    text_body,
)
from monitor.sinks.jsonl import JsonlSink, alert_record, json_line
from monitor.sinks.render import (
    breakdown,
    change,
    coverage,
    digest_headline,
    headline,
    kind_label,
)
from monitor.sinks.slack import (
    MAX_BLOCKS,
    MAX_CONTEXT_ELEMENTS,
    MAX_DIGEST_CHARS,
    MAX_HEADER,
    MAX_SECTION,
    MAX_TEXT,
    Message,
    SlackConfig,
    SlackSink,
    build_digest,
    build_message,
    safe_link,
)
from tests.property.strategies import ANY_CHAR, HOSTILE_PIECES, hostile_text
from tests.unit.sinks.slack_server import SlackServer

NOW = datetime(2021, 12, 21, 12, 0, tzinfo=UTC)
SENDER = "news-monitor@example.org"
RECIPIENTS = ("desk@example.org", "Night Editor <night@example.net>")

# Named hostile texts, each an explicit case for every sink.
HOSTILE = {
    "crlf-headers": "Breaking\r\nBcc: victim@example.com\r\nSubject: forged\r\n\r\n<b>body</b>",
    "lone-cr-lf": "one\rtwo\nthree\x85four\u2028five\u2029six\x0bseven\x0ceight",
    "nul-and-controls": "nul\x00here \x1b[2J\x1b[31mred\x1b[0m \x07bell \x08back \x7fdel \x9bcsi",
    "osc-hyperlink": "\x1b]8;;https://evil.example\x1b\\click me\x1b]8;;\x1b\\ \x1b]52;c;ZXZpbA==\x07",
    "bidi": "invoice \u202egpj.exe\u202c \u202d\u202a\u202b \u2066\u2067\u2068\u2069 \u200e\u200f\u061c",
    "zero-width": "<!chan\u200bnel> <\u200b!here> <@\u200dU024BE7LH> \ufeffzero\u2060width\u200c",
    "slack-mentions": "<!channel> <!here> <!everyone> <@U024BE7LH> <#C024BE7LR> <!subteam^S0AB>",
    "slack-links": "<https://evil.example|click here> <mailto:x@evil.example|mail> <javascript:x|y>",
    "mrkdwn": "*bold* _italic_ ~strike~ `code` ```block``` > quote &amp; &lt;!here&gt; & < >",
    "html": '<script>alert(1)</script><img src=x onerror=alert(1)>"><a href="javascript:x">y</a>',
    "rich-markup": "[bold red]Fake[/bold red] [link=https://evil.example]click[/link] [/] \\[x]\\",
    "javascript-url": "javascript:alert(document.cookie)",
    "mojibake": "Ã© ÿþ í € \ufffd\ufffd caf\u00c3\u00a9 \x81\x8d\x8f\x90\x9d",
    "encoded-word": "=?utf-8?q?=0D=0ABcc:_victim@example.com?= =?utf-8?b?PHNjcmlwdD4=?=",
    "smtp-dot": "line\r\n.\r\nQUIT\r\nMAIL FROM:<x@evil.example>",
    "unicode": "ﷺ ͺ ﬁ İ ß ǅ 𝕏 👨\u200d👩\u200d👧 \U000e0041\U000e0042 \ue000 \u00ad",
}
MEGABYTE = ("<!channel> [bold]x[/bold] <script>\u202e\r\n\x00 &" * 25_000)[:1_048_576]
HOSTILE["megabyte"] = MEGABYTE

URLS = {
    "javascript": "javascript:alert(document.cookie)",
    "data": "data:text/html,<script>alert(1)</script>",
    "markup-breakout": "https://news.example/a|<!here>?x=1&y=>2 <@U024BE7LH>",
    "crlf": "https://news.example/a\r\nBcc: victim@example.com",
    "bidi": "https://news.example/\u202egpj.exe",
    "long-non-ascii": "https://news.example/" + "é" * 970,
    "long-ampersands": "https://news.example/?" + "&" * 970,
    "ok": "https://news.example/world/story?id=1&x=2",
    "empty": "",
}


def hostile_alert(
    text: str,
    *,
    url: str = URLS["ok"],
    kind: AlertKind = "opened",
    story: str = "story-1",
    level: Level = Level.high,
) -> Alert:
    """An alert whose every feed-supplied field carries ``text``."""
    return Alert(
        id=f"{story}-{kind}",
        story_id=story,
        route="desk",
        sink="test",
        kind=kind,
        level=level,
        previous_level=Level.medium if kind == "escalated" else Level.none,
        score=88.6,
        terms=(
            ScoreTerm(label="invasion (headline)", value=67.5),
            ScoreTerm(label="source reliability", value=0.95, op="x"),
        ),
        title=text,
        url=url,
        sources=(text, "ok-outlet", text[:50]),
        hits=(
            RuleHit(rule_id="invasion", phrase="invasion", text=text, snippet=text, in_title=True),
            RuleHit(rule_id="strikes", phrase="strikes", text=text, articles=3),
        ),
        created_at=NOW,
        rules_version="rules-v1",
        articles=4,
    )


def make_digest(*alerts: Alert) -> Digest:
    return Digest(
        id="digest-1", route="desk", sink="test", reason="quiet", alerts=alerts, created_at=NOW
    )


def case_alerts() -> list[Alert]:
    """Every named text in every kind of alert, each with a hostile link."""
    kinds: list[AlertKind] = ["opened", "escalated", "updated", "resolved"]
    urls = list(URLS.values())
    return [
        hostile_alert(text, url=urls[i % len(urls)], kind=kinds[i % 4], story=f"story-{name}")
        for i, (name, text) in enumerate(HOSTILE.items())
    ]


# Characters no sink may pass on from feed text into a line meant for people: controls (Cc),
# format characters (Cf: bidi overrides, zero-width), line and paragraph separators.
def _bad_chars(text: str, allowed: str = "") -> list[str]:
    return sorted(
        {
            ch
            for ch in text
            if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") and ch not in allowed
        }
    )


# Bidi embeddings, overrides and isolates, and the implicit marks: what reorders a line.
BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


# -- console -----------------------------------------------------------------------------------

SGR = re.compile(r"\x1b\[[0-9;]*m")  # rich's own colours and styles


def console_output(alerts: list[Alert], *, terminal: bool, digest: bool = False) -> str:
    out = io.StringIO()
    console = Console(
        file=out,
        width=400,
        force_terminal=terminal,
        color_system="truecolor" if terminal else None,
        emoji=False,
    )
    sink = ConsoleSink(console)

    async def run() -> None:
        if digest:
            await sink.send_digest(make_digest(*alerts))
        for alert in [] if digest else alerts:
            await sink.send(alert)

    asyncio.run(run())
    return out.getvalue()


def check_console(output: str, alerts: list[Alert], *, digest: bool = False) -> None:
    plain = SGR.sub("", output)
    assert "\x1b" not in plain  # no escape sequence but rich's own colours
    assert _bad_chars(plain, allowed="\n") == []
    # one panel per alert (or one per digest), each with exactly one line of sources per story
    tops = [line for line in plain.splitlines() if line.startswith("╭")]
    assert len(tops) == (1 if digest else len(alerts))
    sources = [line for line in plain.splitlines() if re.match(r"│ *sources \(\d+\): ", line)]
    assert len(sources) == len(alerts)
    # feed text is shown, not obeyed: markup from a title appears as written
    for alert in alerts:
        if "[bold red]Fake[/bold red]" in alert.title:
            assert "[bold red]Fake[/bold red] [link=https://evil.example]click[/link]" in plain
    assert "\x1b]8;" not in output  # no hyperlink forged
    # bounded: a panel line per field, each capped (1000 characters of title)
    assert len(plain) <= 8000 * len(alerts) + 2000


@pytest.mark.parametrize("terminal", [False, True], ids=["file", "terminal"])
def test_console_renders_hostile_text_inert_and_bounded(terminal: bool) -> None:
    alerts = case_alerts()
    check_console(console_output(alerts, terminal=terminal), alerts)
    check_console(console_output(alerts, terminal=terminal, digest=True), alerts, digest=True)


def test_console_megabyte_title_is_capped() -> None:
    output = console_output([hostile_alert("War " * 262_144)], terminal=False)
    assert "War War" in output
    assert len(output) < 10_000


# -- jsonl -------------------------------------------------------------------------------------


async def test_jsonl_is_one_valid_line_per_alert(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    sink = JsonlSink(path)
    alerts = case_alerts()
    held = [a.model_copy(update={"id": f"{a.id}-held"}) for a in alerts]
    for alert in alerts:
        await sink.send(alert)
    await sink.send_digest(make_digest(*held))
    data = path.read_bytes()
    assert data.endswith(b"\n")
    lines = data.split(b"\n")[:-1]
    assert len(lines) == 2 * len(alerts)
    # readers that use str.splitlines() (U+2028, U+0085, ...) see the same lines
    assert len(data.decode("utf-8").splitlines()) == len(lines)
    assert not re.search(rb"[\x00-\x09\x0b-\x1f]", data)  # controls only as JSON escapes
    records = [json.loads(line) for line in lines]
    # The archive keeps feed text exactly as received (JSON-escaped, inert): it is data.
    for record, alert in zip(records, alerts + held, strict=True):
        assert record["title"] == alert.title
        assert record["url"] == alert.url
        assert record["sources"] == list(alert.sources)
        assert record["evidence"][0]["snippet"] == alert.hits[0].snippet
    assert [r.get("digest_id") for r in records] == [None] * len(alerts) + ["digest-1"] * len(
        alerts
    )


# -- email -------------------------------------------------------------------------------------


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


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Collector]]:
    handler = Collector()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()


def email_config(port: int = 25) -> EmailConfig:
    return EmailConfig(
        host="127.0.0.1",
        port=port,
        sender=SENDER,
        recipients=RECIPIENTS,
        security="none",
        timeout=5.0,
    )


HEADERS = {
    "subject",
    "from",
    "to",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "auto-submitted",
    "x-monitor-story",
    "x-monitor-alert",
    "x-monitor-level",
    "x-monitor-digest",
    "x-monitor-digest-reason",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
}
ALLOWED_TAGS = {
    "html", "head", "meta", "body", "h2", "p", "table", "tr", "th", "td", "ul", "ol", "li", "b",
    "br", "a",
}  # fmt: skip
ALLOWED_ATTRS = {"charset", "align", "valign", "href"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.data: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.data.append(data)

    def handle_comment(self, data: str) -> None:
        raise AssertionError(f"a comment in the HTML part: {data!r}")


def check_html(html: str, links: set[str]) -> None:
    """Only our own tags and attributes; every link one of ``links`` (the alerts' http(s) URLs);
    the text between tags clean."""
    parser = _Tags()
    parser.feed(html)
    parser.close()
    for tag, attrs in parser.tags:
        assert tag in ALLOWED_TAGS, tag
        for name, value in attrs:
            assert name in ALLOWED_ATTRS, (tag, name)
            if name == "href":
                assert value in links, value  # the alert's own link, as it was
                assert value.lower().startswith(("http://", "https://"))
                assert not value.split()[1:] and _bad_chars(value) == []
    assert _bad_chars("".join(parser.data), allowed="\n") == []


def check_email(raw: bytes, alerts: list[Alert], *, digest: bool = False) -> EmailMessage:
    """The message as it goes over the wire: headers, subject, both parts."""
    head, sep, _ = raw.partition(b"\r\n\r\n")
    assert sep
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            continue  # a folded header's continuation
        name = line.split(b":", 1)[0].decode("ascii").lower()
        assert name in HEADERS, line
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))  # RFC 5322's hard limit
    assert b"\x00" not in raw
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    assert msg["Bcc"] is None and msg["Cc"] is None
    assert msg["To"] == ", ".join(RECIPIENTS)
    sent_subject = msg["Subject"]
    expected = digest_subject(make_digest(*alerts)) if digest else subject(alerts[0])
    # Reads back as sent, but for whitespace: the email package folds a long subject right
    # after "Subject:" and drops a space between two encoded words (cosmetic, its own doing).
    # No encoded word written in a feed's title is decoded, no header smuggled in.
    assert "".join(sent_subject.split()) == "".join(expected.split())
    assert _bad_chars(sent_subject) == [] and len(sent_subject) <= SUBJECT_TITLE_MAX + 80
    text_part, html_part = msg.get_body(("plain",)), msg.get_body(("html",))
    assert text_part is not None and html_part is not None
    # line ends as sent (CRLF) read as one "\n"; a lone CR would still show
    text = text_part.get_content().replace("\r\n", "\n")
    html = html_part.get_content().replace("\r\n", "\n")
    assert _bad_chars(text, allowed="\n") == []
    check_html(html, {a.url for a in alerts})
    bound = 200_000 if digest else 15_000
    assert len(text) <= bound and len(html) <= 2 * bound
    return msg


async def test_email_renders_hostile_text_inert_and_bounded(
    smtp: tuple[Controller, Collector],
) -> None:
    controller, handler = smtp
    sink = EmailSink(email_config(controller.port))
    alerts = case_alerts()
    for alert in alerts:
        await sink.send(alert)
    await sink.send_digest(make_digest(*alerts))
    assert len(handler.envelopes) == len(alerts) + 1
    for envelope in handler.envelopes:
        assert envelope.rcpt_tos == ["desk@example.org", "night@example.net"]
        assert envelope.mail_from == SENDER
    for envelope, alert in zip(handler.envelopes, alerts, strict=False):
        assert isinstance(envelope.content, bytes)
        check_email(envelope.content, [alert])
    digest_raw = handler.envelopes[-1].content
    assert isinstance(digest_raw, bytes)
    check_email(digest_raw, alerts, digest=True)


def test_email_megabyte_title_is_bounded() -> None:
    msg = EmailSink(email_config()).message(hostile_alert(MEGABYTE))
    raw = flatten_message(msg)
    assert len(raw) < 60_000
    check_email(raw, [hostile_alert(MEGABYTE)])


# -- Slack -------------------------------------------------------------------------------------

_LINK = re.compile(r"<([^<>|]*)\|([^<>]*)>")
_ENTITY = re.compile(r"&(?:amp|lt|gt);")


def _mrkdwn_texts(blocks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for block in blocks:
        if block["type"] == "section":
            yield block["text"]
        elif block["type"] == "context":
            yield from block["elements"]


def check_slack(message: Message, alerts: list[Alert], *, digest: bool = False) -> None:
    """Limits; every mrkdwn text verbatim, its only markup our own links to the alerts' URLs;
    no raw '&' outside an entity; no control or bidi character anywhere."""
    blocks = message.blocks
    assert 1 <= len(blocks) <= MAX_BLOCKS
    assert len(message.text) <= MAX_TEXT
    links = {safe_link(a.url) for a in alerts if a.url} - {None}
    total = 0
    for block in blocks:
        assert block["type"] in ("header", "section", "context")
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text"
            assert len(block["text"]["text"]) <= MAX_HEADER
            total += len(block["text"]["text"])
        if block["type"] == "context":
            assert len(block["elements"]) <= MAX_CONTEXT_ELEMENTS
    for obj in _mrkdwn_texts(blocks):
        assert obj["type"] == "mrkdwn" and obj["verbatim"] is True
        text = obj["text"]
        assert len(text) <= MAX_SECTION
        total += len(text)
        for url, label in _LINK.findall(text):
            assert url in links, url  # a link we made, to the alert's own http(s) URL
            assert label
        rest = _LINK.sub("", text)
        assert "<" not in rest and ">" not in rest, rest[:200]  # no mention, no forged link
        assert "&" not in _ENTITY.sub("", text)
    if digest:
        assert total <= MAX_DIGEST_CHARS
    for text in [message.text, *(o["text"] for o in _mrkdwn_texts(blocks))]:
        # Bidi controls and controls never pass. Other format characters may: zero-width
        # (non-)joiners shape Persian, Indic and emoji sequences, and, like the other invisible
        # ones, they cannot form markup once '<', '>' and '&' are escaped.
        assert [
            ch
            for ch in _bad_chars(text, allowed="\n")
            if ch in BIDI or unicodedata.category(ch) != "Cf"
        ] == []
    assert "<" not in message.text and ">" not in message.text
    assert "&" not in _ENTITY.sub("", message.text)


@pytest.mark.parametrize("mode", ["bot", "webhook"])
async def test_slack_renders_hostile_text_inert_and_bounded(mode: str) -> None:
    alerts = case_alerts()
    async with SlackServer() as server:
        if mode == "bot":
            config = SlackConfig(
                bot_token=SecretStr(server.token), channel="C0", api_base_url=server.api_base_url
            )
        else:
            config = SlackConfig(webhook_url=SecretStr(server.webhook_url))
        sink = SlackSink(config)
        for alert in alerts:
            await sink.send(alert)
        await sink.send_digest(make_digest(*alerts))
        await sink.close()
        seen = server.api if mode == "bot" else server.webhook
    assert len(seen) == len(alerts) + 1
    for request, alert in zip(seen, [*alerts, None], strict=True):
        body = request.body
        message = Message(text=body["text"], blocks=body["blocks"])
        check_slack(message, alerts if alert is None else [alert], digest=alert is None)
        for forged in ("<!channel>", "<!here>", "<!everyone>", "<@U024BE7LH>", "<#C024BE7LR>"):
            assert forged not in request.raw
        assert "<https://evil.example|" not in request.raw
        if mode == "bot":
            assert body["parse"] == "none" and body["link_names"] is False


# -- hypothesis: the pure renderers ------------------------------------------------------------

MODEST = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

feed_text = st.one_of(hostile_text, st.text(ANY_CHAR, max_size=120))
url_text = st.one_of(
    st.sampled_from(list(URLS.values())),
    st.tuples(
        st.sampled_from(("http://", "https://", "HTTPS://", "javascript:", "")), feed_text
    ).map("".join),
    st.tuples(
        st.just("https://news.example/"),
        st.text(ANY_CHAR, max_size=200),
    ).map("".join),
    # long links: escaping and %-encoding grow them up to 9 times
    st.tuples(st.sampled_from("é&<>| ✓a"), st.integers(100, 1100)).map(
        lambda cn: "https://news.example/" + cn[0] * cn[1]
    ),
)


@st.composite
def alerts(draw: st.DrawFn) -> Alert:
    text = draw(feed_text)
    kind = draw(st.sampled_from(["opened", "escalated", "updated", "resolved"]))
    hits = draw(
        st.lists(
            st.builds(
                RuleHit,
                rule_id=st.sampled_from(["invasion", "strikes", "nuclear-threat"]),
                phrase=st.sampled_from(["invasion", "strikes"]),
                text=feed_text,
                snippet=feed_text,
                in_title=st.booleans(),
                articles=st.integers(1, 50),
            ),
            max_size=3,
        )
    )
    return Alert(
        id=draw(st.sampled_from(["a1", "x" * 300, "id with spaces"])),
        story_id=draw(st.one_of(st.sampled_from(["s1", "story-2"]), feed_text)),
        route="desk",
        sink="test",
        kind=kind,
        level=draw(st.sampled_from([Level.low, Level.medium, Level.high, Level.critical])),
        previous_level=Level.low if kind == "escalated" else Level.none,
        score=draw(st.floats(0, 1000)),
        terms=(ScoreTerm(label="invasion (headline)", value=40), ScoreTerm(label="x", value=1)),
        title=text,
        url=draw(url_text),
        sources=tuple(draw(st.lists(st.one_of(feed_text, st.just("ok-outlet")), max_size=8))),
        hits=tuple(hits),
        created_at=NOW,
        rules_version=draw(st.sampled_from(["", "r1"])),
        articles=draw(st.integers(1, 1000)),
    )


@MODEST
@given(alerts())
def test_render_words_never_crash(alert: Alert) -> None:
    # render.py passes feed text through unescaped (each sink cleans for its medium): it only
    # has to hold together, and its own words must not depend on feed text at all.
    assert alert.title in headline(alert)
    tame = alert.model_copy(
        update={"title": "t", "url": "", "sources": ("s",) * len(alert.sources), "hits": ()}
    )
    for words in (change, kind_label, coverage):
        assert words(alert) == words(tame)
    assert digest_headline(make_digest(alert)) == digest_headline(make_digest(tame))
    assert breakdown(alert) == breakdown(tame)


@MODEST
@given(st.lists(alerts(), min_size=1, max_size=3), st.booleans())
def test_console_never_crashes_and_stays_inert(items: list[Alert], terminal: bool) -> None:
    check_console(console_output(items, terminal=terminal), items)
    check_console(console_output(items, terminal=terminal, digest=True), items, digest=True)


@MODEST
@given(st.lists(alerts(), min_size=1, max_size=3))
def test_jsonl_lines_never_break(items: list[Alert]) -> None:
    text = "".join(json_line(alert_record(a)) for a in items)
    assert len(text.splitlines()) == len(items) == text.count("\n")
    for line, alert in zip(text.splitlines(), items, strict=True):
        assert json.loads(line)["title"] == alert.title


@MODEST
@given(alerts())
def test_email_message_never_crashes_and_stays_inert(alert: Alert) -> None:
    sink = EmailSink(email_config())
    raw = flatten_message(sink.message(alert))
    check_email(raw, [alert])
    # the parts as rendered, before MIME: one subject line, clean text, our tags only
    assert "\n" not in subject(alert) and "\r" not in subject(alert)
    assert _bad_chars(text_body(alert), allowed="\n") == []
    check_html(html_body(alert), {alert.url})


@MODEST
@given(st.lists(alerts(), min_size=1, max_size=3))
def test_email_digest_never_crashes_and_stays_inert(items: list[Alert]) -> None:
    digest = make_digest(*items)
    text, html = digest_bodies(digest)
    assert _bad_chars(text, allowed="\n") == []
    check_html(html, {a.url for a in items})
    check_email(
        flatten_message(EmailSink(email_config()).digest_message(digest)), items, digest=True
    )


@MODEST
@given(alerts())
def test_slack_message_never_crashes_and_stays_inert(alert: Alert) -> None:
    check_slack(build_message(alert), [alert])


@MODEST
@given(st.lists(alerts(), min_size=1, max_size=4))
def test_slack_digest_never_crashes_and_stays_inert(items: list[Alert]) -> None:
    check_slack(build_digest(make_digest(*items)), items, digest=True)


@pytest.mark.parametrize("piece", HOSTILE_PIECES)
def test_each_hostile_piece_is_inert_in_slack(piece: str) -> None:
    alert = hostile_alert(f"before {piece} after", url=f"https://news.example/{piece}")
    check_slack(build_message(alert), [alert])
