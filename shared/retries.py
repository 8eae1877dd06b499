"""Read, decide, write conditionally, and on a lost race do it all again: the one loop
every compare-and-set in refdesk goes through (a chat's record, an operator's session)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from shared.errors import Refusal, StaleRevision

T = TypeVar("T")


async def until_written(attempt: Callable[[int], Awaitable[T]], attempts: int, busy: str) -> T:
    """Run `attempt(n)` for n = 0, 1, ... until it returns. It raises `StaleRevision` when
    what it read is no longer current (another writer came first, or a cached copy may be
    stale): it is then run again, to read and decide afresh, at most `attempts` times in
    all; after that the caller is refused with `conflict` and the message `busy`."""
    for n in range(attempts):
        try:
            return await attempt(n)
        except StaleRevision:
            continue
    raise Refusal("conflict", busy)


class KeyedLocks:
    """One lock per key, kept only while someone holds or awaits it. Requests racing for
    one record on one replica take turns at their first, cached attempt: the first writes,
    and the rest decide on what it wrote instead of each spending a write to lose."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        held = self._locks.get(key)
        lock, users = held if held is not None else (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
