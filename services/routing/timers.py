"""Deadline timers: one per open chat, set for the earliest instant it changes by itself.

Every routing replica keeps a timer for every open chat it sees (its own writes and the
bucket watcher's), so a replica that dies takes no deadline with it. When a timer fires,
each replica applies `due` with a compare-and-set: one wins, and the others re-read and
find nothing left to do.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from services.routing import domain
from shared.clock import Clock
from shared.schemas.chat import ChatState

log = logging.getLogger(__name__)

# Replicas fire a little apart, so that usually one acts and the rest see its write first.
JITTER_S = 0.05
RETRY_S = 1.0


class DeadlineTimers:
    def __init__(
        self,
        clock: Clock,
        timing: domain.Timing,
        fire: Callable[[str, str], Awaitable[domain.Transition]],
    ) -> None:
        self.clock = clock
        self.timing = timing
        self.fire = fire
        self._handles: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def track(self, state: ChatState) -> None:
        """(Re)arm the chat's timer for its current state; disarm it when nothing is due."""
        chat = state.chat
        key = chat.id
        old = self._handles.pop(key, None)
        if old is not None:
            old.cancel()
        instants = domain.deadlines(state, self.timing)
        if not instants:
            return
        delay = (min(instants) - self.clock.now()).total_seconds()
        self._arm(key, chat.institution, chat.id, max(0.0, delay) + random.uniform(0, JITTER_S))

    def _arm(self, key: str, institution: str, chat_id: str, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._handles[key] = loop.call_later(delay, self._start, key, institution, chat_id)

    def _start(self, key: str, institution: str, chat_id: str) -> None:
        self._handles.pop(key, None)
        task = asyncio.create_task(self._run(key, institution, chat_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, key: str, institution: str, chat_id: str) -> None:
        try:
            transition = await self.fire(institution, chat_id)
        except Exception:
            log.exception("deadline of chat %s failed; trying again", chat_id)
            if key not in self._handles:
                self._arm(key, institution, chat_id, RETRY_S)
            return
        if not transition.changed and key not in self._handles:
            # Fired a hair early, or the deadline moved: wait for the next one.
            self.track(transition.state)

    @property
    def armed(self) -> int:
        return len(self._handles)

    async def stop(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
