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
from datetime import datetime, timedelta

from services.routing import domain
from shared.clock import Clock
from shared.schemas.chat import ChatState

log = logging.getLogger(__name__)

# Replicas fire a little apart, so that usually one acts and the rest see its write first.
JITTER_S = 0.05
RETRY_S = 1.0


class DeadlineTimers:
    """One sleeper per open chat on the injected clock, so that tests move the clock
    instead of waiting."""

    def __init__(
        self,
        clock: Clock,
        timing: domain.Timing,
        fire: Callable[[str, str], Awaitable[domain.Transition]],
    ) -> None:
        self.clock = clock
        self.timing = timing
        self.fire = fire
        self._sleepers: dict[str, asyncio.Task[None]] = {}

    def track(self, state: ChatState) -> None:
        """(Re)arm the chat's timer for its current state; disarm it when nothing is due."""
        chat = state.chat
        old = self._sleepers.pop(chat.id, None)
        if old is not None:
            old.cancel()
        instants = domain.deadlines(state, self.timing)
        if not instants:
            return
        at = min(instants) + timedelta(seconds=random.uniform(0, JITTER_S))
        self._arm(chat.institution, chat.id, at)

    def _arm(self, institution: str, chat_id: str, at: datetime) -> None:
        task = asyncio.create_task(self._wait_and_fire(institution, chat_id, at))
        self._sleepers[chat_id] = task
        task.add_done_callback(lambda done: self._forget(chat_id, done))

    def _forget(self, chat_id: str, task: asyncio.Task[None]) -> None:
        if self._sleepers.get(chat_id) is task:
            del self._sleepers[chat_id]

    async def _wait_and_fire(self, institution: str, chat_id: str, at: datetime) -> None:
        await self.clock.sleep_until(at)
        # From here on this task is the chat's firing, not its timer: a re-arm while it
        # runs (its own write comes back through `track`) must not cancel it.
        if self._sleepers.get(chat_id) is asyncio.current_task():
            del self._sleepers[chat_id]
        try:
            transition = await self.fire(institution, chat_id)
        except Exception:
            log.exception("deadline of chat %s failed; trying again", chat_id)
            if chat_id not in self._sleepers:
                retry = self.clock.now() + timedelta(seconds=RETRY_S)
                self._arm(institution, chat_id, retry)
            return
        if not transition.changed and chat_id not in self._sleepers:
            # Fired a hair early, or the deadline moved: wait for the next one.
            self.track(transition.state)

    @property
    def armed(self) -> int:
        return len(self._sleepers)

    async def stop(self) -> None:
        tasks = list(self._sleepers.values())
        self._sleepers.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
