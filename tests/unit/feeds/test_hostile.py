"""Hostile and broken feed content, parse side: entity bombs refused before they expand, external
entities never read, character sets taken from the HTTP header, megabyte headlines bounded, and
every failure one feed's ParseError, never a crash."""

from __future__ import annotations

import asyncio
import codecs
import io
import resource
import time
from pathlib import Path
from typing import Any

import feedparser
import pytest
from aiohttp import web

from monitor.errors import ParseError
from monitor.feeds.html import clip_markup
from monitor.feeds.parse import entity_bomb, parse_document, parse_feed
from tests.unit.feeds.helpers import FETCHED_AT, FeedServer, rss, source

ITEM = "<item><title>{title}</title><link>https://news.example/a</link>{extra}</item>"


def doc(doctype: str, title: str = "t", extra: str = "", prolog: str = "\n") -> bytes:
    return (
        f'<?xml version="1.0"?>{prolog}{doctype}\n<rss version="2.0"><channel><title>c</title>'
        + ITEM.format(title=title, extra=extra)
        + "</channel></rss>"
    ).encode()


LOL = '<!ENTITY lol "lol">' + "".join(
    f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
    for i in range(1, 10)
)
LOL_LINES = LOL.replace(">", ">\n")

BOMBS = {
    # the classic: 10^9 "lol"s from nine nested entities, one declaration a line
    "billion laughs": doc(f"<!DOCTYPE rss [\n{LOL_LINES}]>", title="&lol9;"),
    # the same on one line after the XML declaration, where feedparser's DOCTYPE rewriting
    # does not see it and hands it to expat as it is
    "billion laughs, one line": doc(f"<!DOCTYPE rss [{LOL}]>", title="&lol9;", prolog=""),
    # no nesting at all: one 100 kB entity referenced 100,000 times is 10 GB, and feedparser's
    # loose parser expands it without limit (it died with MemoryError before the screen)
    "quadratic blowup": doc(
        '<!DOCTYPE rss [\n<!ENTITY a "' + "x" * 100_000 + '">\n]>', title="&a;" * 100_000
    ),
    # declared by a parameter entity, so no <!ENTITY a ...> sits where a line-based rewrite
    # would find it
    "declared by a parameter entity": doc(
        "<!DOCTYPE rss [<!ENTITY % p \"<!ENTITY a '" + "x" * 50_000 + "'>\"> %p;]>",
        title="&a;" * 50_000,
    ),
    "recursive": doc('<!DOCTYPE rss [\n<!ENTITY a "&b;">\n<!ENTITY b "&a;">\n]>', title="&a;"),
}


