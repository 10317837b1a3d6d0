"""Secrets never appear anywhere: `monitor run --once` as a real subprocess, over the bundled
samples and rules (routes: console, the JSON-lines archive, email and Slack at high), with
distinctive credentials in its environment and destinations that fail the way credentials tend to
leak: the SMTP server refusing the login (or quoting it back), or not listening; the Slack
stand-in answering invalid_auth or HTTP 500; the webhook URL pointing at a closed port or at a
server that answers garbage. Everything the run leaves is searched for every secret, plain and
encoded: stdout, stderr (JSON and console logs), the alerts file, the SQLite state file's bytes
(dead alerts carry error text), and /metrics scraped while it runs.

Retries are made few and short: MONITOR_DELIVERY_ATTEMPTS / MONITOR_DELIVERY_MAX_DELAY where the
settings have them; where they do not (the retry policy was fixed at 5 attempts, 1-8 s apart), the
subprocess starts the CLI through a launcher that swaps in a fast policy. Either way the retry path
(and its warning log) still runs, in milliseconds instead of minutes."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import secrets
import shutil
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import aiohttp
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import REPO, RULES, free_port
from tests.unit.sinks.slack_server import GarbageServer, SlackServer

# Few, short retries where settings can ask for them (MONITOR_DELIVERY_ATTEMPTS, ..._MAX_DELAY).
FAST_RETRIES = {"MONITOR_DELIVERY_ATTEMPTS": "2", "MONITOR_DELIVERY_MAX_DELAY": "0.05"}
# The CLI, unchanged; where no setting shortens the retries, with a fast retry policy in place
# of the real one (1+2+4+8 s per alert).
LAUNCHER = """
import dataclasses
import sys

from monitor.runtime import delivery
from monitor.settings import Settings

if "delivery_attempts" not in Settings.model_fields:

    @dataclasses.dataclass(frozen=True)
    class FastRetry(delivery.RetryPolicy):
        attempts: int = 2
        base_delay: float = 0.01
        max_delay: float = 0.05

    delivery.RetryPolicy = FastRetry

from monitor.cli import main

sys.argv[0] = "monitor"
main()
"""

# The bundled routes' sinks, without delivery policies (a group window would hold a --once run
# open for its length): every high alert goes to email and Slack the moment it is raised.
ROUTES = """\
routes:
  - name: desk-console
    sink: console
    min_level: medium
  - name: archive
    sink: jsonl
    min_level: low
  - name: desk-slack
    sink: slack
    min_level: high
  - name: desk-email
    sink: email
    min_level: high
