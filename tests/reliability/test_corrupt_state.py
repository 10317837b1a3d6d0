"""The state file of `monitor run` damaged or missing at start.

* missing: a first start (the run creates it);
* not a database at all (its header overwritten): `monitor run` exits 2 naming the file and
  `monitor state rebuild`; the rebuild can read nothing, so the next run starts afresh and
  alerts again every story still in the feeds: to email or Slack they would go a second time
  (counted here with a fresh JSON-lines file); the JSON-lines sink checks its own file and
  writes none twice;
* damaged pages inside (the exact-dedupe and feed tables): the run fails at the first read of
  them, exit 2 with the same message, not a traceback; `monitor state check` lists the damage;
  `monitor state rebuild` keeps every table that reads whole (the ledger among them) and names
  what is lost; the next run re-reads every feed, takes every article as new, raises its
  alerts again, and the salvaged ledger drops every one: nothing is sent twice.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from monitor.state.archive import ArticleArchive
from monitor.state.sqlite import Store
from tests.conftest import RULES
from tests.integration.kafka_support import undecided
from tests.integration.test_samples_cli import monitor
from tests.reliability.support import Scenario, jsonl_alerts

PAGE = 4096


def overwrite_pages(path: Path, tables: list[str]) -> list[str]:
    """Overwrite the root pages of ``tables`` (and of their key indexes) with garbage."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the file itself
    size = db.execute("PRAGMA page_size").fetchone()[0]
    roots = {n: r for n, r in db.execute("SELECT name, rootpage FROM sqlite_master")}
    db.close()
    hit = [
        n for n in roots if any(n == t or n.startswith(f"sqlite_autoindex_{t}_") for t in tables)
    ]
    data = bytearray(path.read_bytes())
    for name in hit:
        start = (roots[name] - 1) * size
        data[start : start + size] = b"\xee" * size
    path.write_bytes(bytes(data))
    return hit


def lines(path: Path) -> int:
    return len(jsonl_alerts(path))


def test_state_file_damaged_or_missing(tmp_path: Path, scenario: Scenario) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    (rules / "routes.yaml").write_text(
        "routes:\n  - {name: archive, sink: jsonl, min_level: low}\n"
    )
    state, sent = tmp_path / "state.db", tmp_path / "alerts.jsonl"

    def run(state_file: Path, jsonl: Path) -> tuple[int, str]:
        done = monitor(
            "run",
            "--once",
            "--rules",
            str(rules),
            "--state",
            str(state_file),
            "--jsonl",
            str(jsonl),
        )
        return done.returncode, done.stderr

    # missing: a first start
    assert not state.exists()
    code, _ = run(state, sent)
    assert code == 0 and state.exists()
    alerts = lines(sent)
    assert alerts > 0
    good = tmp_path / "good.db"
    shutil.copy(state, good)

    # 1. not a database any more
    wrecked = tmp_path / "wrecked.db"
    shutil.copy(good, wrecked)
    with wrecked.open("r+b") as f:
        f.write(b"\x00garbage" * (PAGE // 8))
    code, stderr = run(wrecked, sent)
    assert code == 2, stderr
    assert str(wrecked) in stderr and "monitor state rebuild --state" in stderr, stderr
    assert "Traceback" not in stderr
    check = monitor("state", "check", "--state", str(wrecked))
    assert check.returncode == 1 and "monitor state rebuild" in check.stderr
    rebuilt = monitor("state", "rebuild", "--state", str(wrecked))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "nothing could be read" in rebuilt.stdout
    assert list(tmp_path.glob("wrecked.db.broken-*"))  # kept, moved aside
    elsewhere = tmp_path / "fresh-destination.jsonl"  # what email or Slack would get
    code, stderr = run(wrecked, elsewhere)
    assert code == 0, stderr
    resent = lines(elsewhere)
    code, stderr = run(tmp_path / "wrecked-again.db", sent)  # the same, to the JSON-lines file
    assert code == 0 and lines(sent) == alerts, "the JSON-lines sink wrote an alert twice"
    scenario.note(
        f"state file unreadable: exit 2 naming it and the rebuild; rebuilt from nothing, the "
        f"next run sent {resent} of {alerts} alerts again (to a destination that cannot check, "
        f"as email or Slack); the JSON-lines sink, checking its own file, none"
    )

    # 2. damaged pages inside: the dedupe keys and the feed state
    hit = overwrite_pages(state, ["t_seen", "t_feeds"])
    code, stderr = run(state, sent)
    assert code == 2, stderr
    assert "the state file is damaged" in stderr and str(state) in stderr, stderr
    assert "Traceback" not in stderr
    check = monitor("state", "check", "--state", str(state))
    assert check.returncode == 1 and check.stdout.strip(), check
    rebuilt = monitor("state", "rebuild", "--state", str(state))
    assert rebuilt.returncode == 0, rebuilt.stderr
    out = rebuilt.stdout
    assert "LOST t_seen" in out and "LOST t_feeds" in out and "t_ledger (" in out, out
    assert "every feed is fetched afresh" in out
    assert monitor("state", "check", "--state", str(state)).returncode == 0
    elsewhere = tmp_path / "after-rebuild.jsonl"
    code, stderr = run(state, elsewhere)
    assert code == 0, stderr
    resent = lines(elsewhere)
    assert resent == 0, f"{resent} alerts sent again despite the salvaged ledger"

    store = Store(state)
    try:
        archived = list(ArticleArchive(store.db).articles())
        seen = {str(v).split("|", 1)[0] for v in store.table("seen").values()}
    finally:
        store.close()
    lost = undecided(archived, seen)
    delivered = jsonl_alerts(sent)
    keys = [(a["alert_id"], a["route"]) for a in delivered]
    scenario.published = len(archived)
    scenario.decided = len(archived) - len(lost)
    scenario.delivered = len(delivered)
    scenario.duplicates = len(keys) - len(set(keys))
    scenario.lost = len(lost)
    assert not lost and scenario.duplicates == 0
    scenario.note(
        f"pages of {', '.join(hit)} overwritten: exit 2 naming the file; rebuild kept "
        f"{out.count(' rows)')} tables, lost t_seen and t_feeds; the next run re-read every "
        "feed, re-raised its alerts, sent none again (ledger kept)"
    )
