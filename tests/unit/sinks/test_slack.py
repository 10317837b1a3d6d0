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
from monitor.models import Alert, AlertKind, Digest, Level, RuleHit, ScoreTerm
from monitor.sinks.slack import (
    MAX_BLOCKS,
    MAX_DIGEST_CHARS,
    MAX_HEADER,
    MAX_SECTION,
    RetryableSinkError,
    SlackConfig,
    SlackRateLimited,
    SlackSink,
    build_digest,
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


async def test_bot_threads_updates_and_the_resolution_under_the_story_message(
    server: SlackServer, bot: SlackSink
) -> None:
    await bot.send(make_alert("story-1", "opened", Level.high))
    await bot.send(make_alert("story-1", "updated", Level.high).model_copy(update={"articles": 7}))
    await bot.send(make_alert("story-1", "resolved", Level.high).model_copy(update={"articles": 9}))

    first, update, resolved = (r.body for r in server.api)
    root = bot.threads["story-1"]
    assert "thread_ts" not in first
    assert update["thread_ts"] == root and resolved["thread_ts"] == root
    assert "reply_broadcast" not in update and "reply_broadcast" not in resolved
    assert dict(bot.threads) == {"story-1": root}  # the replies did not move the root

    assert update["text"].startswith("🟠 Update (HIGH): Putin warns")
    assert "HIGH · Update" in update["blocks"][0]["text"]["text"]
    assert "More coverage: 7 articles from 2 outlets" in all_text(update)

    # the closing note is short, and still names the story
    assert resolved["text"].startswith("✅ Resolved (HIGH): Putin warns")
    assert [b["type"] for b in resolved["blocks"]] == ["section", "context"]
    note = resolved["blocks"][0]["text"]["text"]
    assert "*Resolved*" in note
    assert "*<https://news.example/world/putin-warns|Putin warns" in note
    assert "closed at HIGH after 9 articles from 2 outlets" in note
    assert len(all_text(resolved)) < 600


async def test_a_resolution_without_a_known_thread_is_not_made_a_root(
    server: SlackServer, bot: SlackSink
) -> None:
    await bot.send(make_alert("story-5", "resolved", Level.medium))
    assert "thread_ts" not in server.api[0].body
    assert dict(bot.threads) == {}
    await bot.send(make_alert("story-5", "updated", Level.medium))  # the story came back
    assert "thread_ts" not in server.api[1].body
    assert "story-5" in bot.threads


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


async def test_webhook_update_and_resolution_are_plain_messages(
    server: SlackServer, hook: SlackSink
) -> None:
    await hook.send(make_alert("story-7", "opened", Level.high))
    await hook.send(make_alert("story-7", "updated", Level.high))
    await hook.send(make_alert("story-7", "resolved", Level.high))
    assert len(server.webhook) == 3
    update, resolved = server.webhook[1].body, server.webhook[2].body
    for body in (update, resolved):
        assert "thread_ts" not in body
        assert "story-7" in body["text"]
        assert "Putin warns" in all_text(body)
    assert "Update" in update["text"] and "Resolved" in resolved["text"]
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


# -- (2b) digests ------------------------------------------------------------------------------


def make_digest(*alerts: Alert, reason: Any = "quiet") -> Digest:
    return Digest(
        id="digest-1",
        route="slack-high",
        sink="slack",
        reason=reason,
        alerts=alerts,
        created_at=NOW,
    )


CRLF_TITLE = "Breaking\r\nBcc: victim@example.com\r\n\r\n<!channel> pinged"
SCRIPT_TITLE = "<script>alert(1)</script> and <https://evil.example|click>"


def three_stories() -> tuple[Alert, Alert, Alert]:
    return (
        make_alert("story-a", "opened", Level.medium, title="Calm first story"),
        make_alert("story-b", "escalated", Level.critical, Level.high, title=CRLF_TITLE),
        make_alert(
            "story-c",
            "updated",
            Level.high,
            title=SCRIPT_TITLE,
            sources=(HOSTILE, "ok-outlet"),
            url="https://news.example/c|<!here>",
        ),
    )


def assert_within_limits(blocks: list[dict[str, Any]]) -> None:
    assert len(blocks) <= MAX_BLOCKS
    total = 0
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= MAX_HEADER
            total += len(block["text"]["text"])
        elif block["type"] == "section":
            assert len(block["text"]["text"]) <= MAX_SECTION
            assert block["text"]["verbatim"] is True
            total += len(block["text"]["text"])
        else:
            assert block["type"] == "context"
            assert len(block["elements"]) <= 10
            total += sum(len(e["text"]) for e in block["elements"])
    assert total <= MAX_DIGEST_CHARS


@pytest.mark.parametrize("mode", ["bot", "webhook"])
async def test_a_digest_is_one_message_listing_every_story(server: SlackServer, mode: str) -> None:
    sink = SlackSink(bot_config(server) if mode == "bot" else webhook_config(server))
    await sink.send_digest(make_digest(*three_stories()))
    await sink.close()

    [seen] = server.api if mode == "bot" else server.webhook  # one message, not three
    body = seen.body
    assert "thread_ts" not in body
    assert dict(sink.threads) == {}  # a digest is no story's thread
    blocks = body["blocks"]
    assert blocks[0]["type"] == "header"
    assert blocks[0]["text"]["text"] == "🔴 [CRITICAL] 3 stories (held during quiet hours)"
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert len(sections) == 3
    assert_within_limits(blocks)
    # most severe first; level, kind, linked title, why and sources for each
    assert sections[0].startswith("🔴 *CRITICAL* · Escalated (high → critical) · *<https://news")
    assert sections[1].startswith("🟠 *HIGH* · Update · ")
    assert sections[2].startswith(
        "🟡 *MEDIUM* · New · *<https://news.example/world/putin-warns|Calm first story>*"
    )
    for section in sections:
        assert "Why: score 88.6 (+67.5 military-technical-response (headline)" in section
    assert "Sources (2): global-wire, daily-post" in sections[0]
    # hostile titles are inert: one line, escaped, no mention, no forged link
    text = all_text(body)
    assert "Breaking Bcc: victim@example.com &lt;!channel&gt; pinged" in sections[0]
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt; and &lt;https://evil.example|click&gt;"
        in sections[1]
    )
    assert "&lt;!channel&gt;" in body["text"]  # the notification fallback lists titles too
    assert "Calm first story" in body["text"]
    for raw in (seen.raw, text):
        assert "<!channel>" not in raw and "<!here>" not in raw
        assert "<script>" not in raw
        assert "<https://evil.example|" not in raw
        assert "<@U024BE7LH>" not in raw
        assert "\r" not in raw and "\u202e" not in raw
    # CR/LF in a title became spaces: the title stays on the story's first line
    assert (
        "Breaking Bcc: victim@example.com &lt;!channel&gt; pinged>*" in sections[0].split("\n")[0]
    )
    assert "https://news.example/c%7C%3C!here%3E|" in sections[1]
    if mode == "bot":
        assert body["parse"] == "none" and body["link_names"] is False