@pytest.fixture
def memory_cap() -> Any:
    """At most 1 GiB more address space while the test runs: a bomb that expands fails loudly
    (MemoryError) instead of swapping the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        used = int(f.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + (1 << 30), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_entity_bombs_are_refused_before_they_expand(name: str, memory_cap: None) -> None:
    started = time.monotonic()
    with pytest.raises(ParseError, match="entity bomb") as caught:
        parse_feed(BOMBS[name], source("bombed"), FETCHED_AT)
    assert caught.value.feed == "bombed" and "refused" in str(caught.value)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le"])
def test_a_bomb_in_utf16_or_utf32_is_found_too(codec: str) -> None:
    data = BOMBS["quadratic blowup"].replace(b'version="1.0"', b'version="1.0" encoding="utf-16"')
    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}.get(
        codec, codecs.BOM_UTF32_LE
    )
    encoded = bom + data.decode().encode(codec)
    assert "entity bomb" in entity_bomb(encoded)


def test_harmless_internal_entities_still_work() -> None:
    # as feedparser's own corpus has them (wellformed/rss/entity_in_doctype.xml)
    data = doc(
        '<!DOCTYPE rss [\n  <!ENTITY id "tag:example.com,">\n  <!ENTITY co "Example Co">\n]>',
        title="&co; news",
        extra="<guid isPermaLink='false'>&id;2006:/blog/</guid>",
    )
    assert entity_bomb(data) == ""
    [a] = parse_feed(data, source(), FETCHED_AT)
    assert a.title == "Example Co news"
    assert a.guid == "tag:example.com,2006:/blog/"


def test_an_entity_used_often_but_small_is_not_a_bomb() -> None:
    data = doc('<!DOCTYPE rss [\n<!ENTITY nbsp "&#160;">\n]>', title="a&nbsp;b " * 5000)
    assert entity_bomb(data) == ""
    assert parse_feed(data, source(), FETCHED_AT)


def test_a_feed_without_entities_costs_one_search() -> None:
    data = rss(
        *(f"<title>Story {i}</title><link>https://news.example/{i}</link>" for i in range(2000))
    )
    started = time.perf_counter()
    for _ in range(10):
        assert entity_bomb(data) == ""
    assert (time.perf_counter() - started) / 10 < 0.05


SECRET = "s3cr3t-7f1d2c-never-read"

XXE = {
    "general, own line": '<!DOCTYPE rss [\n<!ENTITY xxe SYSTEM "{url}">\n]>',
    "general, after the XML declaration": '<!DOCTYPE rss [<!ENTITY xxe SYSTEM "{url}">]>',
    "behind a harmless one": '<!DOCTYPE rss [<!ENTITY a "x"> <!ENTITY xxe SYSTEM "{url}">]>',
    "public id": '<!DOCTYPE rss [<!ENTITY xxe PUBLIC "-//X//EN" "{url}">]>',
    "parameter entity": '<!DOCTYPE rss [<!ENTITY % xxe SYSTEM "{url}"> %xxe;]>',
    "external DTD": '<!DOCTYPE rss SYSTEM "{url}">',
}


@pytest.mark.parametrize("name", sorted(XXE))
def test_external_entities_pointing_at_local_files_are_never_read(
    name: str, tmp_path: Path
) -> None:
    secret = tmp_path / "passwd"
    secret.write_text(f'root:x:0:0:{SECRET}:/root:/bin/sh\n<!ENTITY xxe "{SECRET}">\n')
    for url in (secret.as_uri(), "file:///etc/passwd"):
        prolog = "" if "after" in name or "behind" in name else "\n"
        data = doc(
            XXE[name].format(url=url),
            title="&xxe;",
            extra="<description>&xxe;</description>",
            prolog=prolog,
        )
        articles = parse_feed(data, source(), FETCHED_AT)
        # nothing of the file in any field, nor in anything feedparser itself kept
        assert SECRET not in repr(articles) and "root:x:0:0" not in repr(articles)
        assert SECRET not in repr(feedparser.parse(io.BytesIO(data)))


@pytest.mark.parametrize("name", sorted(XXE))
async def test_external_entities_over_http_are_never_fetched(name: str, server: FeedServer) -> None:
    server.handlers["/evil.dtd"] = lambda r: _reply(f'<!ENTITY xxe "{SECRET}">')
    server.handlers["/evil"] = lambda r: _reply(SECRET)
    for path in ("/evil", "/evil.dtd"):
        data = doc(XXE[name].format(url=server.url(path)), title="&xxe;", prolog="")
        # in a thread, as the poller runs it: the server could answer if asked
        articles = await asyncio.to_thread(parse_feed, data, source(), FETCHED_AT)
        assert SECRET not in repr(articles)
    assert server.requests == []


async def _reply(text: str) -> web.StreamResponse:
    return web.Response(text=text, content_type="application/xml-dtd")


# --- character sets ---------------------------------------------------------------------


CYRILLIC = "Обстрел Харькова"


def _cp1251_feed(declared: str = "") -> bytes:
    decl = f' encoding="{declared}"' if declared else ""
    return (
        f'<?xml version="1.0"{decl}?><rss version="2.0"><channel><title>{CYRILLIC}</title>'
        f"<item><title>{CYRILLIC}</title><link>https://news.example/k</link></item>"
        "</channel></rss>"
    ).encode("cp1251")


def test_the_http_charset_decides_when_the_document_declares_none() -> None:
    data = _cp1251_feed()
    parsed = parse_document(data, source(), FETCHED_AT, "", "text/xml; charset=windows-1251")
    assert parsed.title == CYRILLIC and parsed.articles[0].title == CYRILLIC
    assert parsed.encoding == "windows-1251"
    # without the header, the same bytes are not read as Cyrillic: the header must be passed on
    assert parse_feed(data, source(), FETCHED_AT)[0].title != CYRILLIC


def test_a_wrong_declared_charset_is_overridden_not_fatal() -> None:
    data = _cp1251_feed(declared="utf-8")  # says UTF-8, is windows-1251
    parsed = parse_document(data, source(), FETCHED_AT, "", "application/rss+xml")
    assert len(parsed.articles) == 1
    assert parsed.warning  # said, not hidden


def test_an_unknown_charset_is_not_fatal() -> None:
    data = rss("<title>Plain</title><link>https://news.example/p</link>")
    parsed = parse_document(data, source(), FETCHED_AT, "", "text/xml; charset=no-such-charset")
    assert [a.title for a in parsed.articles] == ["Plain"]


def test_utf16_with_a_byte_order_mark() -> None:
    text = rss("<title>Ünïcode</title><link>https://news.example/u</link>").decode()
    text = text.replace('encoding="utf-8"', 'encoding="utf-16"')
    data = codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    [a] = parse_feed(data, source(), FETCHED_AT, "", "application/rss+xml")
    assert a.title == "Ünïcode"


# --- size bounds ------------------------------------------------------------------------


def test_megabyte_titles_guids_and_links_are_bounded() -> None:
    words = "word " * 400_000  # 2 MB
    data = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>' + words + "</title>"
        "<item><title>" + words + "</title><guid isPermaLink='false'>" + "g" * 100_000 + "</guid>"
        "<link>https://news.example/" + "p" * 100_000 + "</link>"
        "<description>&lt;b&gt;bold&lt;/b&gt; " + words + "</description></item>"
        "</channel></rss>"
    ).encode()
    started = time.monotonic()
    parsed = parse_document(data, source(), FETCHED_AT)
    [a] = parsed.articles
    assert len(parsed.title) <= 500 and len(a.title) <= 500
    assert len(a.guid) <= 100 and a.guid.startswith("sha256:")
    assert a.url == ""  # a 100 kB "URL" is nowhere anyone can go
    assert len(a.body) == 200_000 and a.body.startswith("bold word")
    assert time.monotonic() - started < 10


def test_an_oversized_guid_is_still_the_same_id_next_time() -> None:
    data = rss("<title>t</title><guid isPermaLink='false'>" + "g" * 10_000 + "</guid>")
    first, again = (parse_feed(data, source(), FETCHED_AT)[0] for _ in range(2))
    assert first.guid == again.guid and first.id == again.id
    other = rss("<title>t</title><guid isPermaLink='false'>" + "g" * 10_001 + "</guid>")
    assert parse_feed(other, source(), FETCHED_AT)[0].id != first.id


def test_clip_markup_never_leaves_half_a_tag_or_entity() -> None:
    assert clip_markup("short", 10) == "short"
    assert clip_markup("abc <b>def</b> ghi", 9) == "abc <b>de"
    assert clip_markup('abc <a href="https://x', 12) == "abc "
    assert clip_markup("tom &amp; jerry", 7) == "tom "
    assert clip_markup("tom &amp; jerry", 10) == "tom &amp; "
    assert clip_markup("<" * 100_000, 50_000) == "<" * 49_999  # only the last one is cut


# --- never a crash ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00" * 1000,
        b"\xff\xfe\x00",
        b"<rss",
        b"<" * 100_000,
        b"<?xml version='1.0'?><!DOCTYPE rss [<!ENTITY",
        b'<?xml version="1.0" encoding="x-no-such"?><rss><channel><item>',
        b"<rss version='2.0'><channel>" + b"<item><title>deep" + b"<b>" * 10_000,
        b'{"version": "https://jsonfeed.org/version/1", "items": []}',
        b"<html><body>Sign in to continue</body></html>",
    ],
)
def test_garbage_is_one_feeds_parse_error_or_nothing(data: bytes) -> None:
    try:
        parse_feed(data, source("junk"), FETCHED_AT, "https://news.example/rss", "text/xml")
    except ParseError as exc:
        assert exc.feed == "junk"


def test_a_feedparser_crash_is_a_parse_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(feedparser, "parse", boom)
    with pytest.raises(ParseError, match="RecursionError"):
        parse_feed(rss("<title>x</title>"), source(), FETCHED_AT)


def test_a_bomb_quoted_in_an_article_is_text_not_a_declaration() -> None:
    # a security blog writing about billion laughs, its example in CDATA
    sample = f"<!DOCTYPE lolz [{LOL}]><lolz>&lol9;</lolz>"
    data = rss(
        "<title>What is a billion laughs attack?</title><link>https://sec.example/bl</link>"
        f"<description><![CDATA[<pre>{sample}</pre>]]></description>"
    )
    assert entity_bomb(data) == ""
    [a] = parse_feed(data, source(), FETCHED_AT)
    assert "<!ENTITY lol9" in a.body  # shown as the text it is


def test_an_entity_value_with_markup_does_not_end_the_prolog_early() -> None:
    # "<b>" inside a value looks like a root element to a naive scan; the bomb after it counts
    data = doc(
        '<!DOCTYPE rss [\n<!ENTITY b "<b>bold</b>">\n<!ENTITY a "' + "x" * 100_000 + '">\n]>',
        title="&a;" * 100_000,
    )
    assert "entity bomb" in entity_bomb(data)
