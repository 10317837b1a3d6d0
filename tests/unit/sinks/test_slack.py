"""The Slack sink against a real local server speaking Slack's webhook and Web API: threading
per story, Block Kit layout and limits, inert hostile text, error mapping, no leaked secrets."""

from __future__ import annotations

import asyncio
import json
import traceback
from collections.abc import AsyncIterator, Iterator, MutableMapping
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from monitor.errors import SinkConfigError, SinkError
from monitor.models import Alert, AlertKind, Level, RuleHit, ScoreTerm
from monitor.sinks.slack import (
    MAX_BLOCKS,
    MAX_HEADER,
    MAX_SECTION,
    RetryableSinkError,
    SlackConfig,
    SlackRateLimited,
    SlackSink,
    build_message,
)
from tests.unit.sinks.slack_server import Endpoint, GarbageServer, SlackServer

CHANNEL = "C0ALERTS"
HOSTILE = "<!channel> <@U024BE7LH> <https://evil.example|click here> \u202e"
NOW = datetime(2021, 12, 21, 12, 0, tzinfo=UTC)


def make_alert(
    story: str = "story-1",
    kind: AlertKind = "opened",
    level: Level = Level.high,
    previous: Level = Level.none,
    *,
    title: str = "Putin warns of 'military-technical' response",
    url: str = "https://news.example/world/putin-warns",
    snippet: str = "respond with militarily and technically",
    sources: tuple[str, ...] = ("global-wire", "daily-post"),
) -> Alert:
    return Alert(
        id=f"{story}-{kind}-{level.name}",
        story_id=story,
        route="slack-high",
        sink="slack",
        kind=kind,
        level=level,
        previous_level=previous,
        score=88.6,
        terms=(
            ScoreTerm(label="military-technical-response (headline)", value=67.5),
            ScoreTerm(label="source reliability", value=0.95, op="x"),
            ScoreTerm(label="corroboration (2 outlets)", value=10),
        ),
        title=title,
        url=url,
        sources=sources,
        hits=(
            RuleHit(
                rule_id="military-technical-response",
                phrase="military and technical",
                text="militarily and technically",
                snippet=snippet,
                in_title=True,
            ),
        ),
        created_at=NOW,
        rules_version="r-abc123",
    )


@pytest.fixture
async def server() -> AsyncIterator[SlackServer]:
    async with SlackServer() as s:
        yield s


def bot_config(server: SlackServer, **kw: Any) -> SlackConfig:
    return SlackConfig(
        bot_token=SecretStr(server.token),
        channel=CHANNEL,
        api_base_url=server.api_base_url,
        **kw,
    )


def webhook_config(server: SlackServer, **kw: Any) -> SlackConfig:
    return SlackConfig(webhook_url=SecretStr(server.webhook_url), **kw)


@pytest.fixture
async def bot(server: SlackServer) -> AsyncIterator[SlackSink]:
    sink = SlackSink(bot_config(server))
    yield sink
    await sink.close()


@pytest.fixture
async def hook(server: SlackServer) -> AsyncIterator[SlackSink]:
    sink = SlackSink(webhook_config(server))
    yield sink
    await sink.close()


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def all_text(body: dict[str, Any]) -> str:
    return "\n".join(strings(body))


# -- (1) threading with a bot token ------------------------------------------------------------


async def test_bot_threads_escalations_under_the_story_message(
    server: SlackServer, bot: SlackSink
) -> None:
    await bot.send(make_alert("story-1", "opened", Level.high))
    await bot.send(make_alert("story-1", "escalated", Level.critical, Level.high))
    await bot.send(make_alert("story-2", "opened", Level.high))

    assert [r.headers["Authorization"] for r in server.api] == [f"Bearer {server.token}"] * 3
    first, reply, other = (r.body for r in server.api)
    assert first["channel"] == reply["channel"] == other["channel"] == CHANNEL
    assert "thread_ts" not in first
    assert "thread_ts" not in other
    first_ts = bot.threads["story-1"]
    assert reply["thread_ts"] == first_ts
    assert reply["reply_broadcast"] is True
    assert bot.threads["story-2"] != first_ts
    assert set(bot.threads) == {"story-1", "story-2"}
    assert "Escalated" in reply["text"]


