"""Presence's persistence: one entry per operator in a key-value bucket whose entries expire
unless heartbeats refresh them, and an index of live sessions kept by a watcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from shared import subjects
from shared.schemas.requests import Session

log = logging.getLogger(__name__)


class SessionStore:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self._live: dict[str, Session] = {}
        self._watch_task: asyncio.Task[None] | None = None

    async def get(self, institution: str, operator: str) -> Session | None:
        try:
            entry = await self.kv.get(subjects.presence_key(institution, operator))
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        return Session.model_validate_json(entry.value)

    async def put(self, session: Session) -> None:
        key = subjects.presence_key(session.institution, session.operator)
        await self.kv.put(key, session.to_json())
        self._live[key] = session

    async def remove(self, session: Session) -> None:
        key = subjects.presence_key(session.institution, session.operator)
        await self.kv.delete(key)
        self._live.pop(key, None)

    def live(self) -> list[Session]:
        return list(self._live.values())

    async def start_watching(self) -> None:
        watcher = await self.kv.watchall()
        ready = asyncio.Event()

        async def follow() -> None:
            async for entry in watcher:
                if entry is None:
                    ready.set()
                    continue
                if entry.operation in ("DEL", "PURGE") or not entry.value:
                    self._live.pop(entry.key, None)
                    continue
                try:
                    self._live[entry.key] = Session.model_validate_json(entry.value)
                except ValueError:
                    log.warning("unreadable session at %s", entry.key)

        self._watch_task = asyncio.create_task(follow())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), timeout=10)

    async def stop(self) -> None:
        if self._watch_task:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
