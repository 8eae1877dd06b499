"""Every replica's view of the consortium's configuration, followed from the config bucket
that the directory service writes (institutions, queues, widgets, staff accounts).

A saved change reaches every follower within milliseconds; a replica that must answer
after its own change waits for the change's revision (`until`), so a client reads its own
writes whichever replica it asks next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from typing import TypeVar

from nats.js.kv import KeyValue
from prometheus_client import Gauge
from pydantic import ValidationError

from shared import subjects
from shared.bus import BucketFollower
from shared.schemas.records import (
    WIDGET_ID_PATTERN,
    Account,
    Institution,
    Partnership,
    Queue,
    Snippet,
    Widget,
)

log = logging.getLogger(__name__)
WIDGET_ID = re.compile(WIDGET_ID_PATTERN)

Listener = Callable[[str, str], None]
REVISION = Gauge(
    "refdesk_config_revision", "Newest config bucket revision this replica's view has applied"
)


class ConfigView:
    def __init__(self, kv: KeyValue) -> None:
        self.institutions: dict[str, Institution] = {}
        self.queues: dict[str, Queue] = {}
        self.widgets: dict[str, Widget] = {}
        self.accounts: dict[str, Account] = {}
        self.partnerships: dict[str, Partnership] = {}
        self.snippets: dict[str, Snippet] = {}
        # The newest bucket revision applied, and how many changes so far (a snapshot
        # built from the view is current while `changes` has not moved).
        self.revision = 0
        self.changes = 0
        self.listeners: list[Listener] = []
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._follower = BucketFollower(kv, self._followed)

    async def start(self) -> None:
        await self._follower.start()

    async def stop(self) -> None:
        await self._follower.stop()

    async def until(self, revision: int, timeout_s: float = 2.0) -> bool:
        """Wait until this view has applied `revision`; False if it did not in time."""
        if self.revision >= revision:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (revision, waiter)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError:
            return False
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)
        return True

    def account(self, username: str) -> Account | None:
        return self.accounts.get(username)

    def widget(self, widget_id: str) -> Widget | None:
        """A widget by id; a string that cannot be a widget id is not looked up at all."""
        return self.widgets.get(widget_id) if WIDGET_ID.match(widget_id) else None

    def partners_of(self, institution: str) -> frozenset[str]:
        """The institutions that cover for `institution` (not itself)."""
        found = {
            other
            for partnership in self.partnerships.values()
            if institution in partnership.institutions
            for other in partnership.institutions
        }
        return frozenset(found - {institution})

    def zone_of(self, institution: str) -> str:
        found = self.institutions.get(institution)
        return found.timezone if found is not None else "UTC"

    def backups(self) -> frozenset[str]:
        return frozenset(i.name for i in self.institutions.values() if i.kind == "backup")

    def _followed(self, key: str, value: bytes | None, revision: int) -> None:
        kind, name = subjects.config_kind(key)
        try:
            self._apply(kind, name, value)
        except ValidationError:
            log.warning("unreadable configuration entry %s", key)
        self.revision = max(self.revision, revision)
        REVISION.set(self.revision)
        self.changes += 1
        for listener in self.listeners:
            listener(kind, name)
        for wanted, waiter in list(self._waiters):
            if wanted <= self.revision and not waiter.done():
                waiter.set_result(None)

    def _apply(self, kind: str, name: str, value: bytes | None) -> None:
        if kind == "institution":
            _put(self.institutions, name, value, Institution)
        elif kind == "queue":
            _put(self.queues, name, value, Queue)
        elif kind == "widget":
            _put(self.widgets, name, value, Widget)
        elif kind == "user":
            _put(self.accounts, name, value, Account)
        elif kind == "partnership":
            _put(self.partnerships, name, value, Partnership)
        elif kind == "snippet":
            _put(self.snippets, name, value, Snippet)


T = TypeVar("T", Institution, Queue, Widget, Account, Partnership, Snippet)


def _put(into: dict[str, T], name: str, value: bytes | None, model: type[T]) -> None:
    if value is None:
        into.pop(name, None)
    else:
        into[name] = model.model_validate_json(value)
