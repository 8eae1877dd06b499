"""The retention job: on a schedule, each library's chats older than its retention are
anonymised or deleted, as the library chose, and purged from the chat stream if still in it.

It sleeps on the injected clock, so a test moves the clock instead of waiting. Every step
is idempotent (a chat is found again until its last write is done), so replicas may each
run it, and a crash part-way costs nothing but a repeat.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from services.transcripts import metrics, privacy
from services.transcripts.store import TranscriptStore
from shared.clock import Clock
from shared.periodic import Periodic
from shared.schemas.records import Institution

log = logging.getLogger(__name__)

Purge = Callable[[str, str], Awaitable[int]]


@dataclass
class RetentionRun:
    """What one run did, counted."""

    anonymised: int = 0
    deleted: int = 0
    purged: int = 0


@dataclass(eq=False)
class RetentionJob:
    store: TranscriptStore
    policies: Callable[[], dict[str, Institution]]
    purge: Purge
    clock: Clock
    every: timedelta
    stream_max_age: timedelta
    batch: int = 500

    def __post_init__(self) -> None:
        self._runs = Periodic("transcript retention", self.clock, self.every, self.run_once)

    async def run_once(self) -> RetentionRun:
        """Apply every library's retention as of now, a batch at a time until done."""
        run = RetentionRun()
        now = self.clock.now()
        for name, policy in sorted(self.policies().items()):
            cutoff = policy.retention_cutoff(now)
            deleting = policy.retention_action == "delete"
            while True:
                due = await self.store.due(name, cutoff, deleting, self.batch)
                if not due:
                    break
                # The stream first: a chat still in it could otherwise be recorded again
                # by a redelivery, or tagged, after its transcript was cut.
                for chat in due:
                    if privacy.may_be_in_stream(chat.get("closed_at"), now, self.stream_max_age):
                        run.purged += await self.purge(name, chat["_id"])
                ids = [chat["_id"] for chat in due]
                if deleting:
                    done = (await self.store.delete(ids)).chats
                    run.deleted += done
                else:
                    done = await self.store.anonymise(ids)
                    run.anonymised += done
                if done == 0:
                    # Found due but not changed: stop rather than find the same again.
                    log.error("retention of %s made no progress; %d chats left", name, len(ids))
                    break
        metrics.RETENTION.labels("anonymised").inc(run.anonymised)
        metrics.RETENTION.labels("deleted").inc(run.deleted)
        if run.anonymised or run.deleted:
            log.info(
                "retention: %d chats anonymised, %d deleted, %d stream records purged",
                run.anonymised,
                run.deleted,
                run.purged,
            )
        return run

    def start(self) -> None:
        self._runs.start()

    async def stop(self) -> None:
        await self._runs.stop()
