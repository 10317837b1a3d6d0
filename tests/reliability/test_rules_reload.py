"""Rule reloads that fail half-way, under a running `monitor run` (articles flowing through the
real process and delivery loops, the directory watcher on):

1. an edit that leaves one file valid (a new rule) and another broken: nothing changes, the
   valid file's rule included;
2. a valid edit whose swap raises part-way (after the pipeline took the new rules, before the
   routes did): the rules in force stay, everywhere, not a mix of old and new;
3. the same edit once the fault is gone: in force from the next article.

Every article reaches a decision and every alert is delivered once, with the version of the
rules that decided it. And a worker given a published rule set with a broken file (written to
news.rules by something that skipped `monitor rules publish`'s check) keeps its rules."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.metrics import Metrics
from monitor.models import Article
from monitor.rules.reload import PublishedRules, RuleReloader, on_published
from monitor.rules.ruleset import RuleSet, load_ruleset, rule_files
from monitor.runtime import embedded
from monitor.runtime.embedded import EmbeddedRuntime
from monitor.settings import Settings
from monitor.state.sqlite import Store
from tests.conftest import RULES, until
from tests.integration.kafka_support import sample_articles, undecided
from tests.reliability.support import Scenario

ZEPPELIN_RULE = (
    "rules:\n  - id: zeppelin-sighting\n    match:\n      any: [zeppelin]\n    weight: 70\n"
)
BROKEN = "rules:\n  - id: escalation\n    weight: [\n"  # not even YAML


def zeppelin(n: int) -> Article:
    now = datetime.now(UTC)
    return Article(
        id=f"zeppelin-{n}",
        source="harbour-news",
        url=f"https://harbour.example/zeppelin-{n}",
        title=f"Zeppelin number {n} sighted over the harbour, residents alarmed ({n})",
        body=f"Witnesses saw airship {n} drift over the docks.",
        published=now,
        fetched_at=now,
    )


async def test_reloads_failing_half_way_change_nothing(tmp_path: Path, scenario: Scenario) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    (rules / "routes.yaml").write_text(
        "routes:\n  - {name: archive, sink: jsonl, min_level: low}\n"
    )
    jsonl = tmp_path / "alerts.jsonl"
    settings = Settings(
        state=tmp_path / "s.db", rules=rules, jsonl=jsonl, rules_reload_interval=0.1
    )
    first = load_ruleset(rules)
    runtime = EmbeddedRuntime(settings, first, [], Metrics())
    old_routes = dict(runtime.dispatcher.routes)

    # The articles come in batches when the test says so, through the runtime's own queue
    # (in place of the feed poller), then the real process and delivery loops take over.
    batches: asyncio.Queue[list[Article] | None] = asyncio.Queue()

    async def poll(articles: asyncio.Queue[object], once: bool) -> None:
        try:
            while (batch := await batches.get()) is not None:
                for a in batch:
                    await articles.put(a)
        finally:
            await articles.put(embedded._DONE)

    runtime._poll_loop = poll  # type: ignore[method-assign]
    offers: list[bool] = []
    offer = runtime.reloader.offer

    def counted(load: Callable[[], RuleSet], source: str) -> bool:
        offers.append(offer(load, source))
        return offers[-1]

    runtime.reloader.offer = counted  # type: ignore[method-assign]
    run = asyncio.create_task(runtime.run())
    published: list[Article] = []

    async def send(batch: list[Article]) -> None:
        published.extend(batch)
        await batches.put(batch)
        await until(lambda: runtime.pipeline.counts.articles == len(published), 30, "articles")

    def in_force() -> tuple[str, str, str, list[str]]:
        return (
            runtime.reloader.current.version,
            runtime.pipeline.ruleset.version,
            ",".join(sorted(runtime.dispatcher.routes)),
            sorted(runtime.sinks),
        )

    before = in_force()
    try:
        await send(sample_articles())

        # 1. one file valid (a new rule), another broken: rejected whole
        (rules / "zeppelins.yaml").write_text(ZEPPELIN_RULE)
        escalation = (rules / "escalation.yaml").read_text()
        (rules / "escalation.yaml").write_text(BROKEN)
        await until(lambda: len(offers) == 1, 10, "the reload attempt")
        assert offers == [False] and in_force() == before
        await send([zeppelin(1)])

        # 2. the files fixed, but the swap fails half-way: the pipeline has switched, then
        # setting the routes raises (once)
        failures: list[str] = []
        set_routes = runtime.dispatcher.set_routes

        def failing(routes: Any) -> None:
            if not failures:
                failures.append("injected")
                raise RuntimeError("injected fault while switching routes")
            set_routes(routes)

        runtime.dispatcher.set_routes = failing  # type: ignore[method-assign]
        (rules / "escalation.yaml").write_text(escalation)
        await until(lambda: len(offers) == 2, 10, "the second reload attempt")
        assert offers[1] is False and failures == ["injected"]
        assert in_force() == before, "a reload that failed part-way left new rules in force"
        assert runtime.dispatcher.routes == old_routes
        await send([zeppelin(2)])

        # 3. the fault gone, the same edit again (touched): in force from the next article
        (rules / "zeppelins.yaml").write_text(ZEPPELIN_RULE + "\n")
        await until(lambda: len(offers) == 3, 10, "the third reload attempt")
        assert offers[2] is True
        second = runtime.pipeline.ruleset.version
        assert second != first.version == before[0]
        await send([zeppelin(3)])
    finally:
        await batches.put(None)
        await asyncio.wait_for(run, 60)

    alerts = [json.loads(line) for line in jsonl.read_text().splitlines()]
    zeppelins = [a for a in alerts if "Zeppelin" in str(a["title"])]
    assert [a["rules_version"] for a in zeppelins] == [second], zeppelins
    assert "zeppelin-3" in str(zeppelins[0]["story_id"])
    assert {a["rules_version"] for a in alerts if a not in zeppelins} == {first.version}
    keys = [(a["alert_id"], a["route"]) for a in alerts]
    # every article decided: placed (its dedupe keys committed) or dropped as a copy of one
    store = Store(settings.state)
    try:
        seen = {str(v).split("|", 1)[0] for v in store.table("seen").values()}
        dead = set(store.table("dead_articles"))
    finally:
        store.close()
    lost = undecided(published, seen | dead)
    scenario.published = len({a.id for a in published})
    scenario.decided = scenario.published - len(lost)
    scenario.delivered = len(alerts)
    scenario.duplicates = len(keys) - len(set(keys))
    scenario.lost = len(lost)
    assert not lost and not dead
    assert len(keys) == len(set(keys))
    scenario.note(
        f"reloads: broken file -> rejected; swap raising half-way -> old rules kept "
        f"({first.version}); fixed -> {second} in force; zeppelin alerts: {len(zeppelins)} (of 3)"
    )


def test_a_published_rule_set_with_a_broken_file_changes_nothing(tmp_path: Path) -> None:
    """news.rules is written by `monitor rules publish`, which refuses invalid rules; a record
    written some other way (an older tool, by hand) must still not break a worker."""
    ruleset = load_ruleset(RULES)
    applied: list[str] = []
    reloader = RuleReloader(ruleset, lambda r: applied.append(r.version), Metrics())
    files = {p.name: p.read_text() for p in rule_files(RULES)}
    files["zeppelins.yaml"] = ZEPPELIN_RULE
    files["escalation.yaml"] = BROKEN
    now = datetime.now(UTC)
    record = PublishedRules(
        version="not-checked",
        files=files,
        published_at=now,
        effective_at=now - timedelta(seconds=1),
    )
    found = on_published(reloader, tmp_path, record.model_dump_json().encode())
    assert found is not None
    wait, switch = found
    assert wait == 0
    switch()
    assert applied == [] and reloader.current is ruleset
    # a record that is not even a rule set
    assert on_published(reloader, tmp_path, b"\xff not json") is None
    assert reloader.current is ruleset
