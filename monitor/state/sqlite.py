"""One SQLite file holding named key -> JSON tables, each seen as a ``MutableMapping``.

Pipeline stages take plain mappings as their state, so the embedded runtime hands them these and
the Kafka runtime hands them Faust tables: the stage code is the same.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from monitor.errors import StateError

SCHEMA_VERSION = 1
V = TypeVar("V")
M = TypeVar("M", bound=BaseModel)


class Store:
    """The state file. Writes go into one open transaction that :meth:`commit` ends: the
    runtime commits after each article is fully processed, so a crash replays at most that one
    article (and the delivery ledger stops it from alerting twice)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(path), isolation_level="DEFERRED")
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        except sqlite3.DatabaseError as exc:
            # the recovery named, not just "move it aside" (tests/reliability/test_corrupt_state.py)
            raise StateError(
                f"{path}: not a usable state file ({exc}); `monitor state rebuild --state {path}`"
                " moves it aside and starts afresh with whatever can still be read"
            ) from None
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            self.db.commit()
        elif int(row[0]) != SCHEMA_VERSION:
            raise StateError(f"{path}: state schema {row[0]}, this version reads {SCHEMA_VERSION}")

    def table(self, name: str) -> JsonTable:
        return JsonTable(self.db, name)

    def models(self, name: str, model: type[M]) -> ModelTable[M]:
        return ModelTable(JsonTable(self.db, name), model)

    def commit(self) -> None:
        self.db.commit()

    def rollback(self) -> None:
        self.db.rollback()

    def close(self) -> None:
        self.db.commit()
        self.db.close()


class JsonTable(MutableMapping[str, Any]):
    def __init__(self, db: sqlite3.Connection, name: str) -> None:
        if not name.isidentifier():
            raise ValueError(f"bad table name {name!r}")
        self.db = db
        self.name = f"t_{name}"
        db.execute(f"CREATE TABLE IF NOT EXISTS {self.name} (key TEXT PRIMARY KEY, value TEXT)")

    def __getitem__(self, key: str) -> Any:
        row = self.db.execute(f"SELECT value FROM {self.name} WHERE key=?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return json.loads(row[0])

    def __setitem__(self, key: str, value: Any) -> None:
        self.db.execute(
            f"INSERT INTO {self.name} VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, json.dumps(value, separators=(",", ":"))),
        )

    def __delitem__(self, key: str) -> None:
        if self.db.execute(f"DELETE FROM {self.name} WHERE key=?", (key,)).rowcount == 0:
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return (
            self.db.execute(f"SELECT 1 FROM {self.name} WHERE key=?", (key,)).fetchone() is not None
        )

    def __iter__(self) -> Iterator[str]:
        return iter([r[0] for r in self.db.execute(f"SELECT key FROM {self.name}")])

    def __len__(self) -> int:
        return int(self.db.execute(f"SELECT COUNT(*) FROM {self.name}").fetchone()[0])


class ModelTable(MutableMapping[str, M], Generic[M]):
    """A JSON table whose values are pydantic models."""

    def __init__(self, table: MutableMapping[str, Any], model: type[M]) -> None:
        self.table = table
        self.model = model

    def __getitem__(self, key: str) -> M:
        return self.model.model_validate(self.table[key])

    def __setitem__(self, key: str, value: M) -> None:
        self.table[key] = value.model_dump(mode="json")

    def __delitem__(self, key: str) -> None:
        del self.table[key]

    def __contains__(self, key: object) -> bool:
        return key in self.table

    def __iter__(self) -> Iterator[str]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)
