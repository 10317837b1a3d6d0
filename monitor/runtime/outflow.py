"""The last step of both runtimes: route policy (monitor.pipeline.dispatch), then delivery,
then a record of every outcome. Nothing leaves this step unaccounted for: each alert ends
delivered, held (to come out later), silenced (kept), superseded (ledger), or dead (kept
for ``monitor alerts resend``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime

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
        return await self._send(admission.send)

    async def flush(self, now: datetime, route: str | None = None) -> list[Delivery]:
        """Send the batches (of one route, or all) whose time has come."""
        return await self._send(self.dispatcher.due(now, route))

    async def _send(self, outgoing: list[Outgoing]) -> list[Delivery]:
        results: list[Delivery] = []
        for out in outgoing:
            results += [self.deliverer.settle(a, "superseded") for a in out.superseded]
            if out.digest is not None:
                sent = await self.deliverer.deliver_digest(out.digest)
            else:
                assert out.alert is not None
                sent = [await self.deliverer.deliver(out.alert)]
            by_id = {a.id: a for a in out.alerts}
            for result in sent:
                if result.outcome in {"error", "no_route"}:
                    await self.keep_dead(DeadAlert(alert=by_id[result.alert_id], delivery=result))
            self.dispatcher.release(out)
            results += sent
        return results

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
