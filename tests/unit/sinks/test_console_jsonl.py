"""The console, JSON-lines and list sinks: every kind of alert, and digests."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from monitor.models import Alert, AlertKind, Digest, Level, ScoreTerm
from monitor.sinks.console import ConsoleSink
from monitor.sinks.jsonl import JsonlSink
from monitor.sinks.render import HEADLINES, digest_headline, headline
from monitor.sinks.testing import ListSink

NOW = datetime(2021, 12, 21, 12, 0, tzinfo=UTC)
MARKUP = "[bold red]Fake[/bold red] [link=https://evil.example]click[/link]"

# The keys of a single alert's line: consumers (tests, benchmarks, jq) rely on them.
ALERT_KEYS = {
    "alert_id",
    "story_id",
    "route",
    "kind",
    "level",
    "previous_level",
    "score",
    "title",
    "url",
    "sources",
    "rules",
    "explanation",
    "evidence",
    "labels",
    "rules_version",
    "created_at",
}


def make_alert(
    story: str = "s1",
    kind: AlertKind = "opened",
    level: Level = Level.high,
    previous: Level = Level.none,
    **kw: Any,
) -> Alert:
    values: dict[str, Any] = {
        "id": f"{story}-{kind}",
        "story_id": story,
        "route": "desk",
        "sink": "console",
        "kind": kind,
        "level": level,
        "previous_level": previous,
        "score": 70.0,
        "terms": (ScoreTerm(label="invasion (headline)", value=70),),
        "title": f"Title of {story}",
        "url": f"https://news.example/{story}",
        "sources": ("global-wire", "daily-post"),
        "created_at": NOW,
        "articles": 3,
    }
    values.update(kw)
    return Alert(**values)


def make_digest(*alerts: Alert) -> Digest:
    return Digest(
        id="d-1", route="desk", sink="console", reason="quiet", alerts=alerts, created_at=NOW
    )


def three() -> tuple[Alert, Alert, Alert]:
    return (
        make_alert("s1", "opened", Level.medium),
        make_alert("s2", "escalated", Level.critical, Level.high, title=MARKUP),
        make_alert("s3", "resolved", Level.high),
    )


def console() -> tuple[ConsoleSink, io.StringIO]:
    out = io.StringIO()
    return ConsoleSink(Console(file=out, width=200, no_color=True, emoji=False)), out


def test_every_kind_has_a_headline() -> None:
    assert set(HEADLINES) == {"opened", "escalated", "updated", "resolved"}
    assert headline(make_alert(kind="updated")) == "[HIGH] UPDATE: Title of s1"
    assert headline(make_alert(kind="resolved")) == "[HIGH] RESOLVED: Title of s1"
    assert digest_headline(make_digest(*three())) == (
        "[CRITICAL] 3 stories (held during quiet hours)"
    )
    one = Digest(id="d", route="r", sink="x", reason="rate", alerts=(make_alert(),), created_at=NOW)
    assert digest_headline(one) == "[HIGH] 1 story (held by the rate limit)"


async def test_console_prints_updates_and_resolutions() -> None:
    sink, out = console()
    await sink.send(make_alert(kind="updated", articles=7))
    await sink.send(make_alert(kind="resolved", title=MARKUP))
    text = out.getvalue()
    assert "HIGH  UPDATE" in text and "more coverage at high: 7 articles from 2 outlets" in text
    assert "HIGH  RESOLVED" in text and "resolved: no new coverage" in text
    assert MARKUP in text  # feed text is shown as written, never read as markup


async def test_console_prints_a_digest_as_one_panel() -> None:
    sink, out = console()
    await sink.send_digest(make_digest(*three()))
    text = out.getvalue()
    assert "[CRITICAL] 3 stories (held during quiet hours)" in text  # not eaten as markup
    assert text.count("╭") == 1  # one panel
    assert "Title of s1" in text and "Title of s3" in text and MARKUP in text
    assert "CRITICAL  Escalated (high → critical)" in text
    assert "HIGH  Resolved" in text and "MEDIUM  New" in text
    assert text.index(MARKUP) < text.index("Title of s3") < text.index("Title of s1")
    assert "+70 invasion (headline)" in text and "digest d-1" in text


async def test_jsonl_single_alert_lines_keep_their_schema(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "a.jsonl")
    for kind in ("opened", "updated", "resolved"):
        await sink.send(make_alert(kind=kind))
    lines = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["opened", "updated", "resolved"]
    assert all(set(line) == ALERT_KEYS for line in lines)


async def test_jsonl_digest_is_one_tagged_line_per_alert(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    sink = JsonlSink(path)
    await sink.send(make_alert("s0"))
    await sink.send_digest(make_digest(*three()))
    await sink.send_digest(make_digest())  # nothing held: nothing written
    first, *held = (json.loads(x) for x in path.read_text().splitlines())
    assert set(first) == ALERT_KEYS  # a single alert carries no digest keys
    assert [a["story_id"] for a in held] == ["s1", "s2", "s3"]  # in the order they were held
    assert [a["kind"] for a in held] == ["opened", "escalated", "resolved"]
    assert held[1]["title"] == MARKUP
    for line in held:
        assert set(line) == ALERT_KEYS | {"digest_id", "digest_reason", "digest_size"}
        assert (line["digest_id"], line["digest_reason"], line["digest_size"]) == (
            "d-1",
            "quiet",
            3,
        )


async def test_list_sink_keeps_alerts_and_digests() -> None:
    sink = ListSink()
    await sink.send(make_alert("s0"))
    digest = make_digest(*three())
    await sink.send_digest(digest)
    assert sink.digests == [digest]
    assert [a.story_id for a in sink.alerts] == ["s0", "s1", "s2", "s3"]
