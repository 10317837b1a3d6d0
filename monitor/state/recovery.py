"""Checking the runtimes' state, and starting again from a damaged one (``monitor state``).

* ``monitor run`` keeps everything in one SQLite file. ``check`` runs SQLite's own
  ``PRAGMA integrity_check``. ``rebuild`` moves the file aside (with its ``-wal``/``-shm``) and
  writes a fresh one holding every table that can still be read whole; what the lost tables
  held is lost, and :data:`LOSSES` says what that costs.
* ``monitor worker`` keeps RocksDB tables under its data directory, each a local copy of a
  compacted changelog topic in Kafka. ``check`` opens each table (and reads it through);
  ``rebuild`` moves the directory aside: the next start recovers every table from its
  changelog, and the consumer group's committed offsets are in Kafka, so nothing is lost and
  nothing is processed or sent again. It takes as long as reading the changelogs.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from monitor.errors import StateError
from monitor.state.lock import holder

# What losing each table of the state file costs (tables are "t_" + the runtime's name).
LOSSES: dict[str, str] = {
    "t_ledger": "the record of alerts sent: an alert raised again (as happens when the "
    "dedupe or thread tables are lost too) is sent again, by email or to Slack (the JSON-lines "
    "sink checks its own file)",
    "t_outbox": "alerts decided but not yet sent: lost",
    "t_held": "alerts held for a group window, quiet hours or a rate limit: lost",
    "t_dead_alerts": "undelivered alerts kept for `monitor alerts resend`: lost",
    "t_silences": "silences: add them again (`monitor silence add`)",
    "t_silenced_alerts": "the record of alerts silences kept back",
    "t_threads": "each story's alert history: stories still in the feeds alert again from the "
    "start",
    "t_seen": "exact-duplicate keys: articles still in the feeds count as new again",
    "t_signatures": "near-duplicate signatures: new articles start new stories",
    "t_stories": "open stories: new articles start new stories",
    "t_spikes": "spike rules' baselines: relearnt",
    "t_buckets": "rate-limit counts: they start afresh",
    "t_slack_threads": "Slack threads: updates of earlier stories start new threads",
    "t_feeds": "feed state (ETags, schedules): every feed is fetched afresh",
    "t_fulltext_pages": "article pages already fetched: fetched once more",
    "t_dead_articles": "articles a stage failed on, kept for `monitor articles replay`: lost",
    "t_replay_articles": "articles queued by `monitor articles replay`, not yet processed: lost",
    "archive": "the article archive that `monitor rules backtest --input state:` replays",
}


def _aside(path: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.broken-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.broken-{stamp}-{n}")
    return target


# --- the state file of `monitor run` -----------------------------------------------------------


def damaged_state(path: Path, error: object) -> str:
    """The message for a state file SQLite cannot read."""
    return (
        f"{path}: the state file is damaged ({error}). `monitor state check --state {path}` "
        f"lists the damage; `monitor state rebuild --state {path}` moves the file aside and "
        "starts a fresh one with every table that can still be read (it says what is lost)"
    )


def check_state(path: Path) -> list[str]:
    """SQLite's integrity check of the state file: the problems found, none if it is sound."""
    if not path.exists():
        raise StateError(f"{path}: no such state file")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = db.execute("PRAGMA integrity_check").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    problems = [str(r[0]) for r in rows]
    return [] if problems == ["ok"] else problems


@dataclass
class Salvage:
    moved_to: Path
    kept: dict[str, int] = field(default_factory=dict)  # table -> rows copied
    lost: dict[str, str] = field(default_factory=dict)  # table -> why it could not be read


