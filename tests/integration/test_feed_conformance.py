"""Conformance with feedparser's own test suite, end to end: every file of
../shared/corpus/feedparser (well-formed, ill-formed, encoding, entities, sanitizer, HTTP and
compression cases, the JSON feed) is served over HTTP on 127.0.0.1 with the headers its
``Header:`` comment lines name, and goes through the real ``monitor feeds check --json`` (a
subprocess, in a few batches of generated feed lists).

Nothing may crash or time out, and per feed:

* ``entries_in_feed`` equals what ``feedparser.parse(bytes, response_headers=...)`` finds in the
  very bytes and headers the client received (after redirects and Content-Encoding): our fetch
  and the way we hand bytes and headers to feedparser lose nothing;
* ``entries`` (the articles the pipeline gets) equals that same count, less the entries that one
  of the deliberate DIFFERENCES below leaves out, each with its reason;
* for the encoding cases, the feed's title is feedparser's, character for character.

The oracle is feedparser as installed: it reads no JSON Feed (6.x), so neither do we, and the
JSON file counts 0 entries both ways. The corpus is never copied into the repository; under CI
its absence is a failure (tests/conftest.py ``corpus``)."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import feedparser
import pytest

from monitor.feeds.canonical import canonical_url, url_key
from monitor.feeds.html import html_to_text, one_line
from tests.conftest import REPO, corpus
from tests.unit.feeds.served import Reply, ThreadedServer

pytestmark = pytest.mark.corpus

BATCHES = 4
HEADER = re.compile(r"^Header:\s+([^:]+):(.*)$", re.MULTILINE)
# The old harness's host: http/ cases redirect there; we serve those targets ourselves.
HARNESS = "http://localhost:8097"
ENCODINGS = {".gz": "gzip", ".z": "deflate"}
NOT_SERVED = {"README.txt", "LICENSE.feedparser"}
JSON_EXPECT = re.compile(r"feed\.title == '(?P<title>[^']*)' and len\(entries\) == (?P<n>\d+)")


# --- the deliberate differences: entries feedparser finds that do not become articles -------


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def nothing_to_read(entry: Any) -> bool:
    texts = [entry.get("title"), entry.get("summary")]
    texts += [c.get("value") for c in entry.get("content") or []]
    if any(html_to_text(t or "").strip() for t in texts):
        return False
    return not (entry.get("link") or "").strip() and not _is_url((entry.get("id") or "").strip())


def article_key(entry: Any) -> str:
    link = (entry.get("link") or "").strip() or (
        (entry.get("id") or "").strip() if _is_url((entry.get("id") or "").strip()) else ""
    )
    if link:
        return "url:" + url_key(canonical_url(link))
    if (entry.get("id") or "").strip():
        return "guid:" + str(entry["id"]).strip()
    texts = [entry.get("summary") or ""] + [
        c.get("value") or "" for c in entry.get("content") or []
    ]
    return "text:" + one_line(entry.get("title") or "") + "\0" + max(map(html_to_text, texts))


@dataclass(frozen=True)
class Difference:
    name: str
    reason: str
    leaves_out: Callable[[Any, set[str]], bool]  # (entry, keys of the entries kept before it)


DIFFERENCES = [
    Difference(
        "nothing to read",
        "no title, no text once its HTML is removed (an image, an empty element), no link and "
        "no URL as id: nothing to show a reader, nothing for a rule to match, nowhere to go. "
        "The sanitizer cases are mostly such entries (one attribute-stripped <img>).",
        lambda entry, _: nothing_to_read(entry),
    ),
    Difference(
        "same page twice",
        "a feed listing one page twice (the same canonical URL; without a URL, the same id) "
        "gives one article: the pipeline would otherwise count one report as two outlets'.",
        lambda entry, kept: article_key(entry) in kept,
    ),
]


def expected_articles(entries: list[Any], used: dict[str, int]) -> int:
    kept: set[str] = set()
    for entry in entries:
        for difference in DIFFERENCES:
            if difference.leaves_out(entry, kept):
                used[difference.name] = used.get(difference.name, 0) + 1
                break
        else:
            kept.add(article_key(entry))
    return len(kept)


# --- serving the corpus as the old harness did ----------------------------------------------


def _text(data: bytes) -> str:
    """The file as text, for its comment header: UTF-32/16 by byte order mark or by the way
    ``<`` is written, UTF-8 otherwise (the harness's own rule)."""
    for prefix, codec in (
        (b"\x00\x00\xfe\xff", "utf-32-be"),
        (b"\xff\xfe\x00\x00", "utf-32-le"),
        (b"\x00\x00\x00\x3c", "utf-32-be"),
        (b"\x3c\x00\x00\x00", "utf-32-le"),
        (b"\x00\x3c\x00\x3f", "utf-16-be"),
        (b"\x3c\x00\x3f\x00", "utf-16-le"),
        (b"\xfe\xff", "utf-16-be"),
        (b"\xff\xfe", "utf-16-le"),
    ):
        if data.startswith(prefix):
            return data.decode(codec, "ignore")
    return data.decode("utf-8", "ignore")


@dataclass(frozen=True)
class Case:
    rel: str  # path in the corpus
    reply: Reply
    final: str | None  # the case whose bytes the client ends with; None for 304


def _headers(rel: str, data: bytes) -> tuple[int, dict[str, str]]:
    named = {k.strip().lower(): v.strip() for k, v in HEADER.findall(_text(data))}
    status = int(named.pop("status", "200") or 200)
    # Without a Content-type line the old harness served its http cases as text/xml and read
    # the others from disk, with no header at all: here they are application/xml, which leaves
    # the character set to the document itself as no header would (but is a real feed's type).
    default = "text/xml" if "http" in Path(rel).name else "application/xml"
    headers = {"Content-Type": named.pop("content-type", default)}
    if rel.endswith(".json"):
        headers["Content-Type"] = "application/feed+json"
    encoding = ENCODINGS.get(Path(rel).suffix)
    if encoding:
        headers["Content-Encoding"] = encoding
    for key, value in named.items():
        headers[key.title()] = value
    return status, headers


def cases(root: Path) -> dict[str, Case]:
    out: dict[str, Case] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name not in NOT_SERVED):
        rel = path.relative_to(root).as_posix()
        data = path.read_bytes()
        status, headers = _headers(rel, data)
        final: str | None = rel
        location = headers.get("Location", "")
        if location.startswith(HARNESS):
            target = urlsplit(location).path
            if target == "/-/return-304.xml":
                final = None
            else:
                final = str(Path(rel).parent / Path(target).name)
            headers["Location"] = f"/c/{quote(final)}" if final else "/-/return-304.xml"
        out[rel] = Case(rel, Reply(data, status, headers), final)
    return out


