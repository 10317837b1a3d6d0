from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.models import Article, RuleHit, Story

T0 = datetime(2021, 12, 14, 12, 0, tzinfo=UTC)


def article(
    title: str,
    body: str = "",
    source: str = "wire",
    url: str | None = None,
    guid: str = "",
    minutes: float = 0,
    reliability: float = 1.0,
) -> Article:
    when = T0 + timedelta(minutes=minutes)
    key = url or guid or title
    return Article(
        id=f"{source}-{abs(hash((source, key))) % 10**12}",
        source=source,
        url=url or f"https://{source}.example/{abs(hash(title)) % 10**8}",
        guid=guid,
        title=title,
        body=body,
        published=when,
        fetched_at=when,
        reliability=reliability,
    )


def story_of(*hits: RuleHit, outlets: int = 1) -> Story:
    """A one-id story carrying ``hits``, seen by ``outlets`` distinct outlets."""
    return Story(
        id="s",
        title="t",
        url="u",
        first_seen=T0,
        last_seen=T0,
        sources=tuple(f"o{i}" for i in range(outlets)),
        hits=hits,
    )