async def test_escalation_below_critical_is_not_broadcast(
    server: SlackServer, bot: SlackSink
) -> None:
    await bot.send(make_alert("s", "opened", Level.medium))
    await bot.send(make_alert("s", "escalated", Level.high, Level.medium))
    reply = server.api[1].body
    assert reply["thread_ts"] == bot.threads["s"]
    assert "reply_broadcast" not in reply


async def test_the_thread_store_is_the_one_passed_in(server: SlackServer) -> None:
    """A durable store (here: a dict outliving the sink, as a table outlives a restart) keeps
    threading across sink instances."""
    store: MutableMapping[str, str] = {}
    first = SlackSink(bot_config(server), threads=store)
    await first.send(make_alert("story-9", "opened", Level.high))
    await first.close()
    assert list(store) == ["story-9"]

    second = SlackSink(bot_config(server), threads=store)
    await second.send(make_alert("story-9", "escalated", Level.critical, Level.high))
    await second.close()
    assert server.api[1].body["thread_ts"] == store["story-9"]


async def test_concurrent_alerts_of_one_story_open_one_message(
    server: SlackServer, bot: SlackSink
) -> None:
    server.delay = 0.1  # the first post is still in flight when the second alert comes
    await asyncio.gather(
        bot.send(make_alert("story-1", "opened", Level.high)),
        bot.send(make_alert("story-1", "escalated", Level.critical, Level.high)),
    )
    assert ["thread_ts" in r.body for r in server.api] == [False, True]
    assert server.api[1].body["thread_ts"] == bot.threads["story-1"]


async def test_a_failed_post_remembers_no_thread(server: SlackServer, bot: SlackSink) -> None:
    server.api_error("channel_not_found")
    with pytest.raises(SinkError):
        await bot.send(make_alert("story-1"))
    assert dict(bot.threads) == {}
    await bot.send(make_alert("story-1"))
    assert "thread_ts" not in server.api[-1].body
    assert "story-1" in bot.threads


# -- (2) webhook: Block Kit --------------------------------------------------------------------


async def test_webhook_posts_block_kit_with_link_and_breakdown(
    server: SlackServer, hook: SlackSink
) -> None:
    await hook.send(make_alert())
    assert len(server.webhook) == 1
    seen = server.webhook[0]
    assert seen.path == "/webhook/T/B/X"
    assert seen.headers["Content-Type"].startswith("application/json")
    body = seen.body
    blocks = body["blocks"]
    assert blocks[0]["type"] == "header"
    assert "HIGH" in blocks[0]["text"]["text"]
    assert blocks[0]["text"]["text"].startswith("🟠")
    text = all_text(body)
    assert (
        "*<https://news.example/world/putin-warns|Putin warns of 'military-technical' response>*"
        in text
    )
    why = next(b for b in blocks if b["type"] == "section" and "*Why*" in b["text"]["text"])
    assert "+67.5 military-technical-response (headline)" in why["text"]["text"]
    assert "× 0.95 source reliability" in why["text"]["text"]
    assert "“respond with militarily and technically”" in why["text"]["text"]
    context = next(b for b in blocks if b["type"] == "context")
    context_text = all_text(context)
    assert "global-wire, daily-post" in context_text
    assert "story-1" in context_text
    assert "r-abc123" in context_text
    assert "Putin warns" in body["text"]  # the notification fallback
    assert "thread_ts" not in body


async def test_webhook_escalation_is_a_new_message_naming_the_story(
    server: SlackServer, hook: SlackSink
) -> None:
    await hook.send(make_alert("story-7", "opened", Level.high))
    await hook.send(make_alert("story-7", "escalated", Level.critical, Level.high))
    assert len(server.webhook) == 2
    second = server.webhook[1].body
    assert "Escalated" in second["text"]
    assert "story-7" in second["text"]
    assert "thread_ts" not in second
    assert "Escalated (high → critical)" in second["blocks"][0]["text"]["text"]
    assert dict(hook.threads) == {}


def test_a_non_http_url_is_not_linked() -> None:
    for url in ("javascript:alert(1)", "file:///etc/passwd", "news.example/a", ""):
        text = all_text({"b": build_message(make_alert(url=url)).blocks})
        assert "*Putin warns of 'military-technical' response*" in text
        assert "|Putin warns" not in text


