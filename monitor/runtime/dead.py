"""Dead alerts: the ones that could not be delivered after all retries, kept with the reason,
and sent again on request (``monitor alerts dead`` / ``monitor alerts resend``).

* Embedded: the ``dead_alerts`` table of the state file (key ``alert id|route``). A resend
  delivers from this process, through the route's sink and the same ledger as ``monitor run``:
  delivered (or found already delivered) -> the row goes; failed again -> it stays, with the
  new error.
* Kafka: the compacted topic ``news.alerts.dead`` (same key; a null value: delivered after
  all). A resend puts the alert back on ``news.alerts`` (key: story id), marked with the
  :data:`RESEND` header, for the workers' deliver agent; the worker that delivers it writes
  the null value, and should it fail again, the worker keeps it anew. Only the deliver agent
  writes the topic after a resend: clearing it from the command as well could erase the fresh
  entry of an alert that failed again before the clearing landed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from monitor.errors import MonitorError
from monitor.logs import log
from monitor.metrics import Metrics
from monitor.models import DeadAlert
from monitor.rules.ruleset import RuleSet
from monitor.runtime.compacted import open_producer, read_latest, send
from monitor.runtime.delivery import Deliverer, RetryPolicy
from monitor.runtime.topics import Topics
from monitor.settings import Settings
from monitor.sinks.registry import build_route_sinks
from monitor.state.sqlite import Store

DEAD_TABLE = "dead_alerts"
# The header marking an alert put back on news.alerts by `monitor alerts resend`: its dead
# entry is cleared by the worker once it is delivered.
RESEND = "monitor-resend"

# sent: delivered now; already_sent: the ledger says it went out before; queued: handed to the
# Kafka workers; failed: still not delivered (kept, with the error).
ResendOutcome = Literal["sent", "already_sent", "queued", "failed"]


@dataclass(frozen=True)
class DeadEntry:
    key: str  # "alert id|route"
    dead: DeadAlert


@dataclass(frozen=True)
class Resent:
    entry: DeadEntry
    outcome: ResendOutcome
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome != "failed"


class UnknownDeadAlert(MonitorError):
    pass


class AmbiguousDeadAlert(MonitorError):
    def __init__(self, wanted: str, keys: list[str]) -> None:
        self.keys = keys
        super().__init__(
            f"{wanted!r} is the id of {len(keys)} dead alerts (one per route): "
            f"give the full key, one of: {', '.join(keys)}"
        )


def ordered(entries: Iterable[DeadEntry]) -> list[DeadEntry]:
    """Oldest alert first, so a story's opening goes out before its escalation (and a Slack
    thread is started before its replies)."""
    return sorted(entries, key=lambda e: (e.dead.alert.created_at, e.key))


def select(entries: Sequence[DeadEntry], wanted: str) -> DeadEntry:
    """The entry named by its full key ``alert id|route``, or by its alert id alone when only
    one route has it."""
    for entry in entries:
        if entry.key == wanted:
            return entry
    matches = [e for e in entries if e.dead.alert.id == wanted]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise AmbiguousDeadAlert(wanted, [e.key for e in matches])
    raise UnknownDeadAlert(f"no dead alert {wanted!r}")


# --- embedded ----------------------------------------------------------------------------------


def interactive_retry(settings: Settings) -> RetryPolicy:
    """Someone is waiting at a terminal: at most 3 attempts, at most 10 s apart (fewer if the
    settings say so)."""
    base = RetryPolicy.of(settings)
    return RetryPolicy(attempts=min(base.attempts, 3), max_delay=min(base.max_delay, 10.0))


def sqlite_dead(store: Store) -> list[DeadEntry]:
    table = store.table(DEAD_TABLE)
    entries = []
    for key in table:
        try:
            entries.append(DeadEntry(key, DeadAlert.model_validate(table[key])))
        except (ValidationError, KeyError) as exc:
            log.warning("dead_alert_undecodable", key=key, error=str(exc)[:300])
    return ordered(entries)


async def sqlite_resend(
    store: Store,
    ruleset: RuleSet,
    settings: Settings,
    entries: Sequence[DeadEntry],
    retry: RetryPolicy | None = None,
) -> list[Resent]:
    """Deliver each entry's alert again, as ``monitor run`` would (same sinks, same ledger),
    committing after each so a concurrent run sees it at once."""
    sinks, skipped = build_route_sinks(ruleset.routes, settings, store.table)
    retry = retry or interactive_retry(settings)
    deliverer = Deliverer(sinks, store.table("ledger"), Metrics(), retry=retry)
    dead = store.models(DEAD_TABLE, DeadAlert)
    results: list[Resent] = []
    try:
        for entry in entries:
            delivery = await deliverer.deliver(entry.dead.alert)
            if delivery.outcome in {"ok", "duplicate"}:
                dead.pop(entry.key, None)
                store.commit()
                outcome: ResendOutcome = "sent" if delivery.outcome == "ok" else "already_sent"
                results.append(Resent(entry, outcome))
                continue
            error = delivery.error or delivery.outcome
            if delivery.outcome == "no_route" and entry.dead.alert.route in skipped:
                error = f"{error}: {skipped[entry.dead.alert.route]}"
            delivery = delivery.model_copy(update={"error": error})
            dead[entry.key] = DeadAlert(alert=entry.dead.alert, delivery=delivery)
            store.commit()
            results.append(Resent(entry, "failed", error))
    finally:
        store.commit()
        for sink in set(sinks.values()):
            await sink.close()
    return results


# --- Kafka -------------------------------------------------------------------------------------


async def kafka_dead(bootstrap: str, names: Topics) -> list[DeadEntry]:
    entries = []
    for key, value in (await read_latest(bootstrap, names.alerts_dead)).items():
        try:
            entries.append(DeadEntry(key, DeadAlert.model_validate_json(value)))
        except (ValidationError, ValueError) as exc:
            log.warning("dead_alert_undecodable", key=key, error=str(exc)[:300])
    return ordered(entries)


async def kafka_resend(bootstrap: str, names: Topics, entries: Sequence[DeadEntry]) -> list[Resent]:
    """Each alert back onto the alerts topic, marked as a resend; its dead entry stays listed
    until a worker has delivered it (and clears it). Resending it again meanwhile is dropped by
    the worker's ledger: nothing is lost or sent twice."""
    results: list[Resent] = []
    producer = await open_producer(bootstrap)
    try:
        for entry in entries:
            alert = entry.dead.alert
            try:
                value = alert.model_dump_json().encode()
                await send(producer, names.alerts, alert.story_id, value, [(RESEND, b"1")])
            except MonitorError as exc:
                results.append(Resent(entry, "failed", str(exc)))
                continue
            results.append(Resent(entry, "queued"))
    finally:
        await producer.stop()
    return results
