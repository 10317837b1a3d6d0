"""The embedded runtime's article archive: every article as it arrived (body included), kept
for ``archive_days`` so rule changes can be backtested on what really came in.

A table of its own (not a JSON table): backtests read by publication time and pruning deletes
by it, both through an index.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime

from monitor.models import Article


class ArticleArchive:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        db.execute(
            "CREATE TABLE IF NOT EXISTS archive (id TEXT PRIMARY KEY, published REAL NOT NULL,"
            " fetched REAL NOT NULL, article TEXT NOT NULL)"
        )
        db.execute("CREATE INDEX IF NOT EXISTS archive_published ON archive (published)")
        db.execute("CREATE INDEX IF NOT EXISTS archive_fetched ON archive (fetched)")

    def add(self, article: Article) -> None:
        """Keep the first copy of an id: a backtest replays what first arrived."""
        self.db.execute(
            "INSERT OR IGNORE INTO archive VALUES (?, ?, ?, ?)",
            (
                article.id,
                article.published.timestamp(),
                article.fetched_at.timestamp(),
                article.model_dump_json(),
            ),
        )

    def prune(self, before: datetime) -> int:
        """Forget articles that *arrived* before ``before`` (replays of old news stay)."""
        cur = self.db.execute("DELETE FROM archive WHERE fetched < ?", (before.timestamp(),))
        return cur.rowcount

    def articles(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[Article]:
        """In publication order."""
        lo = since.timestamp() if since else float("-inf")
        hi = until.timestamp() if until else float("inf")
        rows = self.db.execute(
            "SELECT article FROM archive WHERE published >= ? AND published < ? "
            "ORDER BY published, id",
            (lo, hi),
        )
        for (raw,) in rows:
            yield Article.model_validate_json(raw)

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM archive").fetchone()[0])
