"""Poison on every topic a worker consumes, and hostile text in valid articles.

Each poison record (not JSON, the wrong schema, a value near the broker's size limit, an empty
value, a null value, a null key) is dead-lettered to news.deadletter with its error, once, and
counted (monitor_dead_letters_total); the stream behind it goes on: every good article is
decided and every alert delivered, once. Valid articles carrying hostile text (markup and
mention syntax, control and bidi characters, a huge body, a null key) are decided like any
other; one with a lone surrogate is either decided or dead-lettered, never lost."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime

from monitor.models import Article
from tests.conftest import free_port
from tests.integration.kafka_support import (
    Decided,
    Deployment,
    corpus_articles,
    produce,
    read_topic,
    sample_articles,
    undecided,
)
from tests.reliability.support import (
    Scenario,
    check_kafka_invariants,
    settle_deliveries,
    wait_until,
)

HUGE = 900_000  # bytes: under the broker's default 1 MiB message limit

# Per topic: the wrong schema for that topic (valid JSON, not its record).
WRONG_SCHEMA = {
    "news.articles": b'{"id": "x"}',
    "news.candidates": b'{"article": {"id": 1}}',
    "news.stories": b"[1, 2, 3]",
    "news.alerts": b'{"alert": "no"}',
}
STAGE = {
    "news.articles": "ingest",
    "news.candidates": "cluster",
    "news.stories": "alerting",
    "news.alerts": "deliver",
}


def poison(topic: str) -> list[tuple[bytes | None, bytes | None]]:
    return [
        (b"junk", b"\xff\xfe not json {{{"),
        (b"schema", WRONG_SCHEMA[topic]),
        (b"huge", b'{"junk": "' + b"x" * HUGE + b'"}'),
        (b"empty", b""),
        (b"null-value", None),
        (None, b"null key, not json"),
    ]


def hostile(now: datetime) -> list[Article]:
    """Valid articles whose text is hostile; their titles match the seed story's rules, so they
    alert and their text reaches the sinks."""
    base = "Putin warns of military-technical measures in response to NATO"
    titles = [
        f"<!channel> <@U123> [red]{base}[/red] <script>alert(1)</script> *bold* `code`",
        f"\x1b[31m{base}\x1b[0m \x00 \u2028 \u202eTXET\u202c \u200b\ufeff \x85 end",
        f"{base} " + "\U0001f4a3" * 200 + " " + "A" * 5000,
    ]
    out = [
        Article(
            id=f"hostile-{n}",
            source="hostile-wire",
            url=f"https://hostile.example/{n}",
            title=title,
            body="He said Russia would respond militarily and technically. " * 3,
            published=now,
            fetched_at=now,
        )
        for n, title in enumerate(titles)
    ]
    huge_body = "Troops massed near the border as talks stalled. " * 14_000  # ~700 KB
    out.append(
        Article(
            id="hostile-huge",
            source="hostile-wire",
            url="https://hostile.example/huge",
            title=f"{base}: the full transcript",
            body=huge_body,
            published=now,
            fetched_at=now,
        )
    )
    return out


def dead_letter_counts(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("monitor_dead_letters_total{"):
            labels, value = line.rsplit(" ", 1)
            stage = labels.split('stage="', 1)[1].split('"', 1)[0]
            if float(value):
                out[stage] = float(value)
    return out


def test_poison_on_every_topic_and_hostile_text(deployment: Deployment, scenario: Scenario) -> None:
    d = deployment
    port = free_port()
    d.extra_env["MONITOR_METRICS_PORT"] = str(port)
    d.start_worker("w1")
    now = datetime.now(UTC)
    sent = 0
    for topic in STAGE:
        produce(d, topic, poison(topic))  # type: ignore[arg-type]  # null keys and values
        sent += len(poison(topic))
    bad = hostile(now)
    surrogate = Article(
        id="hostile-surrogate",
        source="hostile-wire",
        url="https://hostile.example/surrogate",
        title="Putin warns of military-technical measures PLACEHOLDER",
        published=now,
        fetched_at=now,
    )
    raw_surrogate = surrogate.model_dump_json().replace("PLACEHOLDER", "\\ud800").encode()
    good = sample_articles() + corpus_articles(300)
    records: list[tuple[bytes | None, bytes]] = [(None, bad[0].model_dump_json().encode())]
    records += [(a.id.encode(), a.model_dump_json().encode()) for a in bad[1:]]
    records += [(surrogate.id.encode(), raw_surrogate)]
    records += [(a.id.encode(), a.model_dump_json().encode()) for a in good]
    produce(d, "news.articles", records)  # type: ignore[arg-type]
    published = bad + good
    decided = Decided(d)
    try:
        # 90 s: before the tagger's fix the huge article alone held the worker 60 s
        took = wait_until(lambda: not undecided(published, decided()), 90, "every article", d)
        scenario.note(f"every good article decided after {took:.0f}s")
        dead: list[dict[str, object]] = []

        def all_dead() -> bool:
            dead[:] = [json.loads(v) for _, v in read_topic(d, "news.deadletter")]
            surrogate_decided = surrogate.id in decided()
            return len(dead) >= sent + (0 if surrogate_decided else 1)

        took = wait_until(all_dead, 120, f"{sent} dead letters", d, every=2.0)
        scenario.note(f"every dead letter {took:.0f}s later")
        settle_deliveries(d, "archive")
        surrogate_decided = surrogate.id in decided()
    finally:
        decided.close()
    alerts = check_kafka_invariants(d, published, decided.ids, scenario)
    assert all(p.poll() is None for p in d.workers), "a worker died on poison"

    # every poison record dead-lettered once, with its topic, stage and error
    poisoned = [x for x in dead if x["key"] != surrogate.id]
    by_topic = {t: [x for x in poisoned if x["topic"] == d.topic(t)] for t in STAGE}
    for topic, stage in STAGE.items():
        got = by_topic[topic]
        assert len(got) == len(poison(topic)), (topic, got)
        assert {x["stage"] for x in got} == {stage}
        assert all(x["error"] for x in got)
        assert len({(x["partition"], x["offset"]) for x in got}) == len(got)  # once each
    huge = [x for x in poisoned if x["key"] == "huge"]
    assert all(len(str(x["value"])) <= 100_000 for x in huge)  # kept, truncated
    counted = dead_letter_counts(port)
    assert counted == {
        s: float(len(poison(t))) + (0 if surrogate_decided or s != "ingest" else 1)
        for t, s in STAGE.items()
    }, counted

    # hostile text: decided (the same story: they tell the same news), alerted under the title
    # of whichever reached the worker first (they sit on different partitions, so which one
    # that is varies from run to run), one parseable line per alert (d.alerts() parsed them)
    assert {a.id for a in bad} <= decided.ids
    started = {f"s-{a.id}": a for a in bad}
    story = [a for a in alerts if a["story_id"] in started or a["story_id"] == f"s-{surrogate.id}"]
    assert story, "the hostile story did not alert"
    for a in story:
        assert "hostile-wire" in a["sources"]  # type: ignore[operator]
        if (first := started.get(str(a["story_id"]))) is not None:
            assert a["title"] == first.title, "the hostile title did not reach the sink whole"
    scenario.note(
        f"{sent} poison records on 4 topics -> {len(poisoned)} dead letters, counted {counted}; "
        f"lone surrogate: {'decided' if surrogate_decided else 'dead-lettered'}; "
        f"the hostile story opened by {str(story[0]['story_id']).removeprefix('s-')}"
    )
