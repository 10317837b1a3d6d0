"""The HTML part of an alert email as a person sees it: the message goes through a real SMTP
server (aiosmtpd), its HTML alternative is rendered by a real headless Chromium, and the
screenshot and the rendered DOM are checked. Hostile feed text (CR/LF, a <script>, Slack's
<!channel>) must show as text, never run or become markup.

The screenshot is kept as a build artifact: ${MONITOR_ARTIFACTS:-build/artifacts}/email-alert.png.
Chromium is Debian's package (`apt-get install chromium`, done by .ci/run); without it this test
fails under CI and skips elsewhere."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import zlib
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

from monitor.models import Alert, Level, RuleHit, ScoreTerm
from monitor.sinks.email import EmailConfig, EmailSink
from tests.conftest import REPO, unavailable

TITLE = "Breaking\r\nBcc: victim@example.com <script>alert(1)</script> <!channel> Putin warns of military response"
# What a reader must see: the line break folded to a space, every character shown as text.
SHOWN_TITLE = "Breaking Bcc: victim@example.com <script>alert(1)</script> <!channel> Putin warns of military response"
SNIPPET = "troops <img src=x onerror=alert(2)> could <script>alert(3)</script> invade"
WINDOW = (1000, 1400)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        unavailable("chromium is not installed (apt-get install chromium)")
    return path


def artifacts_dir() -> Path:
    where = Path(os.environ.get("MONITOR_ARTIFACTS") or "build/artifacts")
    if not where.is_absolute():
        where = REPO / where
    where.mkdir(parents=True, exist_ok=True)
    return where


# -- the message, as it arrives ----------------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


def hostile_alert() -> Alert:
    return Alert(
        id="a1b2c3d4e5f6a1b2c3d4e5f6",
        story_id="story42",
        route="desk-email",
        sink="email",
        kind="opened",
        level=Level.high,
        score=88.6,
        terms=(
            ScoreTerm(label="military-technical-response (headline)", value=67.5),
            ScoreTerm(label="source reliability", value=0.95, op="x"),
        ),
        title=TITLE,
        url="javascript:alert(document.cookie)",
        sources=("global-wire", "evil<b>feed</b>"),
        hits=(
            RuleHit(
                rule_id="invasion",
                phrase="invasion",
                text="invade",
                snippet=SNIPPET,
            ),
        ),
        created_at=datetime(2021, 12, 21, 12, 0, tzinfo=UTC),
        rules_version="rules-v7",
    )


async def sent_html(port: int, inbox: Inbox) -> str:
    """The HTML alternative of the email the sink sent for the hostile alert, as received."""
    sink = EmailSink(
        EmailConfig(
            host="127.0.0.1",
            port=port,
            sender="news-monitor@example.org",
            recipients=("desk@example.org",),
            security="none",
            timeout=10.0,
        )
    )
    await sink.send(hostile_alert())
    [envelope] = inbox.envelopes
    assert isinstance(envelope.content, bytes)
    msg = message_from_bytes(envelope.content, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    part = msg.get_body(("html",))
    assert part is not None, "the email has no HTML part"
    html = part.get_content()
    assert isinstance(html, str)
    return html


# -- Chromium ----------------------------------------------------------------------------------


def run_chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        *args,
        page.as_uri(),
    ]
    run = subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-3000:]
    return run


class Dom(HTMLParser):
    """The rendered DOM's elements and its visible text (script and style content left out)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in ("script", "style"):
            self._hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.text.append(data)

    @property
    def visible_text(self) -> str:
        return " ".join(" ".join(self.text).split())


# -- PNG, decoded with the standard library ----------------------------------------------------


def png_pixels(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """(width, height, bytes per pixel, rows of unfiltered pixel bytes) of an 8-bit, non-interlaced
    greyscale, RGB or RGBA PNG (what Chromium writes)."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    pos, chunks, idat = 8, [], bytearray()
    header = b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in the {kind!r} chunk"
        chunks.append(kind)
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND", chunks
    width, height, depth, colour, _comp, _filter, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and interlace == 0, (depth, interlace)
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    assert len(raw) == height * (stride + 1), "IDAT holds the wrong number of bytes"
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, row = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:  # Sub
            for i in range(bpp, stride):
                row[i] = (row[i] + row[i - bpp]) & 0xFF
        elif kind == 2:  # Up
            row = bytearray((a + b) & 0xFF for a, b in zip(row, prev, strict=True))
        elif kind == 3:  # Average
            for i in range(stride):
                left = row[i - bpp] if i >= bpp else 0
                row[i] = (row[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:  # Paeth
            for i in range(stride):
                a = row[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                row[i] = (row[i] + pred) & 0xFF
        else:
            assert kind == 0, f"unknown PNG filter {kind}"
        rows.append(bytes(row))
        prev = row
    return width, height, bpp, rows


# -- the test ----------------------------------------------------------------------------------


async def test_hostile_alert_email_renders_as_inert_text(
    tmp_path: Path, smtp: tuple[int, Inbox]
) -> None:
    chromium()  # before any work: skip (or fail under CI) at once without it
    html = await sent_html(*smtp)
    page = tmp_path / "email-alert.html"
    page.write_text(html, encoding="utf-8")
    screenshot = tmp_path / "email-alert.png"

    run_chromium(page, tmp_path / "profile-shot", f"--screenshot={screenshot}")
    dumped = run_chromium(page, tmp_path / "profile-dom", "--dump-dom").stdout.decode("utf-8")

    # The screenshot: a valid PNG of the window's size, with something drawn on it.
    assert screenshot.is_file(), "Chromium wrote no screenshot"
    png = screenshot.read_bytes()
    shutil.copyfile(screenshot, artifacts_dir() / "email-alert.png")
    width, height, bpp, rows = png_pixels(png)
    assert (width, height) == WINDOW
    colours = {row[i : i + bpp] for row in rows for i in range(0, len(row), bpp)}
    assert len(colours) > 1, "the screenshot is one uniform colour: nothing was rendered"
    background = rows[-1][:bpp]  # the bottom corner: the page's background
    inked = sum(
        1 for row in rows for i in range(0, len(row), bpp) if row[i : i + bpp] != background
    )
    assert inked > 2000, f"only {inked} pixels differ from the background: is any text drawn?"

    # The rendered DOM: the title and the level as text; the hostile markup stayed text.
    dom = Dom()
    dom.feed(dumped)
    dom.close()
    text = dom.visible_text
    assert "script" not in dom.tags, "a <script> element made it into the rendered DOM"
    assert "img" not in dom.tags, "a hostile <img> made it into the rendered DOM"
    assert "<script" not in dumped.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dumped
    assert SHOWN_TITLE in text, text
    assert f"[HIGH] {SHOWN_TITLE}" in text  # the heading: level and title
    assert "Level high (opened)" in text  # the Level row
    assert "<!channel>" in text and "<script>alert(3)</script>" in text
    assert "evil<b>feed</b>" in text  # an outlet name is text too, not bold markup
    assert "javascript:alert(document.cookie)" in text
    assert "a" not in dom.tags, "a javascript: URL became a link"
    assert "88.6" in text and "story42" in text
