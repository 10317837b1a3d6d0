"""What a backtest replays: ``--input`` read into articles, in publication order.

Forms of ``--input``:
  * a feed file (RSS/Atom/RDF XML), or a directory of them (``*.xml``, ``*.rss``, ``*.atom``,
    ``*.rdf``), parsed by the poller's own parser; each file is one feed named by its stem,
    unless a feed list (``feeds.yaml``) beside the files names it (and gives its reliability);
  * JSON entry exports (``*.json``: a file, or a directory searched recursively);
  * ``state:PATH``: the article archive in the embedded runtime's state file;
  * ``kafka:TOPIC``: a topic of the scale-out runtime (see :mod:`monitor.backtest.kafka`).
Anything else is an :class:`InputError` naming the input.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from monitor.durations import parse_duration
from monitor.errors import ConfigError, FeedError, MonitorError
from monitor.feeds.exports import read_export
from monitor.feeds.parse import parse_feed
from monitor.feeds.sources import FeedSource, load_feeds
from monitor.models import Article

FEED_SUFFIXES = frozenset({".xml", ".rss", ".atom", ".rdf"})
EXPORT_SUFFIX = ".json"
FEED_LIST = "feeds.yaml"
_NAME_CHARS = frozenset(string.ascii_lowercase + string.digits + "._-")


class InputError(MonitorError):
    """``--input`` cannot be read; the message names it."""


@dataclass(frozen=True)
class Window:
    """Publication times to replay: ``since <= published < until`` (either end open)."""

    since: datetime | None = None
    until: datetime | None = None

    def admits(self, when: datetime) -> bool:
        return (self.since is None or when >= self.since) and (
            self.until is None or when < self.until
        )


def parse_when(text: str, now: datetime) -> datetime:
    """``2021-11-20``, ``2021-11-20T12:00`` (UTC unless it says otherwise) or a duration
    meaning that long ago (``7d``, ``12h``). ValueError otherwise."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        try:
            return now - parse_duration(text)
        except ValueError:
            raise ValueError(
                f"{text!r} is neither a date/time (2021-11-20, 2021-11-20T12:00Z) nor a "
                "duration ago (7d, 12h)"
            ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass
class Loaded:
    """The articles to replay, in publication order, and what reading them found."""

    label: str  # the input as the user gave it, for the report
    articles: list[Article]
    undecodable: int = 0  # records that were not articles (Kafka), skipped
    notes: list[str] = field(default_factory=list)  # worth telling the user, not fatal


def in_order(articles: Iterable[Article], window: Window) -> list[Article]:
    """Publication order; ties broken by id, as the archive does, so every input form gives
    one deterministic sequence (story ids depend on which copy comes first)."""
    kept = [a for a in articles if window.admits(a.published)]
    return sorted(kept, key=lambda a: (a.published, a.id))


def load_input(
    spec: str,
    window: Window,
    *,
    kafka_bootstrap: str | None = None,
    topic_prefix: str = "",
    now: datetime | None = None,
) -> Loaded:
    """Read ``--input``; raise :class:`InputError` (naming it) when it cannot be read."""
    if spec.startswith("state:"):
        return _from_state(spec, Path(spec.removeprefix("state:")), window)
    if spec.startswith("kafka:"):
        from monitor.backtest.kafka import load_topic  # aiokafka only when needed

        return load_topic(spec, spec.removeprefix("kafka:"), window, kafka_bootstrap, topic_prefix)
    return _from_files(spec, Path(spec), window, now or datetime.now(UTC))


def _from_state(spec: str, path: Path, window: Window) -> Loaded:
    from monitor.state.archive import ArticleArchive
    from monitor.state.sqlite import Store

    if not path.name:
        raise InputError(f"--input {spec!r}: give the state file, e.g. state:.monitor/state.db")
    if not path.is_file():
        raise InputError(f"--input {spec!r}: state file {path} not found")
    try:
        store = Store(path)
    except MonitorError as exc:  # StateError: not SQLite, or another schema
        raise InputError(f"--input {spec!r}: {exc}") from None
    try:
        archive = ArticleArchive(store.db)
        articles = list(archive.articles(window.since, window.until))
        total = len(archive)
    finally:
        store.rollback()  # a backtest reads; it leaves the file as it found it
        store.db.close()
    notes = []
    if not total:
        notes.append(
            f"{path} has no archived articles (MONITOR_ARCHIVE_DAYS=0, or nothing polled yet)"
        )
    return Loaded(spec, articles, notes=notes)


def _from_files(spec: str, path: Path, window: Window, now: datetime) -> Loaded:
    if not path.exists():
        raise InputError(
            f"--input {spec!r}: no such file or directory (give feed files, JSON exports, "
            "state:PATH or kafka:TOPIC)"
        )
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and (p.suffix.lower() in FEED_SUFFIXES or p.suffix == EXPORT_SUFFIX)
        )
        if not files:
            raise InputError(
                f"--input {spec!r}: no feed files (*.xml, *.rss, *.atom, *.rdf) or JSON "
                "exports (*.json) in this directory"
            )
    else:
        files = [path]
    notes: list[str] = []
    feeds = _feed_list(files, notes)
    articles: list[Article] = []
    for file in files:
        try:
            if file.suffix == EXPORT_SUFFIX:
                articles.extend(read_export(file, now))
            else:
                source = feeds.get(file.resolve()) or FeedSource(
                    name=_feed_name(file), url=file.resolve().as_uri()
                )
                articles.extend(parse_feed(file.read_bytes(), source, now, source.url))
        except FeedError as exc:  # ParseError: the bytes are no feed / no export
            raise InputError(f"--input {spec!r}: {file}: {_reason(exc)}") from None
        except OSError as exc:
            raise InputError(f"--input {spec!r}: {file}: {exc.strerror or exc}") from None
    return Loaded(spec, in_order(articles, window), notes=notes)


def _feed_list(files: list[Path], notes: list[str]) -> dict[Path, FeedSource]:
    """Feed files listed in a ``feeds.yaml`` beside them get that list's name and reliability,
    as a real poll would; scores weigh reliability, so this keeps the replay faithful."""
    out: dict[Path, FeedSource] = {}
    for folder in sorted({f.parent for f in files if f.suffix != EXPORT_SUFFIX}):
        listing = folder / FEED_LIST
        if not listing.is_file():
            continue
        try:
            sources = load_feeds(listing)
        except ConfigError:
            notes.append(f"{listing} does not load (monitor run says why); feeds named by file")
            continue
        for source in sources:
            url = urlsplit(source.url)
            if url.scheme == "file":
                out[Path(unquote(url.path)).resolve()] = source
    return out


def _feed_name(file: Path) -> str:
    """A valid feed name from a file name: lower case, other characters as '-'."""
    name = "".join(c if c in _NAME_CHARS else "-" for c in file.stem.lower())
    name = name.lstrip("._-")[:64]
    return name or "feed"


def _reason(exc: FeedError) -> str:
    # FeedError's message is "feed 'NAME': reason"; the file is named already
    text = str(exc)
    return text.split(": ", 1)[1] if text.startswith("feed ") and ": " in text else text
