"""`monitor run` SIGKILLed mid-run, again and again, and restarted on its SQLite state file, over
a feed server serving about 2000 articles.

Kills land at random moments, and at the worst one: the instant an alert's line reaches the
JSON-lines file, before the delivery ledger has recorded it. Afterwards every article the feeds
served was taken in, every one decided once (placed in a story once, or dropped as a copy),
and no alert is twice in the file (the sink's file is the delivery record)."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from monitor.models import Story
from monitor.state.archive import ArticleArchive
from monitor.state.sqlite import Store
from tests.conftest import REPO, RULES
from tests.integration.kafka_support import corpus_articles, undecided
from tests.reliability.feeds import FeedServer, items_from
from tests.reliability.support import Scenario, jsonl_alerts, seeded

ARTICLES = 2000


def test_monitor_run_sigkilled_and_restarted(tmp_path: Path, scenario: Scenario) -> None:
    rng = seeded(scenario)
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    (rules / "routes.yaml").write_text(
        "routes:\n  - {name: archive, sink: jsonl, min_level: low}\n"
    )
    server = FeedServer(items_from(corpus_articles(ARTICLES), 8)).start()
    feeds = server.feed_list(tmp_path / "feeds.yaml", interval="1h")
    state, jsonl = tmp_path / "state.db", tmp_path / "alerts.jsonl"
    command = [sys.executable, "-m", "monitor.cli", "run", "--once", "--feeds", str(feeds)]
    command += ["--rules", str(rules), "--state", str(state), "--jsonl", str(jsonl)]
    env = {**os.environ, "MONITOR_LOG_FORMAT": "json", "MONITOR_LOG_LEVEL": "warning"}
    log = (tmp_path / "run.log").open("a")

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=log, text=True)

    def committed() -> int:
        """Exact-dedupe keys committed so far (two per article): the run's progress."""
        try:
            db = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=0.2)
            try:
                return int(db.execute("SELECT COUNT(*) FROM t_seen").fetchone()[0])
            finally:
                db.close()
        except sqlite3.Error:
            return 0

    # Kills: at a random moment of start-up and fetching; three times while articles are being
    # processed and committed (at random shares of the work); three times at the worst moment,
    # the instant an alert's line is in the file and its ledger entry not yet committed.
    shares = sorted(rng.uniform(0.1, 0.75) for _ in range(3))
    plan = [("start-up", rng.uniform(0.3, 1.5))]
    plan += [("processing", share) for share in shares] + [("line", 0.0)] * 3
    try:
        for n, (kind, at) in enumerate(plan, 1):
            size = jsonl.stat().st_size if jsonl.exists() else 0
            started = time.monotonic()
            proc = start()
            while proc.poll() is None:
                if kind == "start-up" and time.monotonic() - started >= at:
                    break
                if kind == "processing" and committed() >= at * 2 * ARTICLES:
                    break
                if kind == "line" and jsonl.exists() and jsonl.stat().st_size > size:
                    break
                time.sleep(0.0005 if kind == "line" else 0.01)
            finished = proc.poll() is not None
            if not finished:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            assert not finished, f"run {n} finished before its kill ({kind})"
            scenario.note(
                f"kill {n} ({kind}{f' {at:.2f}' if at else ''}): "
                f"{time.monotonic() - started:.2f}s in, {committed() // 2} articles committed, "
                f"{len(jsonl_alerts(jsonl))} alert lines"
            )
        started = time.monotonic()
        final = subprocess.run(command, cwd=REPO, env=env, capture_output=True, timeout=300)
        assert final.returncode == 0, final.stderr.decode()[-3000:]
        scenario.note(f"the last run, to the end: {time.monotonic() - started:.1f}s")
    finally:
        log.close()
        server.stop()

    store = Store(state)
    try:
        archived = list(ArticleArchive(store.db).articles())
        seen = {str(v).split("|", 1)[0] for v in store.table("seen").values()}
        dead = set(store.table("dead_articles"))
        stories = list(store.models("stories", Story).values())
        ledger = set(store.table("ledger"))
        outbox, dead_alerts = len(store.table("outbox")), len(store.table("dead_alerts"))
    finally:
        store.close()
    alerts = jsonl_alerts(jsonl)
    keys = Counter((str(a["alert_id"]), str(a["route"])) for a in alerts)
    lost = undecided(archived, seen | dead)
    scenario.published = len(archived)
    scenario.decided = len(archived) - len(lost)
    scenario.delivered = len(alerts)
    scenario.duplicates = sum(n - 1 for n in keys.values())
    scenario.lost = len(lost)
    # every item served was taken in (the archive keeps each article as it arrived)
    assert {i.link for i in server.shown()} <= {a.url for a in archived}
    assert not lost and not dead, f"{len(lost)} articles never reached a decision"
    # decided once: each placed article counted in exactly one story, once
    assert sum(s.articles for s in stories) == len(seen), "an article was placed twice"
    assert not [k for k, n in keys.items() if n > 1], "an alert is twice in the file"
    # nothing left behind: every alert raised was delivered (the ledger) and is in the file
    assert outbox == 0 and dead_alerts == 0
    assert {f"{i}|{r}" for i, r in keys} == ledger
    opened = Counter(str(a["story_id"]) for a in alerts if a["kind"] == "opened")
    assert all(n == 1 for n in opened.values()), "a story opened twice"
