"""Ingest: per article, exact dedupe, text clean-up, tagging and the near-duplicate signature.

Stateless apart from the exact-dedupe key table, so it scales out over partitions.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from monitor.models import Article, TaggedArticle
from monitor.pipeline.cleanup import strip_boilerplate
from monitor.pipeline.dedupe import seen_before
from monitor.pipeline.signature import signature
from monitor.pipeline.tagging import Tagger
from monitor.pipeline.text import tokens


def ingest(
    article: Article, seen: MutableMapping[str, str], tagger: Tagger, rules_version: str = ""
) -> TaggedArticle | None:
    """None when the article was seen before; otherwise the article cleaned, tagged and signed."""
    if seen_before(article, seen) is not None:
        return None
    return tag_article(article, tagger, rules_version)


def tag_article(article: Article, tagger: Tagger, rules_version: str = "") -> TaggedArticle:
    body = strip_boilerplate(article.body)
    if body != article.body:
        article = article.model_copy(update={"body": body})
    # Stemmed in the article's language: the tagger scans it with that language's rules only.
    lang = article.language
    title_toks, body_toks = tokens(article.title, lang), tokens(body, lang)
    matches = tagger.tag(
        article.title,
        body,
        (title_toks, body_toks),
        language=lang,
        source=article.source,
        labels=article.labels,
    )
    sig = signature([t.stem for t in title_toks], [t.stem for t in body_toks])
    # The body has done its work (matches with their snippets, the signature); later stages
    # need none of it, and it is most of every record they would otherwise carry.
    return TaggedArticle(
        article=article.model_copy(update={"body": ""}),
        matches=tuple(matches),
        signature=sig,
        rules_version=rules_version,
    )
