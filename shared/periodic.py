"""Work run now and then on the injected clock (retention jobs, the mail sender, widget
availability): a test moves the clock instead of waiting, and a failed run is logged and
tried again at the next interval rather than ending the loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.clock import Clock, until_or_woken
from shared.tasks import cancel_and_wait

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Periodic:
    """Runs `work`, then again `every` later, or sooner: at the instant `due` names (when
    it names one), or as soon as `wake` is called."""

    name: str
    clock: Clock
    every: timedelta
    work: Callable[[], Awaitable[object]]
    due: Callable[[], Awaitable[datetime | None]] | None = None
    _woken: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _stopping: bool = field(default=False, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    def wake(self) -> None:
        """Something for the work happened: run it now rather than at the next interval."""
        self._woken.set()

    async def next_run(self) -> datetime:
        at = self.clock.now() + self.every
        if self.due is None:
            return at
        try:
            sooner = await self.due()
        except Exception:
            log.exception("%s: when to run next is unknown; in %s", self.name, self.every)
            return at
        return at if sooner is None else min(at, sooner)

    def start(self) -> None:
        async def loop() -> None:
            while not self._stopping:
                # Cleared before the run, so that a wake during it is a run more, not lost.
                self._woken.clear()
                try:
                    await self.work()
                except Exception:
                    log.exception("%s failed; it runs again at the next interval", self.name)
                await until_or_woken(self.clock, await self.next_run(), self._woken)

        self._task = asyncio.create_task(loop())

    async def stop(self) -> None:
        # A cancellation can be lost inside a driver's call (Python 3.11's
        # asyncio.wait_for returns a result that arrives as it is cancelled): the loop
        # would then sleep on, and stopping wait for ever. Told and woken, it ends anyway.
        self._stopping = True
        self._woken.set()
        await cancel_and_wait(self._task)
