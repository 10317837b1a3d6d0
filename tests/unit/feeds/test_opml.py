"""OPML import and export: nested folders and categories become labels, names are slugs and
unique, what is not a feed is reported, and a feed list survives the round trip unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.feeds.opml import (
    OpmlError,
    append_entries,
    feed_entry,
    feeds_yaml,
    is_opml,
    parse_opml,
    read_opml,
    slug,
    to_opml,
)
from monitor.feeds.sources import FeedSource, load_feeds

READER_EXPORT = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>My subscriptions</title></head>
  <body>
    <outline text="World" title="World">
      <outline type="rss" text="BBC News - World" title="BBC News - World"
               xmlUrl="https://feeds.bbci.co.uk/news/world/rss.xml"
               htmlUrl="https://www.bbc.co.uk/news/world" language="en-GB"/>
      <outline text="Europe">
        <outline type="rss" text="DW" xmlUrl="https://rss.dw.com/rdf/rss-en-all"
                 category="/Broadcasters/Public, /germany"/>
        <outline type="rss" title="Кыив Индепендент" text="" xmlUrl="https://kyivindependent.com/feed/"
                 language="uk_UA"/>
      </outline>
    </outline>
    <outline type="rss" text="BBC News - World" xmlUrl="https://feeds.bbci.co.uk/news/rss.xml"/>
    <outline type="rss" text="Duplicate" xmlUrl="https://feeds.bbci.co.uk/news/world/rss.xml"/>
    <outline type="link" text="A web page" url="https://example.org/"/>
    <outline type="include" text="Other list" url="https://example.org/list.opml"/>
    <outline type="rss" text="Gopher" xmlUrl="gopher://example.org/feed"/>
    <outline text="Empty folder"/>
    <outline type="rss" text="Bad interval" xmlUrl="https://example.org/x" monitorInterval="1s"/>
  </body>
</opml>
""".encode()


def test_import_maps_outlines_folders_and_categories() -> None:
    got = parse_opml(READER_EXPORT, "subs.opml")
    assert got.feeds == [
        {
            "name": "bbc-news-world",
            "url": "https://feeds.bbci.co.uk/news/world/rss.xml",
            "language": "en-GB",
            "labels": ["world"],
        },
        {
            "name": "dw",
            "url": "https://rss.dw.com/rdf/rss-en-all",
            "labels": ["world", "europe", "broadcasters", "public", "germany"],
        },
        {
            # a title without Latin letters: the name comes from the URL
            "name": "kyivindependent-com-feed",
            "url": "https://kyivindependent.com/feed/",
            "language": "uk-UA",
            "labels": ["world", "europe"],
        },
        {"name": "bbc-news-world-2", "url": "https://feeds.bbci.co.uk/news/rss.xml"},
    ]
    assert got.folders == 2
    skipped = "\n".join(got.skipped)
    assert "'Duplicate': same xmlUrl as feed 'bbc-news-world'" in skipped
    assert "'A web page': no xmlUrl, not a feed (link)" in skipped
    assert "'Other list': an include of another OPML file (not read)" in skipped
    assert "'Gopher': xmlUrl 'gopher://example.org/feed' is not an http(s) URL" in skipped
    assert "'Empty folder': no xmlUrl" in skipped
    assert "'Bad interval': interval:" in skipped
    assert len(got.skipped) == 6
    # the result is a valid feed list
    for entry in got.feeds:
        FeedSource.model_validate(entry)


def test_names_already_taken_and_urls_already_listed_are_not_reused() -> None:
    got = parse_opml(
        READER_EXPORT,
        "subs.opml",
        taken=["bbc-news-world", "dw"],
        known_urls=["https://kyivindependent.com/feed/"],
    )
    names = [f["name"] for f in got.feeds]
    assert names == ["bbc-news-world-2", "dw-2", "bbc-news-world-3"]
    assert any("same xmlUrl as a feed already in the list" in s for s in got.skipped)


def test_slugs() -> None:
    assert slug("BBC News — World") == "bbc-news-world"
    assert slug("  Le Monde.fr : International  ") == "le-monde-fr-international"
    assert slug("Süddeutsche Zeitung") == "suddeutsche-zeitung"
    assert slug("Новости") == ""
    assert len(slug("x" * 300)) == 64


