"""How far behind a process's event loop is: the host-local sign of overload.

A loop with more work than CPU runs every callback late. A small task asks to wake every
`interval_s` and measures how late it woke; while that lag is over the threshold, the
process refuses new work as `busy` (with a retry hint) rather than queueing it, so what it
does accept is still answered promptly. Loop time, not the injected clock: this is about
the CPU, not about the time of day.
"""

from __future__ import annotations

import asyncio

from shared.tasks import cancel_and_wait


class LoopLag:
    def __init__(self, threshold_s: float = 0.1, interval_s: float = 0.05) -> None:
        self.threshold_s = threshold_s
        self.interval_s = interval_s
        self.lag_s = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def behind(self) -> bool:
        return self.lag_s > self.threshold_s

    def start(self) -> None:
        """Start watching (once; later calls change nothing)."""
        if self._task is not None:
            return
        loop = asyncio.get_running_loop()

        async def watch() -> None:
            while True:
                expected = loop.time() + self.interval_s
                await asyncio.sleep(self.interval_s)
                # Falls back at once when the loop catches up; rises with each late wake.
                self.lag_s = max(0.0, loop.time() - expected)

        self._task = asyncio.create_task(watch())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
