"""A destination that is down does not hold up the others on Kafka workers: while the Slack
webhook answers 500, every alert for the JSON-lines route is delivered; once Slack is back,
each of its alerts is delivered once (some together, as a digest of what waited), none is set
aside as dead, and nothing is sent twice."""

from __future__ import annotations

import json
import time
import urllib.request

from monitor.models import Alert
from tests.conftest import free_port
from tests.integration.kafka_support import (
    Decided,
    Deployment,
    TopicTail,
    produce,
    sample_articles,
    undecided,
)
from tests.reliability.support import wait_until
from tests.unit.feeds.served import Reply, ThreadedServer


def raised(d: Deployment) -> dict[str, set[str]]:
    """Alert ids on news.alerts, by route."""
    tail = TopicTail(d.bootstrap, d.topic("news.alerts"))
    try:
        by_route: dict[str, set[str]] = {}
        for _, value in tail.read():
            if value and value != b"{}":  # a tick
                alert = Alert.model_validate_json(value)
                by_route.setdefault(alert.route, set()).add(alert.id)
        return by_route
    finally:
        tail.close()


def deliveries(port: int, sink: str) -> dict[str, float]:
    """monitor_deliveries_total of ``sink`` by outcome, from the worker's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("monitor_deliveries_total{") and f'sink="{sink}"' in line:
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            out[outcome] = float(line.rsplit(" ", 1)[1])
    return out


def test_a_failing_destination_holds_up_no_other_route(deployment: Deployment) -> None:
    d = deployment
    metrics_port = free_port()
    with ThreadedServer({"/hook": Reply(b"upstream exploded", status=500)}) as slack:
        d.extra_env.update(
            {
                "MONITOR_SLACK_WEBHOOK_URL": slack.url("/hook"),
                "MONITOR_METRICS_PORT": str(metrics_port),
                # Enough tries to outlast the outage, 2 s apart at most: waited out in line,
                # each Slack alert would hold the agent for over a minute.
                "MONITOR_DELIVERY_ATTEMPTS": "40",
                "MONITOR_DELIVERY_MAX_DELAY": "2",
            }
        )
        d.start_worker()
        articles = sample_articles()
        produce(
            d, "news.articles", [(a.id.encode(), a.model_dump_json().encode()) for a in articles]
        )

        decided = Decided(d)

        def archived() -> bool:
            """Every article decided, and every archive alert they raised delivered."""
            if undecided(articles, decided()):
                return False
            by_route = raised(d)
            delivered = {str(a["alert_id"]) for a in d.alerts()}
            return bool(by_route.get("desk-slack")) and by_route["archive"] <= delivered

        started = time.monotonic()
        wait_until(archived, 90, "every archive alert delivered", d, every=0.5)
        took = time.monotonic() - started
        failed_posts = len(slack.answered)
        by_route = raised(d)
        print(
            f"{len(by_route['archive'])} archive alerts delivered in {took:.1f}s while Slack "
            f"failed {failed_posts} posts for {len(by_route['desk-slack'])} alerts"
        )
        assert failed_posts >= 1  # Slack was tried, and failing, all along
        assert all(status == 500 for _, status in slack.answered)
        assert deliveries(metrics_port, "slack").get("ok", 0) == 0

        decided.close()
        slack.replies["/hook"] = Reply(b"ok")  # Slack is back

        def settled() -> bool:
            counts = deliveries(metrics_port, "slack")
            done = counts.get("ok", 0) + counts.get("superseded", 0)
            return done >= len(raised(d)["desk-slack"])

        wait_until(settled, 60, "every Slack alert delivered", d, every=0.5)
        expected = len(raised(d)["desk-slack"])
        counts = deliveries(metrics_port, "slack")
        assert counts.get("ok", 0) + counts.get("superseded", 0) == expected, counts
        assert counts.get("error", 0) == 0
        ok_posts = [status for _, status in slack.answered if status == 200]
        assert 1 <= len(ok_posts) <= counts["ok"]
        time.sleep(3)  # nothing more goes out: no repeats
        assert len([s for _, s in slack.answered if s == 200]) == len(ok_posts)
        lines = [json.loads(x) for x in d.jsonl.read_text().splitlines()]
        ids = [str(a["alert_id"]) for a in lines]
        assert len(ids) == len(set(ids))