async def test_a_story_first_seen_in_a_digest_opens_its_own_thread_later(
    server: SlackServer, bot: SlackSink
) -> None:
    await bot.send_digest(make_digest(*three_stories()))
    await bot.send(make_alert("story-a", "escalated", Level.high, Level.medium))
    assert "thread_ts" not in server.api[1].body  # not a reply to the digest
    assert list(bot.threads) == ["story-a"]
    await bot.send(make_alert("story-a", "updated", Level.high))
    assert server.api[2].body["thread_ts"] == bot.threads["story-a"]


def test_a_digest_of_60_stories_stays_within_slack_limits() -> None:
    stories = [
        make_alert(f"story-{i:02d}", "opened", Level.high, title=f"Story number {i:02d}")
        for i in range(60)
    ]
    msg = build_digest(make_digest(*stories, reason="group"))
    assert_within_limits(msg.blocks)
    assert msg.blocks[0]["text"]["text"] == "🟠 [HIGH] 60 stories (arrived together)"
    sections = [b for b in msg.blocks if b["type"] == "section"]
    assert 0 < len(sections) < 60
    tail = msg.blocks[-1]
    assert tail["type"] == "context"
    assert tail["elements"][0]["text"] == f"… and {60 - len(sections)} more stories"
    text = all_text({"b": msg.blocks})
    assert "Story number 00" in text  # held order kept among equals
    assert f"Story number {len(sections):02d}" not in text
    assert len(msg.text) <= 3000 and "and 55 more" in msg.text


def test_a_digest_of_60_huge_hostile_stories_stays_within_slack_limits() -> None:
    hits = tuple(
        RuleHit(rule_id=f"r{i}", phrase="p", text="t", snippet="&" * 280) for i in range(40)
    )
    terms = tuple(ScoreTerm(label="<&>" * 300, value=i) for i in range(40))
    stories = [
        make_alert(
            f"story-{i}",
            "escalated",
            Level.critical,
            Level.high,
            title="&<>" * 5000,
            url="https://news.example/" + "&" * 900,
            sources=tuple("&" * 100 for _ in range(300)),
        ).model_copy(update={"hits": hits, "terms": terms})
        for i in range(60)
    ]
    msg = build_digest(make_digest(*stories, reason="rate"))
    assert_within_limits(msg.blocks)
    assert msg.blocks[0]["text"]["text"] == "🔴 [CRITICAL] 60 stories (held by the rate limit)"
    sections = [b["text"]["text"] for b in msg.blocks if b["type"] == "section"]
    assert sections
    for section in sections:
        assert section.count("<") == section.count(">") == 0  # too long a URL is not linked
        assert "&lt;" in section
    more = 60 - len(sections)
    assert msg.blocks[-1]["elements"][0]["text"] == f"… and {more} more stories"
    assert len(msg.text) <= 3000


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


def test_threads_older_than_the_retention_are_forgotten() -> None:
    import time

    from monitor.pipeline.alerting import THREAD_RETENTION
    from monitor.sinks.slack import SlackSink

    now = time.time()
    old = f"{now - THREAD_RETENTION.total_seconds() - 60:.6f}"
    fresh = f"{now - 3600:.6f}"
    threads = {"old-story": old, "live-story": fresh}
    sink = SlackSink(SlackConfig(bot_token=SecretStr("xoxb-test"), channel="C1"), threads=threads)
    assert sink.prune(now) == 1
    assert threads == {"live-story": fresh}
