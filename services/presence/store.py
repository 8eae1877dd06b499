"""Presence's persistence: one entry per operator in a key-value bucket whose entries expire
unless heartbeats refresh them, and an index of live sessions kept by a watcher."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from services.presence import domain
from shared import subjects
from shared.bus import BucketFollower, delete_if_last
from shared.errors import StaleRevision
from shared.schemas.requests import Desk, Session

log = logging.getLogger(__name__)


class SessionStore:
    def __init__(
        self, kv: KeyValue, on_expired: Callable[[Session], Coroutine[Any, Any, None]] | None = None
    ) -> None:
        self.kv = kv
        self.on_expired = on_expired
        self._live: dict[str, Session] = {}
        # The newest revision seen of each key, by our own writes or the watcher: the
        # watcher may deliver an older revision after this replica wrote a newer one.
        self._seen: dict[str, int] = {}
        self._follower = BucketFollower(kv, self._followed)
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, institution: str, operator: str) -> tuple[Session | None, int]:
        """The operator's session and the entry's revision (0 when there is none)."""
        try:
            entry = await self.kv.get(subjects.presence_key(institution, operator))
        except KeyNotFoundError:
            return None, 0
        revision = entry.revision or 0
        if not entry.value:
            return None, revision
        return Session.model_validate_json(entry.value), revision

    async def write(self, session: Session, revision: int) -> None:
        """Compare-and-set: raises StaleRevision if the entry changed since `revision`."""
        key = subjects.presence_key(session.institution, session.operator)
        try:
            if revision == 0:
                written = await self.kv.create(key, session.to_json())
            else:
                written = await self.kv.update(key, session.to_json(), last=revision)
        except KeyWrongLastSequenceError as exc:
            raise StaleRevision(key) from exc
        if self._newer(key, written):
            self._live[key] = session

    async def remove(self, session: Session, revision: int) -> None:
        key = subjects.presence_key(session.institution, session.operator)
        await delete_if_last(self.kv, key, revision)
        self._live.pop(key, None)
        self._seen[key] = max(self._seen.get(key, 0), revision)

    def live(self) -> list[Session]:
        return list(self._live.values())

    def _newer(self, key: str, revision: int) -> bool:
        if revision and revision <= self._seen.get(key, 0):
            return False
        self._seen[key] = revision
        return True

    def _followed(self, key: str, value: bytes | None, revision: int) -> None:
        if not self._newer(key, revision):
            return  # older than what this replica already holds
        if value is None:
            gone = self._live.pop(key, None)
            # A deletion this replica did not make itself: an expiry, or a close by another
            # replica (which has said so already; a repeat is harmless to listeners).
            if gone is not None and self.on_expired is not None:
                task = asyncio.create_task(self.on_expired(gone))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        else:
            self._live[key] = Session.model_validate_json(value)

    async def start_watching(self) -> None:
        await self._follower.start()

    async def stop(self) -> None:
        await self._follower.stop()


class DeskStore:
    """Each operator's desk as they last left it, kept across sessions (no expiry)."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def get(self, institution: str, operator: str) -> Desk | None:
        try:
            entry = await self.kv.get(subjects.presence_key(institution, operator))
        except KeyNotFoundError:
            return None
        return Desk.model_validate_json(entry.value) if entry.value else None

    async def keep(self, session: Session) -> None:
        # Last writer wins: a desk is one person's preference, changed by one client.
        key = subjects.presence_key(session.institution, session.operator)
        await self.kv.put(key, domain.desk_of(session).to_json())