def test_link_markup_characters_in_a_url_cannot_break_out() -> None:
    msg = build_message(make_alert(url="https://news.example/a|<!here>?x=1&y=>2"))
    text = all_text({"b": msg.blocks})
    assert "<!here>" not in text
    assert "*<https://news.example/a%7C%3C!here%3E?x=1&amp;y=%3E2|Putin" in text


def test_slack_limits_are_respected() -> None:
    many_hits = tuple(
        RuleHit(rule_id=f"rule-{i}", phrase="p", text="t", snippet="x" * 1000) for i in range(300)
    )
    alert = make_alert(title="T" * 10_000, sources=tuple(f"outlet-{i}" for i in range(500)))
    alert = alert.model_copy(update={"hits": many_hits, "story_id": "s" * 5000})
    msg = build_message(alert)
    assert len(msg.blocks) <= MAX_BLOCKS
    for block in msg.blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= MAX_HEADER
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= MAX_SECTION
        if block["type"] == "context":
            assert len(block["elements"]) <= 10
            assert all(len(e["text"]) <= MAX_SECTION for e in block["elements"])
    sections = [b["text"]["text"] for b in msg.blocks if b["type"] == "section"]
    assert any(s.endswith("…") for s in sections)  # the hits were cut, visibly
    assert "T" * 301 not in all_text({"b": msg.blocks})  # the title was capped
    assert "…" in msg.text
    assert "and 490 more" in all_text({"b": msg.blocks})


def test_truncation_never_cuts_an_entity_in_half() -> None:
    many_hits = tuple(
        RuleHit(rule_id=f"r{i}", phrase="p", text="t", snippet="&" * 280) for i in range(60)
    )
    msg = build_message(make_alert().model_copy(update={"hits": many_hits}))
    why = next(b["text"]["text"] for b in msg.blocks if "*Why*" in b["text"]["text"])
    assert len(why) <= MAX_SECTION
    assert why.endswith("…")
    assert why[:-1].rstrip().endswith("&amp;")


# -- (3) hostile text is inert -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["bot", "webhook"])
async def test_hostile_title_snippet_and_sources_render_inert(
    server: SlackServer, mode: str
) -> None:
    config = bot_config(server) if mode == "bot" else webhook_config(server)
    sink = SlackSink(config)
    await sink.send(make_alert(title=HOSTILE, snippet=HOSTILE, sources=(HOSTILE, "ok-outlet")))
    await sink.close()
    seen = (server.api if mode == "bot" else server.webhook)[0]
    text = all_text(seen.body)
    for raw in (seen.raw, text):
        assert "<!channel>" not in raw
        assert "<@U024BE7LH>" not in raw
        assert "<https://evil.example|" not in raw
        assert "\u202e" not in raw
        assert "\\u202e" not in raw.lower()
    assert "&lt;!channel&gt;" in text
    assert "&lt;@U024BE7LH&gt;" in text
    assert "&lt;https://evil.example|click here&gt;" in text
    assert "&lt;!channel&gt;" in seen.body["text"]  # the notification fallback too
    # mrkdwn objects are verbatim: Slack does not auto-parse mentions or links in them.
    mrkdwn = [b["text"] for b in seen.body["blocks"] if b["type"] == "section"]
    mrkdwn += [e for b in seen.body["blocks"] if b["type"] == "context" for e in b["elements"]]
    assert mrkdwn
    assert all(m["type"] == "mrkdwn" and m["verbatim"] is True for m in mrkdwn)
    if mode == "bot":
        assert seen.body["parse"] == "none"
        assert seen.body["link_names"] is False


def test_control_and_bidi_characters_are_stripped() -> None:
    nasty = (
        "a\u202ab\u202bc\u202cd\u202de\u202ef\u2066g\u2067h\u2068i\u2069j\x00k\x1bl\x7fm\x9bn\r\no"
    )
    msg = build_message(make_alert(title=nasty, snippet=nasty, sources=(nasty,)))
    text = all_text({"b": msg.blocks, "t": msg.text})
    for ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\x00\x1b\x7f\x9b\r":
        assert ch not in text
    assert "a b c d e f g h i j k l m n o" in text


