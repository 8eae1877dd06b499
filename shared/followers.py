"""Followers that keep a replica's view current: of a key-value bucket (configuration,
presence) and of the chat stream (every chat's last record, then each new one)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nats.aio.msg import Msg
from nats.js.api import (
    ConsumerConfig,
    DeliverPolicy,
)
from nats.js.kv import KeyValue

from shared import subjects
from shared.tasks import cancel_and_wait

if TYPE_CHECKING:
    from shared.bus import Bus

log = logging.getLogger(__name__)


class BucketFollower:
    """Keeps a replica's view of a key-value bucket current: `on_entry(key, value)` for each
    current entry and every later change (`value` None for a deletion or expiry)."""

    def __init__(self, kv: KeyValue, on_entry: Callable[[str, bytes | None, int], None]) -> None:
        self.kv = kv
        self.on_entry = on_entry
        self._task: asyncio.Task[None] | None = None

    async def start(self, initial_timeout: float = 10.0) -> None:
        """Start following; returns once the bucket's current entries have been seen."""
        watcher = await self.kv.watchall()
        caught_up = asyncio.Event()

        async def follow() -> None:
            async for entry in watcher:
                if entry is None:  # the watcher's marker: current entries delivered
                    caught_up.set()
                    continue
                deleted = entry.operation in ("DEL", "PURGE") or not entry.value
                try:
                    self.on_entry(entry.key, None if deleted else entry.value, entry.revision or 0)
                except ValueError:
                    log.warning("unreadable key-value entry %s", entry.key)

        self._task = asyncio.create_task(follow())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(caught_up.wait(), timeout=initial_timeout)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)


class ChatFollower:
    """Keeps a replica's view of the chats current: `on_record(msg)` for the last record of
    every chat in the stream (each chat's current state), then for every new record."""

    def __init__(self, bus: Bus, on_record: Callable[[Msg], None]) -> None:
        self.bus = bus
        self.on_record = on_record
        self._sub: Any = None

    async def start(self, initial_timeout: float = 10.0) -> None:
        """Start following; returns once every chat's current record has been seen."""
        info = await self.bus.js.stream_info(subjects.CHAT_STREAM)
        last = info.state.last_seq
        caught_up = asyncio.Event()
        if last == 0:
            caught_up.set()

        async def follow(msg: Msg) -> None:
            try:
                self.on_record(msg)
            except ValueError:
                log.warning("unreadable chat record on %s", msg.subject)
            if not caught_up.is_set() and msg.metadata.sequence.stream >= last:
                caught_up.set()

        self._sub = await self.bus.js.subscribe(
            subjects.chat_events_all(),
            stream=subjects.CHAT_STREAM,
            ordered_consumer=True,
            cb=follow,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.LAST_PER_SUBJECT),
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(caught_up.wait(), timeout=initial_timeout)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