"""
RUN_TIMEOUT = 60.0
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# -- the secrets, and every form they might leak in --------------------------------------------


@dataclass(frozen=True)
class Secrets:
    """Distinctive credentials, new for each run. Each carries a random core of its own, and the
    password has characters that URL-encoding and base64 change."""

    user_core: str = field(default_factory=lambda: secrets.token_hex(6))
    password_core: str = field(default_factory=lambda: secrets.token_hex(6))
    token_core: str = field(default_factory=lambda: secrets.token_hex(6))
    webhook_core: str = field(default_factory=lambda: secrets.token_hex(6))

    @property
    def username(self) -> str:
        return f"mon-user-{self.user_core}"

    @property
    def password(self) -> str:
        return f"Pw+{self.password_core}/=@ !x"

    @property
    def bot_token(self) -> str:
        return f"xoxb-SECRET-{self.token_core}"

    def webhook_path(self) -> str:
        return f"/webhook/T0SECRET/B0SECRET/{self.webhook_core}"

    def forms(self, webhook_url: str | None) -> dict[str, str]:
        """Every string that must appear nowhere -> what it is."""
        plain = {
            "SMTP username": self.username,
            "SMTP password": self.password,
            "Slack bot token": self.bot_token,
            "webhook secret path": self.webhook_path(),
        }
        if webhook_url:
            plain["webhook URL"] = webhook_url
        found: dict[str, str] = {}
        for name, value in plain.items():
            found.setdefault(value, name)
            found.setdefault(quote(value, safe=""), f"{name}, URL-encoded")
            found.setdefault(quote(value), f"{name}, URL-encoded (path)")
            found.setdefault(quote_plus(value), f"{name}, form-encoded")
            found.setdefault(json.dumps(value)[1:-1], f"{name}, JSON-escaped")
            found.setdefault(base64.b64encode(value.encode()).decode(), f"{name}, base64")
        for what, raw in (
            ("SMTP AUTH PLAIN", f"\0{self.username}\0{self.password}"),
            ("SMTP AUTH PLAIN (no authzid)", f"{self.username}\0{self.password}"),
        ):
            found.setdefault(base64.b64encode(raw.encode()).decode(), what)
        # the random cores alone: a secret cut short, or re-encoded some other way
        for name, core in (
            ("SMTP username", self.user_core),
            ("SMTP password", self.password_core),
            ("Slack bot token", self.token_core),
            ("webhook secret", self.webhook_core),
        ):
            found.setdefault(core, f"{name} (its random part)")
        return found


def leaks(where: str, data: bytes | str, forms: dict[str, str]) -> list[str]:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    variants = {text, ANSI.sub("", text)}
    return sorted(
        {
            f"{what} in {where}"
            for variant in variants
            for secret, what in forms.items()
            if secret in variant
        }
    )


# -- the destinations --------------------------------------------------------------------------


class Accept:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


class Authenticator:
    """Records the credentials offered; accepts them only when ``accept`` is true. With ``echo``
    its refusal quotes what it was offered, as careless servers do."""

    def __init__(self, accept: bool, username: str, password: str, echo: bool = False) -> None:
        self.accept = accept
        self.echo = echo
        self.expected = (username.encode(), password.encode())
        self.offered: list[tuple[bytes, bytes]] = []

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.offered.append((data.login, data.password))
        ok = self.accept and (data.login, data.password) == self.expected
        message = None
        if self.echo and not ok:
            login, password = data.login.decode(), data.password.decode()
            message = f"535 5.7.8 Authentication failed for {login} (password {password})"
        # handled=False: aiosmtpd answers a failure with the message, or its own 535
        return AuthResult(success=ok, handled=False, message=message)


@contextmanager
def smtp_server(**kw: Any) -> Iterator[int]:
    port = free_port()
    controller = Controller(Accept(), hostname="127.0.0.1", port=port, **kw)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@dataclass
class Setup:
    """One run's destinations, and what must be seen to prove the failure path ran."""

    env: dict[str, str]
    webhook_url: str | None = None
    expect_errors: dict[str, str] = field(default_factory=dict)  # sink -> text in the error
    expect_ok: set[str] = field(default_factory=set)  # sinks that must deliver
    check: Callable[[], None] = lambda: None


def smtp_env(port: int, s: Secrets, security: str = "none") -> dict[str, str]:
    return {
        "MONITOR_SMTP_HOST": "127.0.0.1",
        "MONITOR_SMTP_PORT": str(port),
        "MONITOR_SMTP_SECURITY": security,
        "MONITOR_SMTP_USERNAME": s.username,
        "MONITOR_SMTP_PASSWORD": s.password,
        "MONITOR_EMAIL_FROM": "news-monitor@example.org",
        "MONITOR_EMAIL_TO": "desk@example.org",
    }


def bot_env(slack: SlackServer, s: Secrets) -> dict[str, str]:
    return {
        "MONITOR_SLACK_BOT_TOKEN": s.bot_token,
        "MONITOR_SLACK_CHANNEL": "#desk",
        "MONITOR_SLACK_API_URL": slack.api_base_url,
    }


async def auth_refused(stack: AsyncExitStack, s: Secrets) -> Setup:
    """The SMTP server refuses the login; Slack does not know the bot token (invalid_auth). The
    webhook URL is set too (the bot token wins): a configured secret that is never sent."""
    auth = Authenticator(False, s.username, s.password)
    port = stack.enter_context(smtp_server(authenticator=auth, auth_require_tls=False))
    slack = await stack.enter_async_context(SlackServer(token="xoxb-the-right-one"))
    webhook = slack.base + s.webhook_path()

    def check() -> None:
        assert (s.username.encode(), s.password.encode()) in auth.offered
        assert slack.api and slack.api[0].headers["Authorization"] == f"Bearer {s.bot_token}"
        assert not slack.webhook

    return Setup(
        env={
            **smtp_env(port, s),
            **bot_env(slack, s),
            "MONITOR_SLACK_WEBHOOK_URL": webhook,
        },
        webhook_url=webhook,
        expect_errors={"email": "SMTPAuthenticationError", "slack": "invalid_auth"},
        check=check,
    )


