"""The last step of both runtimes: route policy (monitor.pipeline.dispatch), then delivery,
then a record of every outcome. Nothing leaves this step unaccounted for: each alert ends
delivered, held (to come out later), silenced (kept), superseded (ledger), or dead (kept
for ``monitor alerts resend``).

A delivery that failed in a way worth retrying, when the deliverer does not retry inline, is
held for its backoff and tried again when due (:meth:`Outflow.flush`), up to the retry
policy's attempts; then it is dead like any other failure."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from monitor.logs import log
from monitor.metrics import Metrics
from monitor.models import Alert, DeadAlert, Delivery, Silence
from monitor.pipeline.dispatch import Dispatcher, Outgoing
from monitor.runtime.delivery import Deliverer, ledger_key


class SilencedAlert(BaseModel):
    """An alert a silence kept from being sent: kept, with the silence that matched."""

    model_config = ConfigDict(frozen=True)
    alert: Alert
    silence_id: str
    reason: str
    at: datetime


class Outflow:
    def __init__(
        self,
        dispatcher: Dispatcher,
        deliverer: Deliverer,
        silenced: MutableMapping[str, SilencedAlert],
        keep_dead: Callable[[DeadAlert], Awaitable[None]],
        metrics: Metrics,
    ) -> None:
        self.dispatcher = dispatcher
        self.deliverer = deliverer
        self.silenced = silenced
        self.keep_dead = keep_dead
        self.metrics = metrics

    async def admit(self, alert: Alert, now: datetime) -> list[Delivery]:
        if ledger_key(alert) in self.deliverer.ledger:  # a replay of something settled
            return [await self.deliverer.deliver(alert)]
        admission = self.dispatcher.admit(alert, now)
        if admission.silenced_by is not None:
            return [self._silence(alert, admission.silenced_by, now)]
        if admission.held is not None:
            self.metrics.held.labels(alert.route, admission.held).inc()
            log.info(
                "alert_held",
                alert_id=alert.id,
                story_id=alert.story_id,
                route=alert.route,
                reason=admission.held,
            )
        return await self._send(admission.send, now)

    async def flush(self, now: datetime, route: str | None = None) -> list[Delivery]:
        """Send the batches (of one route, or all) whose time has come."""
        return await self._send(self.dispatcher.due(now, route), now)

    async def _send(self, outgoing: list[Outgoing], now: datetime) -> list[Delivery]:
        results: list[Delivery] = []
        for out in outgoing:
            results += [self.deliverer.settle(a, "superseded") for a in out.superseded]
            if out.digest is not None:
                sent = await self.deliverer.deliver_digest(out.digest)
            else:
                assert out.alert is not None
                sent = [await self.deliverer.deliver(out.alert)]
            by_id = {a.id: a for a in out.alerts}
            # released before a retry is held again under the same key
            self.dispatcher.release(out)
            for i, result in enumerate(sent):
                alert = by_id.get(result.alert_id)
                if alert is not None and result.outcome == "retry":
                    sent[i] = result = self._retry_later(alert, result, out, now)
                if alert is not None and result.outcome in {"error", "no_route"}:
                    await self.keep_dead(DeadAlert(alert=alert, delivery=result))
            results += sent
        return results

    def _retry_later(
        self, alert: Alert, result: Delivery, out: Outgoing, now: datetime
    ) -> Delivery:
        """Hold an alert whose delivery failed for its backoff; or, out of attempts, the
        failure it is (the caller keeps it as dead)."""
        policy = self.deliverer.retry
        attempts = out.attempts.get(alert.id, 0) + 1
        if attempts >= policy.attempts:
            return self.deliverer.failed(alert, result.sink, result.error, attempts)
        wait = policy.delay(attempts, result.retry_after)
        self.dispatcher.hold_for_retry(alert, attempts, now + timedelta(seconds=wait), now)
        self.metrics.held.labels(alert.route, "retry").inc()
        log.warning(
            "delivery_retry",
            alert_id=alert.id,
            route=alert.route,
            sink=result.sink,
            attempt=attempts,
            wait=round(wait, 2),
            error=result.error,
        )
        return result

    def _silence(self, alert: Alert, silence: Silence, now: datetime) -> Delivery:
        self.silenced[ledger_key(alert)] = SilencedAlert(
            alert=alert, silence_id=silence.id, reason=silence.reason, at=now
        )
        self.metrics.silenced.labels(alert.route).inc()
        log.info(
            "alert_silenced",
            alert_id=alert.id,
            story_id=alert.story_id,
            route=alert.route,
            silence_id=silence.id,
        )
        return self.deliverer.settle(alert, "silenced")
