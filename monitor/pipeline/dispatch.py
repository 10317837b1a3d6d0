"""Route policies between alerting and delivery: silences, quiet hours, group windows, rates.

Per route, alerts that may not go out at once are *held* together in one batch with one release
time and one reason, and leave as one digest:

  * a silence matching the alert's story or one of its rules: not sent, reported as silenced
    (the runtime keeps and counts it);
  * quiet hours: non-critical alerts wait for their end (critical ones go out);
  * group window: the first alert opens a batch, every alert of the route joins it until the
    window closes, so stories crossing together arrive as one message;
  * rate limit (token bucket): beyond it alerts wait for the next token; a digest costs one;
  * retry: a delivery failed in a way worth retrying, and the runtime does not wait in line
    for it (the Kafka deliver agent, which one slow destination would otherwise hold up for
    every route): the alert is held until its backoff has passed, and alerts arriving for the
    route meanwhile join it, to go out together once the destination answers again.

Within a batch a story appears once, as its latest alert; earlier ones are *superseded* (the
runtime records them in the ledger as such, so nothing is lost or sent twice).

Pure: state lives in the two mappings it is given (SQLite tables or Faust tables), time is a
parameter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict

from monitor.models import Alert, Digest, Level, Silence
from monitor.rules.models import Route

Reason = Literal["group", "quiet", "rate", "retry"]


class Held(BaseModel):
    """An alert waiting in its route's batch."""

    model_config = ConfigDict(frozen=True)
    alert: Alert
    reason: Reason
    release_at: datetime
    held_at: datetime
    attempts: int = 0  # deliveries tried and failed (reason "retry")


class Bucket(BaseModel):
    """A route's rate-limit tokens."""

    model_config = ConfigDict(frozen=True)
    tokens: float
    at: datetime


@dataclass
class Outgoing:
    """What to send now: one alert, or a digest; and the alerts a digest's stories superseded."""

    alert: Alert | None = None
    digest: Digest | None = None
    superseded: list[Alert] = field(default_factory=list)
    held_keys: list[str] = field(default_factory=list)  # to release once sent (see due)
    attempts: dict[str, int] = field(default_factory=dict)  # alert id -> failed deliveries

    @property
    def alerts(self) -> list[Alert]:
        if self.digest is not None:
            return list(self.digest.alerts)
        return [self.alert] if self.alert is not None else []


@dataclass
class Admission:
    send: list[Outgoing] = field(default_factory=list)
    silenced_by: Silence | None = None
    held: Reason | None = None


def held_key(alert: Alert) -> str:
    return f"{alert.id}|{alert.route}"


