"""OPML in and out: the subscription lists that feed readers and other monitors import and export.

Import maps each ``<outline xmlUrl=...>`` to a feed-list entry (see :mod:`monitor.feeds.sources`):
``xmlUrl`` is the url, the outline's ``title`` (else ``text``) becomes the name as a slug, the
folders it sits in and its ``category`` attribute become labels, ``language`` is kept. Names are
made unique; outlines that are not feeds (folders aside) are reported, not silently dropped.

Export writes OPML 2.0: one folder per feed's first label, its other labels as ``category``, and
what OPML has no attribute for (name, reliability, interval, enabled) as ``monitor*`` attributes,
which import reads back: a feed list survives the round trip unchanged."""

from __future__ import annotations

import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from monitor.errors import ConfigError
from monitor.feeds.parse import entity_bomb
from monitor.feeds.sources import FeedSource

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")
_MAX_NAME = 64
_DEFAULTS = FeedSource(name="x", url="https://x")
# Switches with no OPML attribute of their own: field -> our attribute (written camelCase,
# read case-blind).
_SWITCHES = {
    "fetch_article": "monitorFetchArticle",
    "allow_private": "monitorAllowPrivate",
    "websub": "monitorWebsub",
}


class OpmlError(ConfigError):
    """An OPML file cannot be read; the message names the file."""


@dataclass
class Imported:
    """Feed-list entries made from an OPML file, and the outlines left out (with why)."""

    feeds: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    folders: int = 0

    def sources(self) -> list[FeedSource]:
        """The enabled feeds, as :func:`monitor.feeds.sources.load_feeds` would return them."""
        out = [FeedSource.model_validate(entry) for entry in self.feeds]
        return [s for s in out if s.enabled]


def slug(text: str) -> str:
    """``"BBC News — World"`` → ``"bbc-news-world"``: a feed name or label (accents folded)."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")[:_MAX_NAME].rstrip("-")


def _url_slug(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = host.removeprefix("www.")
    return slug(f"{host} {parts.path}") or "feed"


def _unique(base: str, taken: set[str]) -> str:
    name, n = base, 1
    while name in taken:
        n += 1
        suffix = f"-{n}"
        name = base[: _MAX_NAME - len(suffix)].rstrip("-") + suffix
    taken.add(name)
    return name


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def read_opml(path: Path, taken: Iterable[str] = (), known_urls: Iterable[str] = ()) -> Imported:
    """Read an OPML file; ``taken`` names and ``known_urls`` (of a feed list it is merged into)
    are not used again. Raises :class:`OpmlError` naming the file when it is not OPML."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OpmlError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_opml(data, str(path), taken, known_urls)


def parse_opml(
    data: bytes, where: str, taken: Iterable[str] = (), known_urls: Iterable[str] = ()
) -> Imported:
    bomb = entity_bomb(data)
    if bomb:
        raise OpmlError(f"{where}: refused: {bomb}")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise OpmlError(f"{where}: not an OPML file (not well-formed XML: {exc})") from None
    if _local(root.tag) != "opml":
        raise OpmlError(f"{where}: not an OPML file (root element <{_local(root.tag)}>)")
    body = next((e for e in root if _local(e.tag) == "body"), None)
    if body is None:
        raise OpmlError(f"{where}: not an OPML file (no <body> element)")
    walk = _Walk(set(taken), {u.strip() for u in known_urls})
    walk.outlines(body, [])
    return walk.result


