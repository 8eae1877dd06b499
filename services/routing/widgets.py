"""Widget availability: re-evaluated when it may have changed, announced on each change.

A widget is online when a queue of its chain is open and staffed. That changes when an
operator signs in or out or changes status or monitored queues (presence says so, and the
watch is poked at once), and when a window opens or closes or a holiday starts (the watch
wakes at the next such instant of any queue). A slower tick is the safety net for what
nobody announces (a configuration saved elsewhere). Every routing replica announces:
gateways forward a status only when it differs from the one they hold, so repeats cost
nothing. All waiting is on the injected clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.routing import metrics
from services.routing.handlers import RoutingHandlers
from services.routing.store import QueueDirectory
from shared import subjects
from shared.bus import Bus
from shared.clock import Clock
from shared.periodic import Periodic
from shared.schemas.records import Queue

log = logging.getLogger(__name__)


@dataclass(eq=False)
class WidgetWatch:
    handlers: RoutingHandlers
    queues: QueueDirectory
    bus: Bus
    clock: Clock
    tick_s: float
    republish_s: float

    def __post_init__(self) -> None:
        self._last: dict[str, tuple[bool, str | None, str]] = {}
        self._republished = 0.0
        every = timedelta(seconds=self.tick_s)
        self._ticks = Periodic("widget availability", self.clock, every, self.tick, self.next_wake)

    def poke(self) -> None:
        """Something that may change availability happened: evaluate now."""
        self._ticks.wake()

    async def next_wake(self) -> datetime:
        """The soonest of the next tick, the next announcement of every status again, and
        the next window edge of any queue."""
        now = self.clock.now()
        since = self.clock.monotonic() - self._republished
        wake = now + timedelta(seconds=max(0.0, min(self.tick_s, self.republish_s - since)))
        directory = await self.queues.directory()
        edge = directory.next_change(now, wake - now)
        return min(wake, edge) if edge is not None else wake

    async def tick(self) -> int:
        """Evaluate every widget once; returns how many statuses were announced."""
        directory = await self.queues.directory()
        known: dict[str, bool] = {}

        async def staffed(queue: Queue) -> bool:
            # One question to presence per queue per tick, however many widgets share it.
            if queue.name not in known:
                known[queue.name] = await self.handlers.placement.is_staffed(queue)
            return known[queue.name]

        again = self.clock.monotonic() - self._republished >= self.republish_s
        if again:
            self._republished = self.clock.monotonic()
        sent = 0
        for gone in self._last.keys() - directory.widgets.keys():
            del self._last[gone]  # deleted through the admin API
            metrics.forget_widget(gone)
        for widget_id in sorted(directory.widgets):
            status = await self.handlers.placement.widget_status(directory, widget_id, staffed)
            now = (status.online, status.queue, status.reason)
            changed = self._last.get(widget_id) != now
            if changed or again:
                await self.bus.publish(
                    subjects.widget_status(status.institution, status.widget), status
                )
                sent += 1
            if changed:
                metrics.WIDGET_CHANGES.labels(str(status.online).lower()).inc()
                metrics.widget_state(widget_id, status.online, status.reason)
                self._last[widget_id] = now
        return sent

    def start(self) -> None:
        self._ticks.start()

    async def stop(self) -> None:
        await self._ticks.stop()
