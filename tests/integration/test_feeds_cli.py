"""`monitor feeds check | import | export`, run as a person runs them (a subprocess), against a
real HTTP server on 127.0.0.1 serving good and bad feeds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from monitor.feeds.check import JSON_SCHEMA
from monitor.feeds.sources import load_feeds
from tests.conftest import REPO, monitor_cli
from tests.unit.feeds.helpers import rss
from tests.unit.feeds.served import Reply, ThreadedServer

RSS = {"Content-Type": "application/rss+xml; charset=utf-8"}
GOOD = rss(
    "<title>Shelling reported near Kharkiv</title><link>https://news.example/1</link>",
    "<title>Talks resume</title><link>https://news.example/2</link>",
    channel="Good Wire",
)
MARKUP = rss(
    "<title>[red]not markup[/red]</title><link>https://news.example/m</link>",
    channel="[bold]Lit[/bold]",
)
BOMB = (
    '<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "' + "x" * 100_000 + '">\n]>\n'
    "<rss><channel><title>" + "&a;" * 50_000 + "</title></channel></rss>"
).encode()
REPLIES = {
    "/good": Reply(GOOD, headers=RSS),
    "/markup": Reply(MARKUP, headers=RSS),
    "/missing": Reply(b"nope", 404, {"Content-Type": "text/plain"}),
    "/page": Reply(
        b"<!DOCTYPE html><html><body>Log in</body></html>", headers={"Content-Type": "text/html"}
    ),
    "/garbage": Reply(b"\x00\x01\x02 not a feed", headers=RSS),
    "/bomb": Reply(BOMB, headers=RSS),
    "/slow": Reply(GOOD, headers=RSS, delay=5),
    "/unchanged": Reply(status=304),
}
EXPECTED = {
    "good": ("ok", 200, 2),
    "markup": ("ok", 200, 1),
    "missing": ("error", 404, 0),
    "page": ("error", None, 0),
    "garbage": ("error", 200, 0),
    "bomb": ("error", 200, 0),
    "slow": ("timeout", None, 0),
    "unchanged": ("not_modified", 304, 0),
}


def monitor(*args: str, cwd: Path = REPO, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return monitor_cli(
        *args, env={"MONITOR_LOG_LEVEL": "warning", "COLUMNS": "160"}, cwd=cwd, timeout=timeout
    )


def feed_list(path: Path, server: ThreadedServer, names: list[str]) -> Path:
    lines = ["feeds:"]
    for name in names:
        lines += [f"  - name: {name}", f"    url: {server.url('/' + name)}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer(REPLIES) as srv:
        yield srv


def test_check_json_reports_every_feed_and_exits_1_on_failures(
    server: ThreadedServer, tmp_path: Path
) -> None:
    path = feed_list(tmp_path / "feeds.yaml", server, list(EXPECTED))
    run = monitor("feeds", "check", str(path), "--json", "--timeout", "1")
    assert run.returncode == 1, run.stderr
    report = json.loads(run.stdout)
    jsonschema.validate(report, JSON_SCHEMA)
    got = {f["name"]: (f["status"], f["http_status"], f["entries"]) for f in report["feeds"]}
    assert got == EXPECTED
    assert [f["name"] for f in report["feeds"]] == list(EXPECTED)
    assert report["summary"] == {
        "feeds": 8,
        "ok": 2,
        "not_modified": 1,
        "error": 4,
        "timeout": 1,
        "failed": 5,
    }
    by = {f["name"]: f for f in report["feeds"]}
    assert by["good"]["title"] == "Good Wire" and by["good"]["format"] == "rss20"
    assert "entity bomb" in by["bomb"]["errors"][0]
    assert "web page" in by["page"]["errors"][0]
    assert report["seconds"] < 10  # the slow feed is cut at --timeout, the rest concurrently


def test_check_table_and_a_clean_list_exits_0(server: ThreadedServer, tmp_path: Path) -> None:
    path = feed_list(tmp_path / "feeds.yaml", server, ["good", "markup", "unchanged"])
    run = monitor("feeds", "check", str(path))
    assert run.returncode == 0, run.stderr
    assert "Good Wire" in run.stdout and "not_modified" in run.stdout
    assert "[bold]Lit[/bold]" in run.stdout  # feed text is shown, never read as markup
    assert "3 feeds: 2 ok, 1 not modified, 0 errors, 0 timeouts" in run.stdout


def test_check_table_shows_the_errors(server: ThreadedServer, tmp_path: Path) -> None:
    path = feed_list(tmp_path / "feeds.yaml", server, ["good", "missing"])
    run = monitor("feeds", "check", str(path))
    assert run.returncode == 1
    assert "HTTP 404" in run.stdout and "1 errors" in run.stdout


OPML = """<?xml version="1.0"?>
<opml version="2.0"><head><title>Desk</title></head><body>
  <outline text="Wires">
    <outline type="rss" text="Good Wire" xmlUrl="{good}" category="/ua"/>
  </outline>
  <outline type="rss" title="Markup feed" text="x" xmlUrl="{markup}" language="en"/>
  <outline type="link" text="Homepage" url="https://news.example/"/>