@dataclass
class _Walk:
    names: set[str]
    urls: set[str]
    result: Imported = field(default_factory=Imported)
    by_url: dict[str, str] = field(default_factory=dict)

    def outlines(self, parent: ET.Element, folders: list[str]) -> None:
        for outline in parent:
            if _local(outline.tag) != "outline":
                continue
            attrs = {_local(k): v.strip() for k, v in outline.attrib.items()}
            label = attrs.get("title") or attrs.get("text") or ""
            where = f"outline {label!r}" if label else "an outline without title or text"
            if folders:
                where += f" (in {' / '.join(folders)})"
            children = any(_local(c.tag) == "outline" for c in outline)
            url = attrs.get("xmlurl", "")
            if url:
                self.feed(attrs, label, url, folders, where)
                if children:
                    self.outlines(outline, folders)
            elif children:
                self.result.folders += 1
                self.outlines(outline, [*folders, label] if label else folders)
            elif attrs.get("type", "").lower() == "include":
                self.result.skipped.append(f"{where}: an include of another OPML file (not read)")
            else:
                kind = attrs.get("type") or "no type"
                self.result.skipped.append(f"{where}: no xmlUrl, not a feed ({kind})")

    def feed(
        self, attrs: dict[str, str], label: str, url: str, folders: list[str], where: str
    ) -> None:
        scheme = urlsplit(url).scheme.lower()
        if scheme not in {"http", "https", "file"}:
            self.result.skipped.append(f"{where}: xmlUrl {url!r} is not an http(s) URL")
            return
        if url in self.urls:
            seen = self.by_url.get(url)
            already = f"feed {seen!r}" if seen else "a feed already in the list"
            self.result.skipped.append(f"{where}: same xmlUrl as {already}")
            return
        given = attrs.get("monitorname", "")
        base = given if _NAME.match(given) else slug(label) or _url_slug(url)
        entry: dict[str, Any] = {"name": _unique(base[:_MAX_NAME], self.names), "url": url}
        for key, attr in (("reliability", "monitorreliability"), ("interval", "monitorinterval")):
            if attrs.get(attr):
                entry[key] = _number(attrs[attr])
        language = attrs.get("language", "").replace("_", "-")
        if _LANGUAGE.match(language):
            entry["language"] = language.lower() if len(language) <= 3 else language
        labels: list[str] = []
        categories = [p for c in attrs.get("category", "").split(",") for p in c.split("/")]
        for text in [*folders, *categories]:
            tag = slug(text)
            if tag and tag not in labels:
                labels.append(tag)
        if labels:
            entry["labels"] = labels
        if attrs.get("monitorenabled", "").lower() == "false":
            entry["enabled"] = False
        for key, attr in _SWITCHES.items():
            value = attrs.get(attr.lower(), "").lower()
            if value in ("true", "false"):
                entry[key] = value == "true"
        try:
            source = FeedSource.model_validate(entry)
        except ValidationError as exc:
            self.names.discard(entry["name"])
            first = exc.errors()[0]
            field_ = ".".join(str(p) for p in first["loc"]) or "feed"
            self.result.skipped.append(f"{where}: {field_}: {first['msg']}")
            return
        # Written back the way a person writes the feed list: durations, no default values.
        entry = feed_entry(source)
        self.urls.add(url)
        self.by_url[url] = source.name
        self.result.feeds.append(entry)


def _number(text: str) -> str | float:
    """An attribute's number as a number ("95.5" seconds), anything else as written ("15m")."""
    try:
        return float(text)
    except ValueError:
        return text


def _duration(seconds: float) -> str | float:
    whole = int(seconds)
    if whole != seconds:
        return seconds
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def feed_entry(source: FeedSource) -> dict[str, Any]:
    """A feed as a feed-list entry: name and url, then only what differs from the defaults."""
    entry: dict[str, Any] = {"name": source.name, "url": source.url}
    if source.reliability != _DEFAULTS.reliability:
        entry["reliability"] = source.reliability
    if source.language != _DEFAULTS.language:
        entry["language"] = source.language
    if source.interval != _DEFAULTS.interval:
        entry["interval"] = _duration(source.interval)
    if source.labels:
        entry["labels"] = list(source.labels)
    if not source.enabled:
        entry["enabled"] = False
    for key in _SWITCHES:
        if getattr(source, key) != getattr(_DEFAULTS, key):
            entry[key] = getattr(source, key)
    return entry