async def smtp_closed_slack_500(stack: AsyncExitStack, s: Secrets) -> Setup:
    """Nothing listens on the SMTP port; Slack's Web API answers HTTP 500 (retried)."""
    slack = await stack.enter_async_context(SlackServer(token=s.bot_token))
    slack.script("api", 500, "internal server error: " + s.bot_token, times=1000)

    def check() -> None:
        assert len(slack.api) >= 2  # retried

    return Setup(
        env={**smtp_env(free_port(), s), **bot_env(slack, s)},
        expect_errors={"email": "SMTPConnectError", "slack": "HTTP 500"},
        check=check,
    )


async def webhook_closed_port(stack: AsyncExitStack, s: Secrets) -> Setup:
    """The webhook URL points at a closed port; the SMTP server takes the login and the mail (a
    success must not log the credentials either)."""
    auth = Authenticator(True, s.username, s.password)
    port = stack.enter_context(smtp_server(authenticator=auth, auth_require_tls=False))
    webhook = f"http://127.0.0.1:{free_port()}{s.webhook_path()}"

    def check() -> None:
        assert (s.username.encode(), s.password.encode()) in auth.offered

    return Setup(
        env={**smtp_env(port, s), "MONITOR_SLACK_WEBHOOK_URL": webhook},
        webhook_url=webhook,
        expect_errors={"slack": "ClientConnectorError"},
        expect_ok={"email"},
        check=check,
    )


async def webhook_500_starttls(stack: AsyncExitStack, s: Secrets) -> Setup:
    """The webhook answers HTTP 500 (retried); the SMTP server does not offer the STARTTLS the
    settings require (the login is never sent in the clear)."""
    slack = await stack.enter_async_context(SlackServer())
    slack.script("webhook", 500, "error at " + s.webhook_path(), times=1000)
    port = stack.enter_context(smtp_server())
    webhook = slack.base + s.webhook_path()

    def check() -> None:
        assert slack.webhook and slack.webhook[0].path == s.webhook_path()

    return Setup(
        env={**smtp_env(port, s, security="starttls"), "MONITOR_SLACK_WEBHOOK_URL": webhook},
        webhook_url=webhook,
        expect_errors={"email": "STARTTLS", "slack": "HTTP 500"},
        check=check,
    )


async def webhook_garbage(stack: AsyncExitStack, s: Secrets) -> Setup:
    """The webhook's server answers bytes that are not HTTP: aiohttp's error quotes the URL."""
    garbage = await stack.enter_async_context(GarbageServer())
    auth = Authenticator(False, s.username, s.password)
    port = stack.enter_context(smtp_server(authenticator=auth, auth_require_tls=False))
    webhook = garbage.base + s.webhook_path()
    return Setup(
        env={**smtp_env(port, s), "MONITOR_SLACK_WEBHOOK_URL": webhook},
        webhook_url=webhook,
        expect_errors={"email": "SMTPAuthenticationError", "slack": "slack: webhook failed"},
    )


async def smtp_echoes_credentials(stack: AsyncExitStack, s: Secrets) -> Setup:
    """The SMTP server's refusal quotes the login and password it was offered; Slack's Web API
    is unreachable (a closed port)."""
    auth = Authenticator(False, s.username, s.password, echo=True)
    port = stack.enter_context(smtp_server(authenticator=auth, auth_require_tls=False))

    def check() -> None:
        assert (s.username.encode(), s.password.encode()) in auth.offered

    return Setup(
        env={
            **smtp_env(port, s),
            "MONITOR_SLACK_BOT_TOKEN": s.bot_token,
            "MONITOR_SLACK_CHANNEL": "#desk",
            "MONITOR_SLACK_API_URL": f"http://127.0.0.1:{free_port()}/api/",
        },
        expect_errors={"email": "SMTPAuthenticationError", "slack": "ClientConnectorError"},
        check=check,
    )


SCENARIOS = {
    "smtp-auth-refused+slack-invalid-auth": auth_refused,
    "smtp-closed+slack-api-500": smtp_closed_slack_500,
    "webhook-closed-port+smtp-login-ok": webhook_closed_port,
    "webhook-500+smtp-no-starttls": webhook_500_starttls,
    "webhook-garbage+smtp-auth-refused": webhook_garbage,
    "smtp-echoes-credentials+slack-api-closed": smtp_echoes_credentials,
}


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Run:
    returncode: int
    stdout: bytes
    stderr: bytes
    scrapes: list[str]
    files: dict[str, bytes]
    dead: list[dict[str, Any]]
    seconds: float


