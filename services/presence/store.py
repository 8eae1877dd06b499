"""Presence's persistence: one entry per operator in a key-value bucket whose entries expire
unless heartbeats refresh them, and an index of live sessions kept by a watcher."""

from __future__ import annotations

import logging

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from shared import subjects
from shared.bus import BucketFollower
from shared.schemas.requests import Session

log = logging.getLogger(__name__)


class SessionStore:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self._live: dict[str, Session] = {}
        self._follower = BucketFollower(kv, self._followed)

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

    def _followed(self, key: str, value: bytes | None, _revision: int) -> None:
        if value is None:
            self._live.pop(key, None)
        else:
            self._live[key] = Session.model_validate_json(value)

    async def start_watching(self) -> None:
        await self._follower.start()

    async def stop(self) -> None:
        await self._follower.stop()
