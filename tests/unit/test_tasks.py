"""Stopping a background task ends it before the stop returns."""

from __future__ import annotations

import asyncio

from shared.tasks import cancel_and_wait


async def test_a_stopped_task_has_ended_and_ran_its_cleanup():
    started, cleaned = asyncio.Event(), asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    task = asyncio.create_task(forever())
    await started.wait()
    await cancel_and_wait(task)
    assert task.done() and task.cancelled()
    assert cleaned.is_set()
    await cancel_and_wait(task)  # stopping twice is harmless
    await cancel_and_wait(None)
