"""The bundled samples through the embedded runtime to a real SMTP server (aiosmtpd): the seed
story is one email thread, opened then escalated, each message once."""

from __future__ import annotations

import email
import email.policy
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from monitor.feeds.sources import load_feeds, sample_feeds_path
from monitor.rules.ruleset import load_ruleset
from monitor.runtime.embedded import EmbeddedRuntime
from monitor.settings import Settings
from tests.conftest import RULES


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
        self.messages.append(email.message_from_bytes(raw, policy=email.policy.default))  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()


def email_only(tmp_path: Path, port: int) -> tuple[Path, Settings]:
    """The bundled rules with one route, email at high, to the SMTP server on ``port``."""
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    (rules / "routes.yaml").write_text(
        "routes:\n  - name: desk-email\n    sink: email\n    min_level: high\n"
    )
    settings = Settings(
        state=tmp_path / "s.db",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        email_from="monitor@example.org",
        email_to="desk@example.org, duty@example.org",
    )
    return rules, settings


async def test_seed_story_is_one_email_thread(tmp_path: Path, smtp: tuple[int, Inbox]) -> None:
    port, inbox = smtp
    rules, settings = email_only(tmp_path, port)
    runtime = EmbeddedRuntime(settings, load_ruleset(rules), load_feeds(sample_feeds_path()))
    report = await runtime.run(once=True)
    assert report.failed == 0 and report.skipped_routes == {}
    seed = [m for m in inbox.messages if "militarily and technically" in str(m["Subject"])]
    assert [str(m["Subject"]).split("]")[0] for m in seed] == ["[HIGH", "[CRITICAL"]
    first, second = seed
    assert second["In-Reply-To"] == first["Message-ID"] == second["References"]
    assert "military-technical-response" in first.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    ids = [m["Message-ID"] for m in inbox.messages]
    assert len(ids) == len(set(ids)), "an email was sent twice"
    # a second run on the same state sends nothing
    again = EmbeddedRuntime(settings, load_ruleset(rules), load_feeds(sample_feeds_path()))
    for name in list(again.poller.state):
        again.poller.state[name] = again.poller.state[name].model_copy(update={"next_poll": 0})
    await again.run(once=True)
    assert [m["Message-ID"] for m in inbox.messages] == ids


async def test_an_unconfigured_email_route_is_skipped_and_reported(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    (rules / "routes.yaml").write_text(
        "routes:\n  - name: desk-email\n    sink: email\n    min_level: high\n"
        "  - name: archive\n    sink: jsonl\n    min_level: low\n"
    )
    settings = Settings(state=tmp_path / "s.db", jsonl=tmp_path / "a.jsonl")
    runtime = EmbeddedRuntime(settings, load_ruleset(rules), load_feeds(sample_feeds_path()))
    await runtime.run(once=True)
    assert "MONITOR_SMTP_HOST" in runtime.report.skipped_routes["desk-email"]
    assert (tmp_path / "a.jsonl").read_text().count("militarily and technically") >= 1


async def test_smtp_down_for_30_seconds_then_back_every_alert_arrives_once(
    tmp_path: Path,
) -> None:
    """The server is unreachable when the alerts are decided; delivery keeps retrying with
    backoff and everything arrives, once, after it comes back."""
    import asyncio

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rules, settings = email_only(tmp_path, port)
    runtime = EmbeddedRuntime(settings, load_ruleset(rules), load_feeds(sample_feeds_path()))
    run = asyncio.create_task(runtime.run(once=True))
    await asyncio.sleep(30)
    assert not run.done(), "the run gave up while the server was down"
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        report = await asyncio.wait_for(run, 120)
    finally:
        controller.stop()
    assert report.failed == 0 and report.delivered >= 2
    seed = [m for m in inbox.messages if "militarily and technically" in str(m["Subject"])]
    assert [str(m["Subject"]).split("]")[0] for m in seed] == ["[HIGH", "[CRITICAL"]
    ids = [m["Message-ID"] for m in inbox.messages]
    assert len(ids) == len(set(ids)) == report.delivered
