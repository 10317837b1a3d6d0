"""deploy/feeds.yaml, the starter list of real outlets: it loads as the poller loads it, and its
names, weights, labels and intervals follow the conventions its header states. (Whether the URLs
answer is for `monitor feeds check deploy/feeds.yaml` on a machine with internet access.)"""

from __future__ import annotations

import re
from collections import Counter
from urllib.parse import urlsplit

from monitor.feeds.sources import load_feeds
from tests.conftest import REPO

FEEDS = REPO / "deploy" / "feeds.yaml"
KINDS = {"wires", "broadcaster", "newspaper", "regional", "official", "analysis"}


def test_the_starter_list_loads_and_follows_its_conventions() -> None:
    feeds = load_feeds(FEEDS)
    assert len(feeds) >= 40
    names = [f.name for f in feeds]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9-]*", n) and len(n) <= 64 for n in names)
    urls = [f.url for f in feeds]
    assert len(set(urls)) == len(urls), [u for u, n in Counter(urls).items() if n > 1]
    for f in feeds:
        assert urlsplit(f.url).scheme == "https" and urlsplit(f.url).hostname, f.name
        assert 0 < f.reliability <= 1, f.name
        assert f.interval >= 300, f"{f.name}: polled more often than every 5 minutes"
        kinds = KINDS.intersection(f.labels)
        assert len(kinds) == 1 and f.labels[0] in KINDS, f"{f.name}: one kind, first: {f.labels}"
        assert len(set(f.labels)) == len(f.labels), f.name
        if "state-media" in f.labels:
            assert f.reliability <= 0.6, f.name
    assert {k for f in feeds for k in f.labels if k in KINDS} == KINDS
    assert {f.language for f in feeds} >= {"en", "ru", "uk", "de", "fr"}


def test_the_header_says_how_to_verify_it() -> None:
    header = FEEDS.read_text(encoding="utf-8").split("\nfeeds:", 1)[0]
    assert "monitor feeds check deploy/feeds.yaml" in header
    assert "NOT VERIFIED FROM THIS BUILD MACHINE" in header
    assert "last verified:" in header