async def scrape(port: int, proc: asyncio.subprocess.Process, into: list[str]) -> None:
    """GET /metrics until the process ends, keeping every answer."""
    url = f"http://127.0.0.1:{port}/metrics"
    timeout = aiohttp.ClientTimeout(total=2)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while proc.returncode is None:
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        into.append(await response.text())
            except (aiohttp.ClientError, TimeoutError, OSError):
                pass  # not up yet, or already shut down
            await asyncio.sleep(0.05)


def rules_dir(tmp: Path) -> Path:
    """The bundled rules and scoring, with ROUTES."""
    rules = tmp / "rules"
    shutil.copytree(RULES, rules)
    (rules / "routes.yaml").write_text(ROUTES, encoding="utf-8")
    return rules


async def run_monitor(tmp: Path, env: dict[str, str], log_format: str) -> Run:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    rules = rules_dir(tmp)
    metrics_port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LAUNCHER,
        "run",
        "--once",
        "--rules",
        str(rules),
        "--state",
        str(tmp / "state.db"),
        "--jsonl",
        str(tmp / "alerts.jsonl"),
        "--metrics-port",
        str(metrics_port),
        cwd=REPO,
        env={
            **base,
            **env,
            **FAST_RETRIES,
            "MONITOR_LOG_FORMAT": log_format,
            "MONITOR_LOG_LEVEL": "debug",
            "COLUMNS": "4000",  # no wrapping: a secret split over two lines would hide from a search
            "PYTHONWARNINGS": "default",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    scrapes: list[str] = []
    scraper = asyncio.create_task(scrape(metrics_port, proc, scrapes))
    started = time.monotonic()
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    finally:
        await scraper
    seconds = time.monotonic() - started
    assert proc.returncode is not None
    files, dead = left_behind(tmp)
    return Run(proc.returncode, stdout, stderr, scrapes, files, dead, seconds)


def left_behind(tmp: Path) -> tuple[dict[str, bytes], list[dict[str, Any]]]:
    """Every file the run left, as bytes (read before anything here opens the state file), and
    the dead alerts in the state file."""
    files = {p.name: p.read_bytes() for p in sorted(tmp.iterdir()) if p.is_file()}
    db = sqlite3.connect(f"file:{tmp / 'state.db'}?mode=ro", uri=True)
    try:
        dead = [json.loads(v) for (v,) in db.execute("SELECT value FROM t_dead_alerts")]
    finally:
        db.close()
    return files, dead


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as s:
        yield s


@pytest.mark.parametrize("log_format", ["json", "console"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_no_secret_in_any_output(
    tmp_path: Path, stack: AsyncExitStack, scenario: str, log_format: str
) -> None:
    s = Secrets()
    setup = await SCENARIOS[scenario](stack, s)
    out = tmp_path / "run"
    out.mkdir()
    run = await run_monitor(out, setup.env, log_format)
    stderr = run.stderr.decode("utf-8", "replace")
    assert run.returncode == 0, stderr[-3000:]
    assert run.seconds < 30, f"the run took {run.seconds:.1f} s: were the retries shortened?"

    # The failure paths really ran: the secrets were offered, and the deliveries failed.
    setup.check()
    errors: dict[str, list[str]] = {}
    for dead in run.dead:
        errors.setdefault(dead["delivery"]["sink"], []).append(dead["delivery"]["error"])
    for sink, expected in setup.expect_errors.items():
        assert errors.get(sink), f"no {sink} alert failed: {errors}"
        assert all(expected in e for e in errors[sink]), errors[sink]
    for sink in setup.expect_ok:
        assert sink not in errors, errors[sink]
    assert "delivery_failed" in stderr
    assert run.scrapes, "/metrics was never scraped while the run lasted"
    assert any("monitor_feed_polls_total" in text for text in run.scrapes)
    assert b"alert_id" in run.files["alerts.jsonl"]  # the archive route wrote alerts

    # ... and no secret, in any form, anywhere.
    forms = s.forms(setup.webhook_url)
    found = leaks("stdout", run.stdout, forms) + leaks("stderr", run.stderr, forms)
    for i, text in enumerate(run.scrapes):
        found += leaks(f"/metrics (scrape {i})", text, forms)
    for name, data in run.files.items():
        found += leaks(name, data, forms)
    found += leaks("dead alerts", json.dumps(run.dead), forms)
    assert not found, f"secrets leaked ({scenario}, {log_format} logs): " + "; ".join(found)
