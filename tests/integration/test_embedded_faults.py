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
    kept = dead[victims[0]]
    assert Article.model_validate(kept["article"]).id == victims[0]
    assert (kept["stage"], kept["error"]) == ("process", "RuntimeError: injected fault")
    # its exact-dedupe keys were rolled back with the rest of its changes: a later poll of the
    # same article is not mistaken for a duplicate, so it is not lost
    assert not any(v.startswith(victims[0]) for v in store.table("seen").values())
    stories = store.models("stories", Story)
    assert len(stories) >= 30  # the other articles went on
    assert any("militarily and technically" in a.title for a in sink.alerts)  # other copies
    store.close()


async def test_a_destination_being_retried_holds_up_only_its_own_route(tmp_path: Path) -> None:
    """Email's server refuses connections: its alerts are retried (then set aside), while the
    JSON-lines route delivers at once."""
    import asyncio
    import json
    import shutil
    import socket
    import time

    from monitor.models import DeadAlert
    from monitor.rules.ruleset import load_ruleset
    from tests.conftest import RULES

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    (rules / "routes.yaml").write_text(
        "routes:\n"
        "  - {name: desk-email, sink: email, min_level: high}\n"
        "  - {name: archive, sink: jsonl, min_level: high}\n"
    )
    jsonl = tmp_path / "alerts.jsonl"
    settings = Settings(
        state=tmp_path / "s.db",
        jsonl=jsonl,
        smtp_host="127.0.0.1",
        smtp_port=closed_port,
        smtp_security="none",
        email_from="monitor@example.org",
        email_to="desk@example.org",
        delivery_attempts=2,  # about a second of backoff per alert, then set aside
    )
    runtime = EmbeddedRuntime(settings, load_ruleset(rules), load_feeds(sample_feeds_path()))
    started = time.monotonic()
    run = asyncio.create_task(runtime.run(once=True))
    while not (jsonl.exists() and len(jsonl.read_text().splitlines()) >= 2):
        assert time.monotonic() - started < 20, "the JSON-lines alerts never arrived"
        await asyncio.sleep(0.05)
    json_took = time.monotonic() - started
    assert not run.done(), "email was not being retried"
    report = await asyncio.wait_for(run, 60)
    # Email's backoff is sleep, the same on any machine; the JSON lines' time is CPU, longer on
    # a loaded one: compare the two, not the JSON lines with a fixed bound.
    total = time.monotonic() - started
    print(f"JSON lines after {json_took:.1f}s; email's retries over after {total:.1f}s")
    assert json_took < total / 2, "the JSON-lines route waited for email's retries"
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert report.failed == len(lines) >= 2  # every high alert: once in JSON lines, none by email
    store = Store(tmp_path / "s.db")
    dead = list(store.models("dead_alerts", DeadAlert).values())
    store.close()
    assert sorted((d.alert.story_id, d.alert.kind, d.alert.level.name) for d in dead) == sorted(
        (line["story_id"], line["kind"], line["level"]) for line in lines
    )
    assert {d.alert.route for d in dead} == {"desk-email"}
