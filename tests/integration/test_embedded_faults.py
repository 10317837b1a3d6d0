"""The embedded runtime when an article breaks a stage: that article is kept aside, nothing it
half-changed is committed, and the stream carries on."""

from __future__ import annotations

from pathlib import Path

from monitor.feeds.sources import load_feeds, sample_feeds_path
from monitor.models import Article, Story
from monitor.rules.ruleset import RuleSet
from monitor.runtime.embedded import EmbeddedRuntime
from monitor.settings import Settings
from monitor.sinks.testing import ListSink
from monitor.state.sqlite import Store


async def test_a_failing_article_is_set_aside_and_the_rest_go_on(
    tmp_path: Path, ruleset: RuleSet
) -> None:
    sink = ListSink()
    runtime = EmbeddedRuntime(
        Settings(state=tmp_path / "s.db"),
        ruleset,
        load_feeds(sample_feeds_path()),
        None,
        {"archive": sink},
    )
    real_cluster = runtime.pipeline.cluster
    victims: list[str] = []

    def cluster(tagged):  # type: ignore[no-untyped-def]
        if "militarily and technically" in tagged.article.title and not victims:
            victims.append(tagged.article.id)
            raise RuntimeError("injected fault")
        return real_cluster(tagged)

    runtime.pipeline.cluster = cluster  # type: ignore[method-assign]
    await runtime.run(once=True)

    store = Store(tmp_path / "s.db")
    dead = store.table("dead_articles")
    assert list(dead) == victims
    assert Article.model_validate(dead[victims[0]]).id == victims[0]
    # its exact-dedupe keys were rolled back with the rest of its changes: a later poll of the
    # same article is not mistaken for a duplicate, so it is not lost
    assert not any(v.startswith(victims[0]) for v in store.table("seen").values())
    stories = store.models("stories", Story)
    assert len(stories) >= 30  # the other articles went on
    assert any("militarily and technically" in a.title for a in sink.alerts)  # other copies
    store.close()
