"""Stopping a background task: cancel it and wait until it has ended, so that nothing it
holds (a subscription, a cursor, a socket) outlives the owner that stopped it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` (None: nothing to stop) and wait for its end; the CancelledError it
    ends with is the expected outcome, not an error."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
