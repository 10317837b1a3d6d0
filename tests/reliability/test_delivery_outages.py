"""Destinations failing while alerts go out (embedded runtime, real servers):

* the SMTP server refuses connections for a minute, then comes up;
* Slack (the local stand-in speaking chat.postMessage) answers 429 with Retry-After and 500 in
  bursts all along;
* a JSON-lines route beside them delivers at once.

What the product promises (monitor/runtime/delivery.py, monitor/settings.py): a failed send is
retried with exponential backoff up to MONITOR_DELIVERY_MAX_DELAY between tries, at most
MONITOR_DELIVERY_ATTEMPTS times; only then is the alert set aside as dead (kept in the state
file, listed by `monitor alerts dead`, sent again by `monitor alerts resend`), never dropped.
With the defaults (8 attempts, 60 s) that is at least 98 s of retries; this scenario runs with
15 attempts at most 8 s apart (at least 82 s) so it waits less after the server is back.
Either way an outage of a minute costs no alert: each arrives once, late."""

from __future__ import annotations

import asyncio
import email
import email.policy
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from monitor.feeds.sources import load_feeds
from monitor.rules.ruleset import load_ruleset
from monitor.runtime import delivery
from monitor.runtime.delivery import RetryPolicy
from monitor.runtime.embedded import EmbeddedRuntime
from monitor.settings import Settings
from monitor.state.archive import ArticleArchive
from monitor.state.sqlite import Store
from tests.conftest import RULES, HeldPort, unavailable
from tests.integration.kafka_support import corpus_articles, sample_articles, undecided
from tests.reliability.feeds import FeedServer, items_from
from tests.reliability.support import Scenario, seeded
from tests.unit.sinks.slack_server import SlackServer

OUTAGE = 60.0  # seconds the SMTP server refuses connections


def least_patience(policy: RetryPolicy) -> float:
    """The shortest time the policy keeps retrying one alert (every jitter at its low end)."""
    low = 1 - policy.jitter
    return sum(
        low * min(policy.base_delay * 2.0 ** (a - 1), policy.max_delay)
        for a in range(1, policy.attempts)
    )


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.first_at: float | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
        self.messages.append(email.message_from_bytes(raw, policy=email.policy.default))  # type: ignore[arg-type]
        self.first_at = self.first_at or time.monotonic()
        return "250 OK"


def test_default_retries_outlast_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    """The promise in numbers, from the code: the default policy retries one alert for at least
    98 s, so a destination down for a minute loses nothing."""
    default = RetryPolicy.of(Settings())
    assert (default.attempts, default.max_delay) == (8, 60.0)
    assert least_patience(default) > 95
    # and the policy really waits that long: its own delays, jitter at the low end
    monkeypatch.setattr(delivery.random, "uniform", lambda lo, hi: lo)
    waits = [default.delay(a, None) for a in range(1, default.attempts)]
    assert sum(waits) == pytest.approx(least_patience(default))


