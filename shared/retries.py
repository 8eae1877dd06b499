"""Read, decide, write conditionally, and on a lost race do it all again: the one loop
every compare-and-set in refdesk goes through (a chat's record, an operator's session)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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
