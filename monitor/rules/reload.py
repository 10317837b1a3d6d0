"""Rule changes go live without a restart.

* Embedded (``monitor run``): :func:`watch_directory` notices an edit of the rules directory
  within seconds; a valid rule set replaces the one in force, an invalid one is logged (every
  problem, as ``path:line:col``) and counted, and the rules in force stay.
* Kafka: ``monitor rules publish`` validates a directory and writes it, whole, to the compacted
  topic ``news.rules`` with a moment it takes effect a few seconds ahead. Every worker follows
  the topic and switches at that moment, so all workers change version together, and the file
  texts travel with the record, so every worker builds exactly the same rule set (same version).

Either way each alert carries the version of the rule set that tagged its article
(``Alert.rules_version``).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from monitor.errors import Issue, RuleLoadError
from monitor.logs import log
from monitor.metrics import Metrics
from monitor.rules.ruleset import RuleSet, load_ruleset, rule_files

RULES_KEY = "ruleset"  # the one key of news.rules: compaction keeps the latest rule set


class PublishedRules(BaseModel):
    """A rule set as ``monitor rules publish`` writes it to Kafka."""

    model_config = ConfigDict(frozen=True)
    version: str
    files: dict[str, str]  # file name -> text
    published_at: datetime
    effective_at: datetime
    source: str = ""  # the directory it came from, for the logs


def fingerprint(directory: Path) -> str:
    """Changes whenever a rule file is added, removed or rewritten (name, size, mtime)."""
    h = hashlib.sha256()
    try:
        for path in rule_files(directory):
            st = path.stat()
            h.update(f"{path.name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    except OSError as exc:  # the directory is being replaced (a ConfigMap swap): look again
        h.update(f"error {exc}".encode())
    return h.hexdigest()


def snapshot(directory: Path, delay: timedelta) -> PublishedRules:
    """Validate ``directory`` and pack it for publishing; raises RuleLoadError if invalid."""
    ruleset = load_ruleset(directory)
    files = {p.name: p.read_text(encoding="utf-8") for p in rule_files(directory)}
    now = datetime.now(UTC)
    return PublishedRules(
        version=ruleset.version,
        files=files,
        published_at=now,
        effective_at=now + delay,
        source=str(directory),
    )


def materialize(published: PublishedRules, root: Path) -> Path:
    """Write a published rule set's files under ``root`` (one directory per version) so the
    ordinary loader reads them, with the same file names (so the same version hash)."""
    target = root / f"rules-{published.version}"
    target.mkdir(parents=True, exist_ok=True)
    for name, text in published.files.items():
        if Path(name).name != name or not name.endswith((".yaml", ".yml")):
            message = f"published rule file name {name!r} is not allowed"
            raise RuleLoadError([Issue(name, 1, 1, "(file)", message)])
        (target / name).write_text(text, encoding="utf-8")
    for stale in target.iterdir():
        if stale.name not in published.files:
            stale.unlink()
    return target


class RuleReloader:
    """Holds the version in force; swaps in a valid new rule set through ``apply``."""

    def __init__(
        self, current: RuleSet, apply: Callable[[RuleSet], None], metrics: Metrics
    ) -> None:
        self.current = current
        self.apply = apply
        self.metrics = metrics

    def offer(self, load: Callable[[], RuleSet], source: str) -> bool:
        """Try a new rule set; True if it is now in force."""
        try:
            ruleset = load()
        except RuleLoadError as exc:
            self.metrics.rule_reloads.labels("error").inc()
            for issue in exc.issues:
                log.error("rules_reload_problem", source=source, problem=str(issue))
            log.error(
                "rules_reload_rejected",
                source=source,
                problems=len(exc.issues),
                version_in_force=self.current.version,
            )
            return False
        except OSError as exc:
            self.metrics.rule_reloads.labels("error").inc()
            log.error("rules_reload_rejected", source=source, error=str(exc))
            return False
        if ruleset.version == self.current.version:
            return False
        try:
            self.apply(ruleset)
        except Exception as exc:  # the swap itself failed: the old rules stay in force
            self.metrics.rule_reloads.labels("error").inc()
            log.exception("rules_reload_failed", source=source, error=str(exc))
            # The swap has steps (sinks, pipeline, routes): one failing part-way left those
            # before it on the new rules, a mix no version names. Put the rules in force back
            # everywhere (tests/reliability/test_rules_reload.py).
            try:
                self.apply(self.current)
            except Exception as again:
                log.exception("rules_restore_failed", source=source, error=str(again))
            return False
        log.info(
            "rules_reloaded",
            source=source,
            old_version=self.current.version,
            version=ruleset.version,
            rules=len(ruleset.rules),
            routes=len(ruleset.routes),
        )
        self.current = ruleset
        self.metrics.rule_reloads.labels("ok").inc()
        return True


async def watch_directory(
    directory: Path, reloader: RuleReloader, stop: asyncio.Event, interval: float = 2.0
) -> None:
    """Reload ``directory`` when it changes, until ``stop``. An edit is taken once the files
    have been still for one interval: editors and `kubectl` write in several steps."""
    seen = fingerprint(directory)
    pending: str | None = None
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
            return
        except TimeoutError:
            pass
        now = fingerprint(directory)
        if now == seen:
            pending = None
            continue
        if now != pending:
            pending = now  # still changing, or just changed: look again next time
            continue
        seen, pending = now, None
        reloader.offer(lambda: load_ruleset(directory), str(directory))


def on_published(
    reloader: RuleReloader, root: Path, value: bytes | None
) -> tuple[float, Callable[[], None]] | None:
    """A record of news.rules: (seconds until it takes effect, the switch), or None."""
    if value is None:
        return None
    try:
        published = PublishedRules.model_validate_json(value)
    except ValueError as exc:
        reloader.metrics.rule_reloads.labels("error").inc()
        log.error("rules_record_undecodable", error=str(exc)[:300])
        return None
    wait = (published.effective_at - datetime.now(UTC)).total_seconds()
    source = f"news.rules ({published.source or 'published'}, {published.published_at:%H:%M:%S})"

    def switch() -> None:
        reloader.offer(lambda: load_ruleset(materialize(published, root)), source)

    return max(0.0, wait), switch