def to_opml(feeds: Sequence[FeedSource], title: str = "news-monitor feeds") -> str:
    """OPML 2.0 of a feed list: a folder per first label, the other labels as ``category``."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    body = ET.SubElement(root, "body")
    folders: dict[str, ET.Element] = {}
    for feed in feeds:
        parent = body
        labels = list(feed.labels)
        if labels:
            first = labels.pop(0)
            if first not in folders:
                folders[first] = ET.SubElement(body, "outline", text=first, title=first)
            parent = folders[first]
        attrs = {"type": "rss", "text": feed.name, "title": feed.name, "xmlUrl": feed.url}
        if feed.language:
            attrs["language"] = feed.language
        if labels:
            attrs["category"] = ",".join(f"/{label}" for label in labels)
        attrs["monitorName"] = feed.name
        if feed.reliability != _DEFAULTS.reliability:
            attrs["monitorReliability"] = f"{feed.reliability:g}"
        if feed.interval != _DEFAULTS.interval:
            attrs["monitorInterval"] = str(_duration(feed.interval))
        if not feed.enabled:
            attrs["monitorEnabled"] = "false"
        for key, attr in _SWITCHES.items():
            if getattr(feed, key) != getattr(_DEFAULTS, key):
                attrs[attr] = str(getattr(feed, key)).lower()
        ET.SubElement(parent, "outline", attrs)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def is_opml(path: Path) -> bool:
    """Whether a file is XML (an OPML file) rather than a YAML feed list, by its first bytes."""
    try:
        with path.open("rb") as f:
            head = f.read(512)
    except OSError:
        return path.suffix.lower() in {".opml", ".xml"}
    head = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    return head.startswith(b"<") or head.startswith((b"\xff\xfe", b"\xfe\xff"))


def feeds_yaml(entries: Sequence[dict[str, Any]], header: str = "") -> str:
    """A feed list (YAML) of the given entries, one key per line as people write it."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    lines.append("feeds:" if entries else "feeds: []")
    lines += _items(entries, "  ")
    return "\n".join(lines) + "\n"


def _items(entries: Sequence[dict[str, Any]], indent: str) -> list[str]:
    lines = []
    for entry in entries:
        first = True
        for key, value in entry.items():
            lead = f"{indent}- " if first else f"{indent}  "
            lines.append(f"{lead}{key}: {_scalar(value)}")
            first = False
    return lines


def _scalar(value: Any) -> str:
    import yaml

    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    text: str = yaml.safe_dump(
        {"k": value}, default_flow_style=False, width=1 << 30, allow_unicode=True
    )
    return text.removeprefix("k: ").strip()


def append_entries(text: str, entries: Sequence[dict[str, Any]], where: str) -> str:
    """``text`` (a feed list) with ``entries`` added at the end of its ``feeds:`` list, keeping
    every comment and line of the file as it was. The list must be the file's last block."""
    import yaml

    if not entries:
        return text
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise OpmlError(f"{where}: not a YAML feed list: {exc}") from None
    if root is None:
        return feeds_yaml(entries)
    feeds = None
    if isinstance(root, yaml.MappingNode):
        keys = [k.value for k, _ in root.value]
        if keys and keys[-1] == "feeds":
            feeds = root.value[-1][1]
        elif "feeds" in keys:
            raise OpmlError(
                f"{where}: cannot add to `feeds:`: it is not the last key of the file "
                "(move it to the end, or import into a new file)"
            )
    if feeds is None:
        raise OpmlError(f"{where}: not a feed list (no top-level `feeds:` key)")
    lines = text.splitlines()
    if isinstance(feeds, yaml.SequenceNode) and feeds.value and not feeds.flow_style:
        item = feeds.value[0].start_mark
        dash = lines[item.line].rfind("-", 0, item.column)
        indent = " " * max(dash, 0)
    elif isinstance(feeds, yaml.SequenceNode | yaml.ScalarNode) and not getattr(
        feeds, "value", None
    ):
        # `feeds: []` or `feeds:` with nothing: the list starts here
        line = feeds.start_mark.line
        lines[line] = lines[line][: feeds.start_mark.column].rstrip()
        if not lines[line].rstrip().endswith("feeds:"):
            raise OpmlError(f"{where}: cannot add to its `feeds:` list (write it as a block list)")
        return "\n".join([*lines[: line + 1], *_items(entries, "  "), *lines[line + 1 :]]) + "\n"
    else:
        raise OpmlError(f"{where}: cannot add to its `feeds:` list (write it as a block list)")
    return "\n".join([*lines, *_items(entries, indent)]) + "\n"