# -- (4) errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["bot", "webhook"])
async def test_429_raises_rate_limited_with_retry_after(server: SlackServer, mode: str) -> None:
    endpoint: Endpoint = "api" if mode == "bot" else "webhook"
    sink = SlackSink(bot_config(server) if mode == "bot" else webhook_config(server))
    server.rate_limit(endpoint, retry_after=2, times=2)
    for _ in range(2):
        with pytest.raises(SlackRateLimited) as caught:
            await sink.send(make_alert())
        assert caught.value.retry_after == 2
        assert isinstance(caught.value, RetryableSinkError)
        assert "429" in str(caught.value)
    await sink.send(make_alert())  # the third time it goes through
    await sink.close()
    assert len(server.api if mode == "bot" else server.webhook) == 3


@pytest.mark.parametrize("mode", ["bot", "webhook"])
async def test_500_is_retryable(server: SlackServer, mode: str) -> None:
    endpoint: Endpoint = "api" if mode == "bot" else "webhook"
    sink = SlackSink(bot_config(server) if mode == "bot" else webhook_config(server))
    server.script(endpoint, 500, "internal error")
    with pytest.raises(RetryableSinkError) as caught:
        await sink.send(make_alert())
    await sink.close()
    assert not isinstance(caught.value, SlackRateLimited)
    assert caught.value.retry_after is None
    assert "500" in str(caught.value)


async def test_404_no_service_is_not_retryable(server: SlackServer, hook: SlackSink) -> None:
    server.script("webhook", 404, "no_service")
    with pytest.raises(SinkError) as caught:
        await hook.send(make_alert())
    assert not isinstance(caught.value, RetryableSinkError)
    assert "404" in str(caught.value)
    assert "no_service" in str(caught.value)


async def test_a_wrong_webhook_path_is_not_retryable(server: SlackServer) -> None:
    sink = SlackSink(SlackConfig(webhook_url=SecretStr(server.base + "/webhook/T/B/WRONG")))
    with pytest.raises(SinkError) as caught:
        await sink.send(make_alert())
    await sink.close()
    assert not isinstance(caught.value, RetryableSinkError)
    assert "no_service" in str(caught.value)


async def test_ok_false_names_the_slack_error(server: SlackServer, bot: SlackSink) -> None:
    server.api_error("channel_not_found")
    with pytest.raises(SinkError) as caught:
        await bot.send(make_alert())
    assert "channel_not_found" in str(caught.value)
    assert not isinstance(caught.value, RetryableSinkError)


async def test_a_wrong_token_is_a_plain_error(server: SlackServer) -> None:
    sink = SlackSink(
        SlackConfig(
            bot_token=SecretStr("xoxb-wrong"), channel=CHANNEL, api_base_url=server.api_base_url
        )
    )
    with pytest.raises(SinkError) as caught:
        await sink.send(make_alert())
    await sink.close()
    assert "invalid_auth" in str(caught.value)
    assert not isinstance(caught.value, RetryableSinkError)


@pytest.mark.parametrize("mode", ["bot", "webhook"])
async def test_connection_refused_is_retryable(server: SlackServer, mode: str) -> None:
    config = bot_config(server) if mode == "bot" else webhook_config(server)
    await server.close()  # nothing listens on the port any more
    sink = SlackSink(config)
    with pytest.raises(RetryableSinkError):
        await sink.send(make_alert())
    await sink.close()


@pytest.mark.parametrize("mode", ["bot", "webhook"])
async def test_a_slow_server_times_out_as_retryable(server: SlackServer, mode: str) -> None:
    server.delay = 2.0
    config = (bot_config if mode == "bot" else webhook_config)(server, timeout=0.2)
    sink = SlackSink(config)
    with pytest.raises(RetryableSinkError):
        await sink.send(make_alert())
    await sink.close()


# -- (5) secrets never show --------------------------------------------------------------------


def leaks(text: str, server: SlackServer) -> list[str]:
    secrets = [server.token, server.webhook_url, "/webhook/T/B/X", "T/B/X"]
    return [s for s in secrets if s in text]


def exception_text(exc: BaseException) -> str:
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


