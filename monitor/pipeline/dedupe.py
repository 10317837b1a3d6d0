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
        # GUIDs that are URLs are global; opaque GUIDs ("1234") are only unique within a feed.
        guid = article.guid
        keys.append("guid:" + (url_key(guid) if "://" in guid else f"{article.source}:{guid}"))
    content = normalise(" ".join(f"{article.title}\n{article.body}".split()))
    digest = hashlib.sha256(content.encode()).hexdigest()[:32]
    keys.append(f"hash:{article.source}:{digest}")
    return keys


def seen_before(article: Article, seen: MutableMapping[str, str]) -> str | None:
    """The id of an earlier article this one duplicates exactly; otherwise record it, None."""
    keys = exact_keys(article)
    for key in keys:
        earlier = seen.get(key)
        if earlier is not None:
            return earlier
    for key in keys:
        seen[key] = article.id
    return None