def delivered(case: Case) -> tuple[bytes, dict[str, str]]:
    """The body and headers a client ends with for a case (Content-Encoding undone, as an HTTP
    client does; a body that does not decode is kept as it came, as feedparser's own does)."""
    body, headers = case.reply.body, {k.lower(): v for k, v in case.reply.headers.items()}
    encoding = headers.pop("content-encoding", "")
    decoders: list[Callable[[bytes], bytes]] = []
    if encoding == "gzip":
        decoders = [gzip.decompress]
    elif encoding == "deflate":
        decoders = [zlib.decompress, lambda b: zlib.decompress(b, -zlib.MAX_WBITS)]
    for decode in decoders:
        try:
            return decode(body), headers
        except (OSError, EOFError, zlib.error):
            continue
    return body, headers


def oracle(case: Case | None) -> Any:
    if case is None:  # 304 Not Modified: no body
        return feedparser.FeedParserDict(entries=[], feed={})
    body, headers = delivered(case)
    return feedparser.parse(io.BytesIO(body), response_headers=headers)


def run_check(feed_list: Path) -> dict[str, Any]:
    env = {**os.environ, "MONITOR_LOG_LEVEL": "warning", "COLUMNS": "120"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor.cli",
            "feeds",
            "check",
            str(feed_list),
            "--json",
            "--concurrency",
            "32",
            "--timeout",
            "20",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode in (0, 1), f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def test_every_corpus_file_goes_through_feeds_check_like_feedparser(tmp_path: Path) -> None:
    root = corpus("feedparser")
    served = cases(root)
    assert len(served) > 2000, f"corpus at {root} looks truncated: {len(served)} files"
    names = {rel: f"c{i:04d}" for i, rel in enumerate(served)}
    started = time.perf_counter()
    with ThreadedServer() as server:
        for rel, case in served.items():
            server.replies[f"/c/{rel}"] = case.reply
        server.replies["/-/return-304.xml"] = Reply(status=304)
        lists = []
        rels = list(served)
        for b in range(BATCHES):
            batch = rels[b::BATCHES]
            lines = ["feeds:"]
            for rel in batch:
                lines += [f"  - name: {names[rel]}", f"    url: {server.url('/c/' + quote(rel))}"]
            path = tmp_path / f"batch{b}.yaml"
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            lists.append(path)
        with ThreadPoolExecutor(2) as pool:  # two cores: two CLIs at a time
            reports = list(pool.map(run_check, lists))
    seconds = time.perf_counter() - started
    results = {f["name"]: f for report in reports for f in report["feeds"]}
    assert len(results) == len(served)

    problems: list[str] = []
    used: dict[str, int] = {}
    statuses: dict[str, int] = {}
    articles = 0
    for rel, case in served.items():
        got = results[names[rel]]
        statuses[got["status"]] = statuses.get(got["status"], 0) + 1
        where = f"{rel} ({got['status']}: {'; '.join(got['errors'])})"
        if got["status"] == "timeout" or any("internal error" in e for e in got["errors"]):
            problems.append(f"{where}: crashed or timed out")
            continue
        if rel.endswith(".json"):
            # feedparser 6.0 reads no JSON Feed (its later versions do): the file's own
            # expectation, written for those versions, is the oracle
            articles += got["entries"]
            expect = JSON_EXPECT.search(_text(case.reply.body))
            assert expect, f"{rel}: no expectation in the file"
            if (got["entries_in_feed"], got["entries"]) != (int(expect["n"]),) * 2:
                problems.append(f"{where}: {got['entries']} articles, expected {expect['n']}")
            if got["title"] != expect["title"] or got["format"] != "json1":
                problems.append(f"{where}: title {got['title']!r}, format {got['format']!r}")
            continue
        parsed = oracle(served[case.final] if case.final else None)
        found = len(parsed.entries)
        want = expected_articles(parsed.entries, used)
        articles += got["entries"]
        if got["status"] == "ok" and got["entries_in_feed"] != found:
            problems.append(f"{where}: {got['entries_in_feed']} entries, feedparser {found}")
        if got["entries"] != want:
            problems.append(
                f"{where}: {got['entries']} articles, expected {want} of feedparser's {found}"
            )
        if rel.startswith("encoding/") and got["status"] == "ok":
            title = one_line(parsed.feed.get("title", "") or "")[:500]
            if got["title"] != title:
                problems.append(f"{where}: title {got['title']!r}, feedparser {title!r}")
    assert not problems, f"{len(problems)} of {len(served)} feeds differ:\n" + "\n".join(problems)
    # Each deliberate difference must still be needed: an unused one is removed, not kept.
    unused = [d.name for d in DIFFERENCES if not used.get(d.name)]
    assert not unused, f"differences no corpus file needs any more: {unused}"
    assert articles > 500 and statuses.get("ok", 0) > 2000, statuses
    print(f"\n{len(served)} corpus feeds checked in {seconds:.1f}s: {statuses}; left out: {used}")