</body></opml>
"""


def test_check_reads_opml_too(server: ThreadedServer, tmp_path: Path) -> None:
    opml = tmp_path / "desk.opml"
    opml.write_text(OPML.format(good=server.url("/good"), markup=server.url("/markup")))
    run = monitor("feeds", "check", str(opml), "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert [(f["name"], f["entries"]) for f in report["feeds"]] == [
        ("good-wire", 2),
        ("markup-feed", 1),
    ]
    assert "skipped: outline 'Homepage': no xmlUrl" in run.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "feed list not found"),
        ("feeds:\n  - name: Bad Name\n    url: https://x/\n", ":2:"),
        ("<opml><body><outline", "not an OPML file"),
    ],
)
def test_check_names_the_bad_input_and_exits_2(
    content: str | None, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "input.yaml"
    if content is not None:
        path.write_text(content)
    run = monitor("feeds", "check", str(path))
    assert run.returncode == 2, run.stdout
    assert str(path) in run.stderr and message in run.stderr


def test_import_prints_a_valid_feed_list(tmp_path: Path) -> None:
    opml = tmp_path / "desk.opml"
    opml.write_text(OPML.format(good="https://a.example/rss", markup="https://b.example/atom"))
    run = monitor("feeds", "import", str(opml))
    assert run.returncode == 0, run.stderr
    out = tmp_path / "out.yaml"
    out.write_text(run.stdout)
    feeds = load_feeds(out)
    assert [(f.name, f.url, f.labels) for f in feeds] == [
        ("good-wire", "https://a.example/rss", ["wires", "ua"]),
        ("markup-feed", "https://b.example/atom", []),
    ]
    assert "imported 2 feeds" in run.stderr and "1 outline(s) skipped" in run.stderr


def test_import_into_an_existing_list_keeps_it_and_adds_only_new_feeds(tmp_path: Path) -> None:
    existing = tmp_path / "feeds.yaml"
    original = (
        "# our desk's list\nfeeds:\n  - name: good-wire   # already here\n"
        "    url: https://a.example/rss\n"
    )
    existing.write_text(original)
    opml = tmp_path / "desk.opml"
    opml.write_text(OPML.format(good="https://a.example/rss", markup="https://b.example/atom"))
    run = monitor("feeds", "import", str(opml), "--into", str(existing))
    assert run.returncode == 0, run.stderr
    text = existing.read_text()
    assert text.startswith(original)
    assert [f.name for f in load_feeds(existing)] == ["good-wire", "markup-feed"]
    assert "same xmlUrl as a feed already in the list" in run.stderr
    assert run.stdout == ""
    # nothing new the second time: the list is left as it is
    again = monitor("feeds", "import", str(opml), "--into", str(existing))
    assert again.returncode == 1 and "no new feeds" in again.stderr
    assert existing.read_text() == text


def test_import_into_a_new_file_and_bad_opml(tmp_path: Path) -> None:
    opml = tmp_path / "desk.opml"
    opml.write_text(OPML.format(good="https://a.example/rss", markup="https://b.example/atom"))
    target = tmp_path / "new.yaml"
    run = monitor("feeds", "import", str(opml), "--into", str(target))
    assert run.returncode == 0, run.stderr
    assert [f.name for f in load_feeds(target)] == ["good-wire", "markup-feed"]
    bad = tmp_path / "bad.opml"
    bad.write_text("<rss/>")
    before = target.read_text()
    run = monitor("feeds", "import", str(bad), "--into", str(target))
    assert run.returncode == 2 and f"{bad}: not an OPML file" in run.stderr
    assert target.read_text() == before
    assert not list(tmp_path.glob(".feeds-import-*"))  # no temporary file left behind


def test_export_then_import_round_trips_the_starter_list(tmp_path: Path) -> None:
    source = REPO / "deploy" / "feeds.yaml"
    opml = tmp_path / "feeds.opml"
    run = monitor("feeds", "export", str(source), "--opml", "-o", str(opml))
    assert run.returncode == 0, run.stderr
    assert opml.read_text().startswith(
        '<?xml version="1.0" encoding="utf-8"?>\n<opml version="2.0">'
    )
    back = tmp_path / "back.yaml"
    run = monitor("feeds", "import", str(opml), "--into", str(back))
    assert run.returncode == 0, run.stderr
    assert load_feeds(back) == load_feeds(source)
    # and as YAML, to stdout
    run = monitor("feeds", "export", str(source), "--yaml")
    assert run.returncode == 0
    (tmp_path / "y.yaml").write_text(run.stdout)
    assert load_feeds(tmp_path / "y.yaml") == load_feeds(source)


def test_export_of_a_bad_list_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "feeds.yaml"
    bad.write_text("feeds:\n  - name: x\n")
    run = monitor("feeds", "export", str(bad))
    assert run.returncode == 2 and f"{bad}:2" in run.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MONITOR_FETCH_ALLOWED_NETWORKS", "10.0.0.0/8, 10.0.0.0/33"),
        ("MONITOR_WEBSUB_CALLBACK_URL", "ftp://hub.example/cb"),
        ("MONITOR_FETCH_PER_HOST", "0"),
    ],
)
def test_a_bad_setting_is_named_by_its_variable(variable: str, value: str, tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds:\n  - {name: a, url: https://a.example/rss}\n")
    env = {**os.environ, variable: value}
    run = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "feeds", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert run.returncode == 2, run.stdout
    assert run.stderr.startswith(f"error: {variable}: "), run.stderr
    assert "Traceback" not in run.stderr