async def test_errors_and_reprs_never_show_secrets(server: SlackServer) -> None:
    bot = SlackSink(bot_config(server))
    hook = SlackSink(webhook_config(server))
    texts = [repr(bot), repr(hook), repr(bot.config), repr(hook.config), str(hook.config)]

    failures: list[tuple[SlackSink, Endpoint, int, str]] = [
        (bot, "api", 429, ""),
        (bot, "api", 500, "oops"),
        (bot, "api", 404, "nope"),
        (hook, "webhook", 429, ""),
        (hook, "webhook", 500, "oops"),
        (hook, "webhook", 404, "no_service"),
        (hook, "webhook", 400, "invalid_payload"),
        (hook, "webhook", 403, f"token {server.token} url {server.webhook_url}"),  # echoed back
    ]
    raised: list[BaseException] = []
    for sink, endpoint, status, body in failures:
        if status == 429:
            server.rate_limit(endpoint)
        else:
            server.script(endpoint, status, body)
        with pytest.raises(SinkError) as caught:
            await sink.send(make_alert())
        raised.append(caught.value)
    server.api_error("channel_not_found")
    with pytest.raises(SinkError) as caught:
        await bot.send(make_alert())
    raised.append(caught.value)

    await server.close()  # connection errors carry URLs in aiohttp's messages
    for sink in (bot, hook):
        with pytest.raises(RetryableSinkError) as caught:
            await sink.send(make_alert())
        raised.append(caught.value)
    await bot.close()
    await hook.close()

    # A server that answers with garbage: aiohttp's error quotes the whole request URL.
    async with GarbageServer() as garbage:
        for config in (
            SlackConfig(webhook_url=SecretStr(garbage.base + "/webhook/T/B/X")),
            SlackConfig(
                bot_token=SecretStr(server.token),
                channel=CHANNEL,
                api_base_url=garbage.base + "/api/",
            ),
        ):
            sink = SlackSink(config)
            with pytest.raises(RetryableSinkError) as caught:
                await sink.send(make_alert())
            await sink.close()
            raised.append(caught.value)

    assert len(raised) == 13
    texts += [exception_text(e) for e in raised]
    for text in texts:
        assert leaks(text, server) == [], text


def test_config_reprs_mask_secrets() -> None:
    config = SlackConfig(
        webhook_url=SecretStr("https://hooks.slack.com/services/T0/B0/SECRETPATH"),
        bot_token=SecretStr("xoxb-123-SECRET"),
        channel="C1",
    )
    for text in (repr(config), str(config), repr(SlackSink(config))):
        assert "SECRET" not in text


# -- (6) configuration -------------------------------------------------------------------------


def test_config_needs_a_webhook_or_a_token() -> None:
    with pytest.raises(SinkConfigError, match="MONITOR_SLACK_WEBHOOK_URL"):
        SlackConfig()
    with pytest.raises(SinkConfigError):
        SlackConfig(webhook_url=SecretStr("  "), bot_token=SecretStr(""))


def test_a_bot_token_needs_a_channel() -> None:
    for channel in (None, "", "  "):
        with pytest.raises(SinkConfigError, match="MONITOR_SLACK_CHANNEL") as caught:
            SlackConfig(bot_token=SecretStr("xoxb-123-SECRET"), channel=channel)
        assert "SECRET" not in str(caught.value)


def test_a_bad_webhook_url_is_reported_without_the_url() -> None:
    with pytest.raises(SinkConfigError) as caught:
        SlackConfig(webhook_url=SecretStr("hooks.slack.com/services/T0/B0/SECRET"))
    assert "SECRET" not in str(caught.value)
    assert "hooks.slack.com" not in str(caught.value)


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf")])
def test_timeout_must_be_positive(timeout: float) -> None:
    with pytest.raises(SinkConfigError, match="timeout"):
        SlackConfig(webhook_url=SecretStr("https://hooks.example/x"), timeout=timeout)


def test_modes_and_defaults() -> None:
    hook = SlackConfig(webhook_url=SecretStr("https://hooks.example/x"))
    assert hook.mode == "webhook"
    assert hook.api_base_url == "https://slack.com/api/"
    assert hook.timeout == 10
    both = SlackConfig(
        webhook_url=SecretStr("https://hooks.example/x"),
        bot_token=SecretStr("xoxb-1"),
        channel="C1",
        api_base_url="http://127.0.0.1:9/api",
    )
    assert both.mode == "bot"  # the token wins: only the Web API can thread
    assert both.api_base_url == "http://127.0.0.1:9/api/"
    assert SlackSink(hook).name == "slack"


def test_message_json_round_trips() -> None:
    msg = build_message(make_alert())
    assert json.loads(json.dumps({"text": msg.text, "blocks": msg.blocks}))["text"] == msg.text
