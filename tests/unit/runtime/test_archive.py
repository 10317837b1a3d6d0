"""The embedded runtime keeps every article it reads, body included, for backtests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.feeds.sources import load_feeds, sample_feeds_path
from monitor.rules.ruleset import RuleSet
from monitor.runtime.embedded import EmbeddedRuntime
from monitor.settings import Settings
from monitor.sinks.testing import ListSink
from monitor.state.archive import ArticleArchive
from monitor.state.sqlite import Store
from tests.unit.pipeline.helpers import article


async def test_a_run_archives_every_article_with_its_body(tmp_path: Path, ruleset: RuleSet) -> None:
    runtime = EmbeddedRuntime(
        Settings(state=tmp_path / "s.db"),
        ruleset,
        load_feeds(sample_feeds_path()),
        None,
        {"archive": ListSink()},
    )
    await runtime.run(once=True)
    store = Store(tmp_path / "s.db")
    kept = list(ArticleArchive(store.db).articles())
    store.close()
    assert len(kept) == runtime.pipeline.counts.articles > 0
    assert any("militarily and technically" in a.body for a in kept)
    assert [a.published for a in kept] == sorted(a.published for a in kept)


def test_pruning_goes_by_arrival_and_reading_by_publication(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    archive = ArticleArchive(store.db)
    now = datetime.now(UTC)
    old_news = article("old news").model_copy(update={"fetched_at": now})
    stale = article("stale", minutes=5).model_copy(update={"fetched_at": now - timedelta(days=40)})
    archive.add(old_news)
    archive.add(stale)
    archive.add(old_news.model_copy(update={"title": "changed"}))  # first copy wins
    assert archive.prune(now - timedelta(days=30)) == 1
    assert [a.title for a in archive.articles()] == ["old news"]
    assert list(archive.articles(since=old_news.published + timedelta(seconds=1))) == []
    store.close()
