"""Exact duplicates: an article already seen, by URL, GUID or (within one outlet) content.

Identical text from two *different* outlets is not dropped here: that is syndication, and the
copy must join its story as a new source (it raises corroboration). Near-duplicate clustering
handles it.
"""

from __future__ import annotations

import hashlib
from collections.abc import MutableMapping

from monitor.feeds.canonical import url_key
from monitor.models import Article
from monitor.pipeline.text import normalise


def exact_keys(article: Article) -> list[str]:
    keys = []
    if article.url:
        keys.append("url:" + url_key(article.url))
    if article.guid:
        # GUIDs that are URLs are pages like any link (most feeds use the link itself: one key,
        # not two); opaque GUIDs ("1234") are only unique within a feed.
        guid = article.guid
        key = "url:" + url_key(guid) if "://" in guid else f"guid:{article.source}:{guid}"
        if key not in keys:
            keys.append(key)
    content = normalise(" ".join(f"{article.title}\n{article.body}".split()))
    digest = hashlib.sha256(content.encode()).hexdigest()[:32]
    keys.append(f"hash:{article.source}:{digest}")
    return keys


def occurrence(article: Article) -> str:
    """One fetch of one article. A later poll that serves the article again is another
    occurrence (a duplicate); the *same* record delivered twice (Kafka's at-least-once replay
    after a crash) is the same occurrence and must go through again, or it would be lost."""
    return f"{article.id}|{article.fetched_at.isoformat()}"


def seen_before(article: Article, seen: MutableMapping[str, str]) -> str | None:
    """The id of an earlier article this one duplicates exactly; otherwise record it, None.

    Replay-safe: the table may be written before the stage's output is acknowledged, because
    a replayed record finds its own occurrence there and passes."""
    keys = exact_keys(article)
    mine = occurrence(article)
    for key in keys:
        earlier = seen.get(key)
        if earlier is not None and earlier != mine:
            return earlier.split("|", 1)[0]
    for key in keys:
        seen[key] = mine
    return None