async def test_smtp_down_a_minute_and_slack_bursts(tmp_path: Path, scenario: Scenario) -> None:
    try:
        from aiosmtpd.controller import Controller
    except ImportError:  # a dev dependency: its absence fails under CI
        unavailable("aiosmtpd is not installed (pip install -e '.[dev]')")
    rng = seeded(scenario)
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    (rules / "routes.yaml").write_text(
        "routes:\n"
        "  - {name: desk-email, sink: email, min_level: high}\n"
        "  - {name: desk-slack, sink: slack, min_level: high}\n"
        "  - {name: archive, sink: jsonl, min_level: low}\n"
    )
    published = sample_articles() + corpus_articles(400)
    # the articles appear over 40 s, polled every 10 s: alerts go out all through the outage
    server = FeedServer(items_from(published, 4, rate=len(published) / 40, start=2.0)).start()
    smtp = HeldPort()  # connections are refused until the SMTP server starts there
    port = smtp.port
    slack = await SlackServer().start()
    # Slack pushes back in bursts: at first (the first alert: 429 three times, then 500 three
    # times, scripted), then all along: any request may start a burst of 1-3 answers 429
    # (Retry-After 1-2 s) or 500, followed by at least one normal answer.
    slack.rate_limit("api", retry_after=1, times=3)
    slack.script("api", 500, "upstream exploded", times=3)
    burst: list[int] = []  # the statuses still to answer in the current burst
    rested = [True]  # a normal answer since the last burst
    answered: list[bool] = []  # per chat.postMessage request: True if made to fail
    scripted = slack._canned

    def canned(endpoint: Any) -> web.Response | None:
        answer = scripted(endpoint)
        if answer is None and not burst and rested[0] and rng.random() < 0.4:
            burst.extend([rng.choice([429, 500])] * rng.randint(1, 3))
        if answer is None and burst:
            rested[0] = False
            if burst.pop() == 429:
                answer = web.json_response(
                    {"ok": False, "error": "ratelimited"},
                    status=429,
                    headers={"Retry-After": str(rng.randint(1, 2))},
                )
            else:
                answer = web.Response(status=500, text="upstream exploded")
        elif answer is None:
            rested[0] = True
        answered.append(answer is not None)
        return answer

    slack._canned = canned  # type: ignore[method-assign]
    settings = Settings(
        state=tmp_path / "s.db",
        rules=rules,
        jsonl=tmp_path / "alerts.jsonl",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        email_from="monitor@example.org",
        email_to="desk@example.org",
        slack_bot_token=SecretStr(slack.token),
        slack_channel="#desk",
        slack_api_url=slack.api_base_url,
        delivery_attempts=15,
        delivery_max_delay=8.0,
    )
    assert least_patience(RetryPolicy.of(settings)) > OUTAGE
    runtime = EmbeddedRuntime(
        settings,
        load_ruleset(rules),
        load_feeds(server.feed_list(tmp_path / "feeds.yaml", interval="10s")),
    )
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    started = time.monotonic()
    run = asyncio.create_task(runtime.run())
    try:
        await asyncio.sleep(OUTAGE)
        assert not run.done(), "the run ended"
        smtp.release()
        controller.start()
        up = time.monotonic() - started
        links = {i.link for i in server.shown()}
        assert len(links) == len(published)
        while not links <= {a.url for a in ArticleArchive(runtime.store.db).articles()}:
            assert time.monotonic() - started < OUTAGE + 60, "the feeds' last items never came"
            await asyncio.sleep(0.5)
        runtime._stop.set()  # as SIGTERM does: what was decided is delivered, then it stops
        report = await asyncio.wait_for(run, 120)
        finished = time.monotonic() - started
    finally:
        if not run.done():
            runtime._stop.set()
            await asyncio.wait_for(run, 30)
        smtp.release()
        controller.stop()
        await slack.close()
        server.stop()

    store = Store(settings.state)
    try:
        ledger_ids: dict[str, set[str]] = {
            "desk-email": set(),
            "desk-slack": set(),
            "archive": set(),
        }
        for key in store.table("ledger"):
            alert_id, route = key.rsplit("|", 1)
            ledger_ids[route].add(alert_id)
        archived = list(ArticleArchive(store.db).articles())
        seen = {str(v).split("|", 1)[0] for v in store.table("seen").values()}
        dead, outbox = len(store.table("dead_alerts")), len(store.table("outbox"))
    finally:
        store.close()

    emails = [str(m["X-Monitor-Alert"]) for m in inbox.messages]
    posts = [s.body for s, failed in zip(slack.api, answered, strict=True) if not failed]
    pushed_back = sum(answered)
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    lost = undecided(archived, seen)
    scenario.published = len(archived)
    scenario.decided = scenario.published - len(lost)
    scenario.delivered = len(emails) + len(posts) + len(lines)
    scenario.duplicates = (len(emails) - len(set(emails))) + (
        len(posts) - len({(str(p.get("text")), p.get("thread_ts")) for p in posts})
    )
    scenario.lost = len(lost)
    scenario.note(
        f"SMTP refused connections for {up:.0f}s; first email "
        f"{(inbox.first_at or started) - started:.0f}s after the start; run over after "
        f"{finished:.0f}s"
    )
    scenario.note(
        f"Slack: {pushed_back} answers 429/500 in bursts, {len(posts)} posts; "
        f"emails {len(emails)}, JSON lines {len(lines)}; failed {report.failed}, dead {dead}"
    )
    assert {i.link for i in server.shown()} <= {a.url for a in archived}
    assert not lost
    assert report.failed == 0 and dead == 0 and outbox == 0
    assert inbox.first_at is not None and inbox.first_at - started >= OUTAGE
    # every alert of each route delivered once: what arrived is what the ledger recorded
    assert len(emails) == len(set(emails)) and set(emails) == ledger_ids["desk-email"]
    assert len(posts) == len(ledger_ids["desk-slack"]) >= 1
    assert scenario.duplicates == 0
    assert len(lines) == len(ledger_ids["archive"])
    assert pushed_back >= 6