def test_unique_names_stay_within_64_characters() -> None:
    long = "A" * 80
    body = "".join(f'<outline text="{long}" xmlUrl="https://e.org/{i}"/>' for i in range(12))
    got = parse_opml(f"<opml><body>{body}</body></opml>".encode(), "x.opml")
    names = [f["name"] for f in got.feeds]
    assert len(set(names)) == 12 and all(len(n) <= 64 for n in names)
    assert names[11].endswith("-12")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<opml><body><outline", "not well-formed XML"),
        (b"<rss version='2.0'><channel/></rss>", "root element <rss>"),
        (b"<opml version='2.0'><head/></opml>", "no <body> element"),
        (b"feeds:\n  - name: x\n", "not well-formed XML"),
    ],
)
def test_bad_files_are_errors_naming_the_file(data: bytes, message: str) -> None:
    with pytest.raises(OpmlError, match=message) as caught:
        parse_opml(data, "subs.opml")
    assert str(caught.value).startswith("subs.opml: ")
    assert isinstance(caught.value, ConfigError)


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(OpmlError, match=r"nope\.opml: cannot read"):
        read_opml(tmp_path / "nope.opml")


def test_an_entity_bomb_in_opml_is_refused() -> None:
    lol = '<!ENTITY a "' + "x" * 100_000 + '">'
    data = f"<?xml version='1.0'?>\n<!DOCTYPE opml [\n{lol}\n]>\n<opml><body>"
    data += '<outline text="&a;" xmlUrl="https://e.org/"/>' * 100 + "</body></opml>"
    with pytest.raises(OpmlError, match="entity bomb"):
        parse_opml(data.encode(), "bomb.opml")


def test_an_external_entity_in_opml_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("top-secret-value")
    data = (
        f'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY x SYSTEM "{secret.as_uri()}">]>'
        '<opml><body><outline text="&x;" xmlUrl="https://e.org/"/></body></opml>'
    )
    try:
        got = parse_opml(data.encode(), "x.opml")
    except OpmlError:
        return  # refused outright: fine too
    assert "top-secret-value" not in repr(got)


SOURCES = [
    FeedSource(
        name="bbc-world",
        url="https://feeds.bbci.co.uk/news/world/rss.xml",
        reliability=0.9,
        language="en",
        interval=600,
        labels=["broadcaster", "uk", "public"],
    ),
    FeedSource(
        name="meduza.en",
        url="https://meduza.io/rss/en/all",
        reliability=0.75,
        language="en",
        interval=1800,
        labels=["regional", "ru"],
    ),
    FeedSource(
        name="tass_ru",
        url="https://tass.ru/rss/v2.xml?a=1&b=2",
        reliability=0.3,
        language="ru",
        labels=["state-media", "ru"],
        enabled=False,
    ),
    FeedSource(name="plain", url="https://example.org/feed"),
    FeedSource(name="odd-interval", url="https://example.org/odd", interval=95.5),
    FeedSource(
        name="intranet-teasers",
        url="https://intranet.example/feed",
        fetch_article=True,
        allow_private=True,
        websub=False,
    ),
]


def test_export_then_import_gives_the_same_feed_list() -> None:
    text = to_opml(SOURCES, title="desk feeds")
    assert text.startswith('<?xml version="1.0" encoding="utf-8"?>\n<opml version="2.0">')
    back = parse_opml(text.encode(), "export.opml")
    assert back.skipped == []
    assert [FeedSource.model_validate(e) for e in back.feeds] == SOURCES
    assert back.sources() == [s for s in SOURCES if s.enabled]


def test_export_groups_by_first_label_and_keeps_the_rest_as_categories() -> None:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(to_opml(SOURCES))
    body = root.find("body")
    assert body is not None
    folders = {o.get("text"): o for o in body if o.get("xmlUrl") is None}
    assert set(folders) == {"broadcaster", "regional", "state-media"}
    [bbc] = list(folders["broadcaster"])
    assert bbc.get("xmlUrl") == "https://feeds.bbci.co.uk/news/world/rss.xml"
    assert bbc.get("category") == "/uk,/public"
    assert bbc.get("type") == "rss" and bbc.get("language") == "en"
    plain = [o for o in body if o.get("xmlUrl")]
    assert [o.get("text") for o in plain] == ["plain", "odd-interval", "intranet-teasers"]
    assert plain[-1].get("monitorFetchArticle") == "true"
    assert plain[-1].get("monitorWebsub") == "false"


