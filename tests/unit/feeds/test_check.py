"""`monitor feeds check`'s engine: each feed fetched once with the poller's fetch and parse, every
outcome a verdict (never an exception), and the JSON it prints valid against its schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from aiohttp import web

from monitor.feeds import check as check_module
from monitor.feeds.check import JSON_SCHEMA, check_feeds, summary, to_json
from monitor.feeds.fetch import FetchLimits
from tests.unit.feeds.helpers import FeedServer, rss, source

GOOD = rss(
    "<title>One</title><link>https://news.example/1</link>",
    "<title>Two</title><link>https://news.example/2</link>",
    "<description>&lt;img src='x.png'/&gt;</description>",  # nothing to read: left out
    channel="Good &amp; Co",
)
CYRILLIC = "Новости"
CP1251 = (
    f'<?xml version="1.0"?><rss version="2.0"><channel><title>{CYRILLIC}</title>'
    f"<item><title>{CYRILLIC}</title><link>https://news.example/k</link></item></channel></rss>"
).encode("cp1251")
QUICK = FetchLimits(total_timeout=1.0, connect_timeout=1.0, read_timeout=1.0)


def reply(
    body: bytes, status: int = 200, content_type: str = "application/rss+xml"
) -> web.Response:
    return web.Response(body=body, status=status, headers={"Content-Type": content_type})


@pytest.fixture
def feeds(server: FeedServer) -> FeedServer:
    async def good(request: web.Request) -> web.StreamResponse:
        return reply(GOOD)

    async def cyrillic(request: web.Request) -> web.StreamResponse:
        return reply(CP1251, content_type="text/xml; charset=windows-1251")

    async def missing(request: web.Request) -> web.StreamResponse:
        return reply(b"gone", 404, "text/plain")

    async def page(request: web.Request) -> web.StreamResponse:
        return reply(b"<!DOCTYPE html><html><body>Sign in</body></html>", content_type="text/html")

    async def garbage(request: web.Request) -> web.StreamResponse:
        return reply(b"\x00\x01 this is not xml at all")

    async def bomb(request: web.Request) -> web.StreamResponse:
        lol = '<!ENTITY a "' + "x" * 100_000 + '">'
        body = f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n{lol}\n]>\n<rss><channel><title>'
        return reply((body + "&a;" * 50_000 + "</title></channel></rss>").encode())

    async def unchanged(request: web.Request) -> web.StreamResponse:
        return web.Response(status=304)

    async def pushing(request: web.Request) -> web.StreamResponse:
        response = reply(GOOD)
        response.headers["Link"] = '<https://hub.example/>; rel="hub", <https://x/feed>; rel="self"'
        return response

    async def broken(request: web.Request) -> web.StreamResponse:
        return reply(GOOD.replace(b"</channel></rss>", b"<item><title>cut"))

    server.handlers.update(
        {
            "/good": good,
            "/cyrillic": cyrillic,
            "/missing": missing,
            "/page": page,
            "/garbage": garbage,
            "/bomb": bomb,
            "/unchanged": unchanged,
            "/pushing": pushing,
            "/broken": broken,
            "/hang": server.hang,
        }
    )
    return server


async def test_every_outcome_is_a_verdict_in_the_lists_order(
    feeds: FeedServer, tmp_path: Path
) -> None:
    local = tmp_path / "local.xml"
    local.write_bytes(GOOD)
    names = [
        "good",
        "cyrillic",
        "missing",
        "page",
        "garbage",
        "bomb",
        "unchanged",
        "broken",
        "hang",
        "pushing",
    ]
    sources = [source(n, feeds.url(f"/{n}")) for n in names]
    sources += [source("local", local.as_uri()), source("nofile", (tmp_path / "no.xml").as_uri())]
    results = await check_feeds(sources, QUICK, concurrency=4)
    by = {r.name: r for r in results}
    assert [r.name for r in results] == [*names, "local", "nofile"]

    good = by["good"]
    assert (good.status, good.http_status, good.entries, good.entries_in_feed) == ("ok", 200, 2, 3)
    assert good.title == "Good & Co" and good.format == "rss20" and good.errors == []
    assert good.final_url == feeds.url("/good")
    assert good.content_type == "application/rss+xml"
    assert any("1 of 3 entries left out" in w for w in good.warnings)

    # the server's charset reaches the parser
    assert by["cyrillic"].title == CYRILLIC and by["cyrillic"].encoding == "windows-1251"

    assert (by["missing"].status, by["missing"].http_status) == ("error", 404)
    assert "HTTP 404" in by["missing"].errors[0]
    assert by["page"].status == "error" and "web page" in by["page"].errors[0]
    assert by["garbage"].status == "error" and "not a feed" in by["garbage"].errors[0]
    assert by["bomb"].status == "error" and "entity bomb" in by["bomb"].errors[0]
    assert (by["unchanged"].status, by["unchanged"].http_status) == ("not_modified", 304)
    assert by["broken"].status == "ok" and by["broken"].entries == 2
    assert any("not well-formed" in w for w in by["broken"].warnings)
    assert by["hang"].status == "timeout" and "timed out" in by["hang"].errors[0]
    assert (by["local"].status, by["local"].http_status, by["local"].entries) == ("ok", None, 2)
    assert by["pushing"].websub_hubs == ["https://hub.example/"]
    assert all(r.websub_hubs == [] for r in results if r.name != "pushing")
    assert by["nofile"].status == "error" and "cannot read" in by["nofile"].errors[0]
    # the errors do not repeat the feed's name: the report shows it beside them
    assert all(not e.startswith("feed ") for r in results for e in r.errors)

    counts = summary(results)
    assert counts == {
        "feeds": 12,
        "ok": 5,
        "not_modified": 1,
        "error": 5,
        "timeout": 1,
        "failed": 6,
    }
    document = to_json("feeds.yaml", results, 1.23456)
    jsonschema.validate(document, JSON_SCHEMA)
    assert json.loads(json.dumps(document)) == document
    assert document["seconds"] == 1.235 and document["file"] == "feeds.yaml"


async def test_a_bug_costs_one_feeds_verdict_not_the_check(
    feeds: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_parser(*args: object) -> None:
        raise KeyError("surprise")

    monkeypatch.setattr(check_module, "parse_document", broken_parser)
    [result] = await check_feeds([source("good", feeds.url("/good"))], QUICK)
    assert result.status == "error" and result.failed
    assert result.errors == ["internal error: KeyError: 'surprise'"]


async def test_concurrency_is_bounded(server: FeedServer) -> None:
    import asyncio

    active = peak = 0

    async def slow(request: web.Request) -> web.StreamResponse:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.05)
        active -= 1
        return reply(GOOD)

    for i in range(12):
        server.handlers[f"/f{i}"] = slow
    sources = [source(f"f{i}", server.url(f"/f{i}")) for i in range(12)]
    results = await check_feeds(sources, QUICK, concurrency=3)
    assert all(r.status == "ok" for r in results)
    assert peak == 3


def test_the_schema_is_itself_valid_and_strict() -> None:
    jsonschema.Draft202012Validator.check_schema(JSON_SCHEMA)
    bad = {"file": "x", "seconds": 0, "summary": {}, "feeds": []}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, JSON_SCHEMA)