def rebuild_state(path: Path) -> Salvage:
    """Move the state file aside and write a fresh one at ``path`` from every table of it that
    reads whole (a table that fails part-way is left out whole: half a ledger is worse than
    a known loss). Stop ``monitor run`` first."""
    if not path.exists():
        raise StateError(f"{path}: no such state file")
    running = holder(path)
    if running is not None:
        raise StateError(f"{running} is running on {path}: stop it first")
    moved = _aside(path)
    for suffix in ("", "-wal", "-shm"):  # the WAL holds committed work not yet in the file
        part = path.with_name(path.name + suffix)
        if part.exists():
            part.rename(moved.with_name(moved.name + suffix))
    salvage = Salvage(moved)
    try:
        old = sqlite3.connect(f"file:{moved}?mode=ro", uri=True)
        schema = old.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL"
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        salvage.lost["(every table)"] = str(exc)
        return salvage
    new = sqlite3.connect(str(path))
    try:
        for kind, name, sql in schema:
            if kind != "table" or name.startswith("sqlite_"):
                continue
            try:
                rows = old.execute(f'SELECT * FROM "{name}"').fetchall()
                new.execute(sql)
                if rows:
                    marks = ",".join("?" * len(rows[0]))
                    # OR IGNORE: a damaged key index can have let a key in twice
                    new.executemany(f'INSERT OR IGNORE INTO "{name}" VALUES ({marks})', rows)
            except sqlite3.DatabaseError as exc:
                salvage.lost[name] = str(exc)
                new.execute(f'DROP TABLE IF EXISTS "{name}"')  # the runtime makes it anew
                continue
            salvage.kept[name] = len(rows)
        for kind, name, sql in schema:
            if kind == "index" and not name.startswith("sqlite_"):
                with contextlib.suppress(sqlite3.DatabaseError):  # its table was lost
                    new.execute(sql)
        new.commit()
    finally:
        new.close()
        old.close()
    return salvage


# --- the tables of `monitor worker` ------------------------------------------------------------


def table_dirs(data_dir: Path) -> list[Path]:
    """The worker's RocksDB tables (Faust: <data dir>/v<N>/tables/<table>-<partition>.db)."""
    return sorted(data_dir.glob("v*/tables/*.db"))


def check_tables(data_dir: Path, read_all: bool = False) -> dict[Path, str]:
    """The tables that cannot be opened (or, with ``read_all``, read through): path -> error.
    Read-only: safe beside a running worker."""
    from rocksdict import AccessType, Rdict

    problems: dict[Path, str] = {}
    for path in table_dirs(data_dir):
        try:
            db = Rdict(str(path), access_type=AccessType.read_only())
            try:
                if read_all:
                    for _ in db.items():
                        pass
            finally:
                db.close()
        except Exception as exc:  # rocksdict raises plain Exception("Corruption: ...")
            problems[path] = " ".join(str(exc).split())
    return problems


def damaged_tables(data_dir: Path, problems: dict[Path, str]) -> str:
    """The message for table directories RocksDB cannot open."""
    where = "; ".join(f"{p}: {e[:300]}" for p, e in problems.items())
    return (
        f"the worker's tables in {data_dir} are damaged ({where}). They are copies of their "
        f"changelog topics in Kafka: `monitor state rebuild --data-dir {data_dir}` moves the "
        "directory aside and the next start rebuilds them from Kafka, losing nothing"
    )


def worker_holding(data_dir: Path) -> Path | None:
    """A table a running worker has open (RocksDB's LOCK file is locked), if any."""
    for path in table_dirs(data_dir):
        lock = path / "LOCK"
        if not lock.exists():
            continue
        with lock.open("rb+") as f:
            try:
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return path
            fcntl.lockf(f, fcntl.LOCK_UN)
    return None


def rebuild_tables(data_dir: Path) -> Path:
    """Move the worker's data directory aside (returned); refuses while a worker runs on it."""
    if not data_dir.exists():
        raise StateError(f"{data_dir}: no such directory")
    held = worker_holding(data_dir)
    if held is not None:
        raise StateError(f"a worker is running on {data_dir} (it holds {held}): stop it first")
    target = _aside(data_dir)
    shutil.move(str(data_dir), str(target))
    return target
