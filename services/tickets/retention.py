"""Tickets' retention: on a schedule, each library's closed tickets older than its
`retention_days` are deleted with any mail of theirs still queued. A ticket is a patron's
correspondence (address, question, the conversation) and feeds no statistics, so there is
nothing to keep by anonymising it. Open and pending tickets stay, however old.

Idempotent (a ticket is found again until it is gone), so replicas may each run it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from services.tickets import metrics
from services.tickets.store import TicketStore
from shared.clock import Clock
from shared.periodic import Periodic
from shared.schemas.records import Institution

log = logging.getLogger(__name__)


@dataclass(eq=False)
class TicketRetention:
    store: TicketStore
    policies: Callable[[], dict[str, Institution]]
    clock: Clock
    every: timedelta
    batch: int = 500

    def __post_init__(self) -> None:
        self._runs = Periodic("ticket retention", self.clock, self.every, self.run_once)

    async def run_once(self) -> int:
        """Apply every library's retention as of now; the number of tickets deleted."""
        deleted = 0
        now = self.clock.now()
        for name, policy in sorted(self.policies().items()):
            cutoff = policy.retention_cutoff(now)
            while ids := await self.store.closed_before(name, cutoff, self.batch):
                done = await self.store.delete(ids)
                deleted += done
                if done == 0:
                    log.error("ticket retention of %s made no progress", name)
                    break
        metrics.RETAINED.inc(deleted)
        if deleted:
            log.info("retention: %d closed tickets deleted", deleted)
        return deleted

    def start(self) -> None:
        self._runs.start()

    async def stop(self) -> None:
        await self._runs.stop()