class Dispatcher:
    def __init__(
        self,
        routes: Sequence[Route],
        held: MutableMapping[str, Held],
        buckets: MutableMapping[str, Bucket],
        silences: Callable[[], Iterable[Silence]] = lambda: (),
    ) -> None:
        self.routes = {r.name: r for r in routes}
        self.held = held
        self.buckets = buckets
        self.silences = silences

    def set_routes(self, routes: Sequence[Route]) -> None:
        self.routes = {r.name: r for r in routes}

    # --- one alert arrives -----------------------------------------------------------------

    def admit(self, alert: Alert, now: datetime) -> Admission:
        for silence in self.silences():
            if silence.matches(alert, now):
                return Admission(silenced_by=silence)
        route = self.routes.get(alert.route)
        if route is None:  # the deliverer reports the missing route; nothing to hold it for
            return Admission(send=[Outgoing(alert=alert)])
        batch = self._batch(route.name)
        critical = alert.level >= Level.critical and alert.kind != "resolved"
        quiet = route.quiet_hours is not None and route.quiet_hours.active(now)
        if batch is not None and not (critical and batch[0] == "quiet"):
            reason, release = batch
        elif quiet and not critical:
            assert route.quiet_hours is not None
            reason, release = "quiet", route.quiet_hours.ends_after(now)
        elif route.group_window > timedelta(0):
            reason, release = "group", now + route.group_window
        elif self._take_token(route, now):
            return Admission(send=[Outgoing(alert=alert)])
        else:
            reason, release = "rate", self._next_token(route, now)
        self.held[held_key(alert)] = Held(
            alert=alert, reason=reason, release_at=release, held_at=now
        )
        return Admission(held=reason)

    # --- time passes -------------------------------------------------------------------------

    def due(self, now: datetime, route: str | None = None) -> list[Outgoing]:
        """Batches whose time has come (of one route, or all), as digests or single alerts; they
        stay held until :meth:`release`."""
        by_route: dict[str, list[tuple[str, Held]]] = {}
        for key, h in list(self.held.items()):
            if route is None or h.alert.route == route:
                by_route.setdefault(h.alert.route, []).append((key, h))
        out: list[Outgoing] = []
        for name, entries in by_route.items():
            release = min(h.release_at for _, h in entries)
            if release > now:
                continue
            policy = self.routes.get(name)
            if policy is not None and policy.quiet_hours and policy.quiet_hours.active(now):
                entries = self._keep_quiet(policy, entries, now)
                if not entries:
                    continue
            if policy is not None and not self._take_token(policy, now):
                later = self._next_token(policy, now)
                for key, h in entries:
                    self.held[key] = h.model_copy(update={"release_at": later})
                continue
            reasons = {h.reason for _, h in entries}
            reason: Reason = "quiet" if "quiet" in reasons else min(reasons)
            bundle = self._bundle([h.alert for _, h in entries], reason, now)
            bundle.held_keys = [key for key, _ in entries]
            bundle.attempts = {h.alert.id: h.attempts for _, h in entries if h.attempts}
            out.append(bundle)
        return out

    def hold_for_retry(
        self, alert: Alert, attempts: int, release_at: datetime, now: datetime
    ) -> None:
        """Hold an alert whose delivery failed until ``release_at`` (its backoff)."""
        self.held[held_key(alert)] = Held(
            alert=alert, reason="retry", release_at=release_at, held_at=now, attempts=attempts
        )

    def release(self, outgoing: Outgoing) -> None:
        """Forget a batch once it has been handed to delivery. Not in :meth:`due`: if the
        process dies between the two, the batch is still held and goes out on restart (in
        Kafka a table deletion can outlive the lost send it was meant to follow)."""
        for key in outgoing.held_keys:
            self.held.pop(key, None)

    def next_release(self) -> datetime | None:
        times = [h.release_at for h in self.held.values()]
        return min(times) if times else None

    # --- internals ---------------------------------------------------------------------------

    def _batch(self, route: str) -> tuple[Reason, datetime] | None:
        found = [h for h in self.held.values() if h.alert.route == route]
        if not found:
            return None
        first = min(found, key=lambda h: h.release_at)
        return first.reason, first.release_at

    def _keep_quiet(
        self, route: Route, entries: list[tuple[str, Held]], now: datetime
    ) -> list[tuple[str, Held]]:
        """Quiet hours began while a batch waited: hold its non-critical alerts to their end."""
        assert route.quiet_hours is not None
        end = route.quiet_hours.ends_after(now)
        go = []
        for key, h in entries:
            if h.alert.level >= Level.critical and h.alert.kind != "resolved":
                go.append((key, h))
            else:
                self.held[key] = h.model_copy(update={"release_at": end, "reason": "quiet"})
        return go

    def _refill(self, route: Route, now: datetime) -> Bucket:
        assert route.rate_limit is not None
        limit = route.rate_limit
        b = self.buckets.get(route.name) or Bucket(tokens=float(limit.count), at=now)
        rate = limit.count / max(limit.per.total_seconds(), 1e-9)
        elapsed = max(0.0, (now - b.at).total_seconds())
        return Bucket(tokens=min(float(limit.count), b.tokens + elapsed * rate), at=now)

    def _take_token(self, route: Route, now: datetime) -> bool:
        if route.rate_limit is None:
            return True
        b = self._refill(route, now)
        ok = b.tokens >= 1.0
        self.buckets[route.name] = b.model_copy(update={"tokens": b.tokens - 1.0}) if ok else b
        return ok

    def _next_token(self, route: Route, now: datetime) -> datetime:
        assert route.rate_limit is not None
        b = self._refill(route, now)
        per_token = route.rate_limit.per.total_seconds() / route.rate_limit.count
        return now + timedelta(seconds=max(0.0, (1.0 - b.tokens) * per_token) + 0.001)

    @staticmethod
    def _bundle(alerts: list[Alert], reason: Reason, now: datetime) -> Outgoing:
        latest: dict[str, Alert] = {}
        superseded: list[Alert] = []
        for a in sorted(alerts, key=lambda a: (a.created_at, a.level)):
            old = latest.get(a.story_id)
            if old is not None:
                superseded.append(old)
            latest[a.story_id] = a
        kept = sorted(latest.values(), key=lambda a: (-a.level, a.created_at))
        if len(kept) == 1:
            return Outgoing(alert=kept[0], superseded=superseded)
        first = kept[0]
        digest_id = hashlib.sha256("|".join(sorted(a.id for a in kept)).encode()).hexdigest()[:24]
        digest = Digest(
            id=digest_id,
            route=first.route,
            sink=first.sink,
            reason=reason,
            alerts=tuple(kept),
            created_at=now,
        )
        return Outgoing(digest=digest, superseded=superseded)


def active_silences(silences: Mapping[str, Silence], now: datetime) -> list[Silence]:
    return [s for s in silences.values() if s.until > now]
