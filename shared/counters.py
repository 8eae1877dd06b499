"""Counters shared by every replica of a service, in a key-value bucket whose entries
expire a window (the bucket's TTL) after their last change: a counter is bounded by what
happens within one window, survives no longer, and a replica restart or an attacker's many
keys cannot reset anyone's (no in-memory table to overflow). The gateway counts failed
sign-ins and offline messages with them, the tickets service acknowledgements per
recipient.

Keys are hashes of what they count (a user name, an address), so any input makes a valid
key and the bucket never holds the text itself.
"""

from __future__ import annotations

import hashlib

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from shared.errors import StaleRevision
from shared.retries import KeyedLocks, until_written

ATTEMPTS = 8


def counter_key(kind: str, value: str) -> str:
    return f"{kind}.{hashlib.sha256(value.encode()).hexdigest()[:32]}"


class Counters:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        # Requests of this replica counting one key take turns, so a burst of them spends
        # no writes losing to each other; replicas still race, and the revision decides.
        self._locks = KeyedLocks()

    async def read(self, key: str) -> tuple[int, int]:
        """The count and the entry's revision (0, 0 when there is none)."""
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return 0, 0
        return (int(entry.value) if entry.value else 0), entry.revision or 0

    async def count(self, key: str) -> int:
        return (await self.read(key))[0]

    async def add(self, key: str, by: int = 1) -> int:
        """Change a count atomically (written only over the revision it read, or created
        when there is none); returns the new count, never below zero. `by=-1` takes back
        one that should not have counted."""

        async def attempt(_: int) -> int:
            count, revision = await self.read(key)
            new = max(0, count + by)
            value = str(new).encode()
            try:
                if revision == 0:
                    await self.kv.create(key, value)
                else:
                    await self.kv.update(key, value, last=revision)
            except KeyWrongLastSequenceError as exc:
                raise StaleRevision(key) from exc
            return new

        async with self._locks.hold(key):
            return await until_written(
                attempt, ATTEMPTS, "too many attempts at once; wait a moment"
            )