def test_an_imported_list_loads_as_a_feed_list(tmp_path: Path) -> None:
    got = parse_opml(READER_EXPORT, "subs.opml")
    path = tmp_path / "feeds.yaml"
    path.write_text(feeds_yaml(got.feeds, "Imported from subs.opml"))
    text = path.read_text()
    assert text.startswith("# Imported from subs.opml\nfeeds:\n  - name: bbc-news-world\n")
    assert "    labels: [world, europe, broadcasters, public, germany]\n" in text
    loaded = load_feeds(path)
    assert [f.name for f in loaded] == [f["name"] for f in got.feeds]


def test_yaml_round_trip_of_every_field(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text(feeds_yaml([feed_entry(s) for s in SOURCES]))
    assert "interval: 10m" in path.read_text() and "interval: 95.5" in path.read_text()
    assert load_feeds(path) == [s for s in SOURCES if s.enabled]


EXISTING = """\
# yaml-language-server: $schema=../schemas/feeds.schema.json
# The desk's feeds. Keep the wires first.
feeds:
  # wires
  - name: wire-one        # the good one
    url: https://wire.example/rss
    reliability: 0.95
"""


def test_append_keeps_every_line_and_comment(tmp_path: Path) -> None:
    added = [{"name": "new-one", "url": "https://new.example/feed", "labels": ["regional"]}]
    text = append_entries(EXISTING, added, "feeds.yaml")
    assert text.startswith(EXISTING)
    assert text.endswith(
        "  - name: new-one\n    url: https://new.example/feed\n    labels: [regional]\n"
    )
    path = tmp_path / "feeds.yaml"
    path.write_text(text)
    assert [f.name for f in load_feeds(path)] == ["wire-one", "new-one"]


@pytest.mark.parametrize("indent", ["", "    "])
def test_append_follows_the_lists_own_indentation(indent: str, tmp_path: Path) -> None:
    existing = f"feeds:\n{indent}- name: a\n{indent}  url: https://a.example/\n"
    text = append_entries(existing, [{"name": "b", "url": "https://b.example/"}], "f.yaml")
    assert text.endswith(f"{indent}- name: b\n{indent}  url: https://b.example/\n")
    path = tmp_path / "feeds.yaml"
    path.write_text(text)
    assert [f.name for f in load_feeds(path)] == ["a", "b"]


@pytest.mark.parametrize("existing", ["feeds: []\n# end\n", "feeds:\n", "# nothing yet\nfeeds:\n"])
def test_append_to_an_empty_list(existing: str, tmp_path: Path) -> None:
    text = append_entries(existing, [{"name": "b", "url": "https://b.example/"}], "f.yaml")
    path = tmp_path / "feeds.yaml"
    path.write_text(text)
    assert [f.name for f in load_feeds(path)] == ["b"]


@pytest.mark.parametrize(
    ("existing", "message"),
    [
        ("feeds:\n  - name: a\n    url: https://a/\nother: 1\n", "not the last key"),
        ("other: 1\n", "no top-level `feeds:` key"),
        ("feeds: [{name: a, url: 'https://a/'}]\n", "block list"),
        ("feeds: [\n", "not a YAML feed list"),
    ],
)
def test_append_refuses_what_it_cannot_extend_cleanly(existing: str, message: str) -> None:
    with pytest.raises(OpmlError, match=message):
        append_entries(existing, [{"name": "b", "url": "https://b/"}], "f.yaml")


def test_opml_is_told_from_yaml_by_its_first_bytes(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"\xef\xbb\xbf  \n<?xml version='1.0'?><opml/>")
    (tmp_path / "b.opml").write_text("feeds: []\n")
    assert is_opml(tmp_path / "a.txt")
    assert not is_opml(tmp_path / "b.opml")
