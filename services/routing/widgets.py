"""Widget availability: re-evaluated every tick, announced on each change.

A widget is online when a queue of its chain is open and staffed. That changes when an
operator goes online or offline, a window opens or closes, or a holiday starts; a tick of
about a second notices each within that time. Every routing replica announces: gateways
forward a status only when it differs from the one they hold, so repeats cost nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.routing import metrics
from services.routing.handlers import RoutingHandlers
from services.routing.store import QueueDirectory
from shared import subjects
from shared.bus import Bus
from shared.clock import Clock
from shared.schemas.records import Queue

log = logging.getLogger(__name__)


class WidgetWatch:
    def __init__(
        self,
        handlers: RoutingHandlers,
        queues: QueueDirectory,
        bus: Bus,
        clock: Clock,
        tick_s: float,
        republish_s: float,
    ) -> None:
        self.handlers = handlers
        self.queues = queues
        self.bus = bus
        self.clock = clock
        self.tick_s = tick_s
        self.republish_s = republish_s
        self._last: dict[str, tuple[bool, str | None, str]] = {}
        self._republished = 0.0
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> int:
        """Evaluate every widget once; returns how many statuses were announced."""
        directory = await self.queues.directory()
        known: dict[str, bool] = {}

        async def staffed(queue: Queue) -> bool:
            # One question to presence per queue per tick, however many widgets share it.
            if queue.name not in known:
                known[queue.name] = await self.handlers.is_staffed(queue)
            return known[queue.name]

        again = self.clock.monotonic() - self._republished >= self.republish_s
        if again:
            self._republished = self.clock.monotonic()
        sent = 0
        for gone in self._last.keys() - directory.widgets.keys():
            del self._last[gone]  # deleted through the admin API
        for widget_id in sorted(directory.widgets):
            status = await self.handlers.widget_status(directory, widget_id, staffed)
            now = (status.online, status.queue, status.reason)
            changed = self._last.get(widget_id) != now
            if changed or again:
                await self.bus.publish(
                    subjects.widget_status(status.institution, status.widget), status
                )
                sent += 1
            if changed:
                metrics.WIDGET_CHANGES.labels(str(status.online).lower()).inc()
                self._last[widget_id] = now
        return sent

    def start(self) -> None:
        async def loop() -> None:
            while True:
                try:
                    await self.tick()
                except Exception:
                    log.exception("widget availability tick failed")
                await asyncio.sleep(self.tick_s)

        self._task = asyncio.create_task(loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
