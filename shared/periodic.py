"""Work run now and then at a fixed interval on the injected clock (retention jobs): a test
moves the clock instead of waiting, and a failed run is logged and tried again at the next
interval rather than ending the loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from shared.clock import Clock
from shared.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class Periodic:
    def __init__(
        self, name: str, clock: Clock, every: timedelta, work: Callable[[], Awaitable[object]]
    ) -> None:
        self.name = name
        self.clock = clock
        self.every = every
        self.work = work
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        async def loop() -> None:
            while True:
                try:
                    await self.work()
                except Exception:
                    log.exception("%s failed; it runs again at the next interval", self.name)
                await self.clock.sleep_until(self.clock.now() + self.every)

        self._task = asyncio.create_task(loop())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
