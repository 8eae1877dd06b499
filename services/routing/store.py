"""Routing's persistence: live chat state in the chats key-value bucket, queue configuration
from MongoDB.

Every write is a compare-and-set on the entry's revision. A watcher keeps an index of open
chats (for queue snapshots and positions) current with writes from every routing replica.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable
from datetime import datetime

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from services.routing.coverage import Directory
from services.routing.domain import OPEN_STATES
from shared import subjects
from shared.bus import BucketFollower
from shared.errors import Refusal
from shared.schemas.chat import Chat, ChatState
from shared.schemas.records import Institution, Queue, Widget
from shared.store import TenantCollection

log = logging.getLogger(__name__)
RECENT_WAITS = 20
# Chat ids remembered with their home institution after they close, for late requests.
HOMES_KEPT = 100_000
HOME_WAIT_S = 0.3
HOME_WAIT_STEPS = 6


class StaleRevision(Exception):
    """Someone else wrote the chat since we read it: re-read and decide again."""


class ChatStore:
    """Open chats as every routing replica sees them: its own writes and, through a watcher,
    everyone else's. `on_change` hears each newer state (the deadline timers use it)."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self.on_change: Callable[[ChatState], None] | None = None
        self._known: dict[str, tuple[ChatState, int]] = {}
        self._homes: OrderedDict[str, str] = OrderedDict()
        self._waits: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=RECENT_WAITS))
        self._follower = BucketFollower(kv, self._followed)

    async def home_of(self, chat_id: str, asking: str) -> str:
        """The home institution a chat is stored under. A backup service's operator asks
        about a library's chat by id alone. An id this replica has not seen yet is the
        asker's own, or one another replica has only just written: the watcher brings it
        within moments, so wait that long before looking under the asker's."""
        for _ in range(HOME_WAIT_STEPS):
            home = self._homes.get(chat_id)
            if home is not None:
                return home
            try:
                await self.kv.get(subjects.chat_key(asking, chat_id))
                return asking
            except KeyNotFoundError:
                await asyncio.sleep(HOME_WAIT_S / HOME_WAIT_STEPS)
        return asking

    def is_cached(self, institution: str, chat_id: str) -> bool:
        return subjects.chat_key(institution, chat_id) in self._known

    async def load(
        self, institution: str, chat_id: str, fresh: bool = False
    ) -> tuple[ChatState, int]:
        key = subjects.chat_key(institution, chat_id)
        if not fresh and key in self._known:
            return self._known[key]
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError as exc:
            raise Refusal("not_found", f"no chat {chat_id}") from exc
        assert entry.value is not None and entry.revision is not None
        state = ChatState.model_validate_json(entry.value)
        self._observe(key, state, entry.revision)
        return state, entry.revision

    async def create(self, state: ChatState) -> int:
        key = subjects.chat_key(state.chat.institution, state.chat.id)
        try:
            revision = await self.kv.create(key, state.to_json())
        except KeyWrongLastSequenceError as exc:
            raise Refusal("conflict", f"chat {state.chat.id} already exists") from exc
        self._observe(key, state, revision)
        return revision

    async def replace(self, state: ChatState, revision: int) -> int:
        key = subjects.chat_key(state.chat.institution, state.chat.id)
        try:
            new_revision = await self.kv.update(key, state.to_json(), last=revision)
        except KeyWrongLastSequenceError as exc:
            self._known.pop(key, None)
            raise StaleRevision(key) from exc
        self._observe(key, state, new_revision)
        return new_revision

    def _observe(self, key: str, state: ChatState, revision: int) -> None:
        known = self._known.get(key)
        if known and known[1] >= revision:
            return
        if state.chat.id not in self._homes:
            self._homes[state.chat.id] = state.chat.institution
            if len(self._homes) > HOMES_KEPT:
                self._homes.popitem(last=False)
        if known and known[0].chat.state == "queued" and state.chat.state == "active":
            created = known[0].chat.created_at
            claimed = state.chat.claimed_at
            if claimed:
                wait = datetime.fromisoformat(claimed) - datetime.fromisoformat(created)
                self._waits[state.chat.queue].append(wait.total_seconds())
        if state.chat.state in OPEN_STATES:
            self._known[key] = (state, revision)
        else:
            self._known.pop(key, None)
        if self.on_change is not None:
            self.on_change(state)

    def open_chats(self, institution: str) -> list[ChatState]:
        return [s for s, _ in self._known.values() if s.chat.institution == institution]

    def open_chat_of_guest(self, institution: str, guest_id: str) -> Chat | None:
        for state in self.open_chats(institution):
            if state.chat.patron.guest_id == guest_id:
                return state.chat
        return None

    def owned_by(self, operator: str) -> list[Chat]:
        """An operator's open chats, whichever library's patrons asked them."""
        return [
            s.chat
            for s, _ in self._known.values()
            if s.chat.owner == operator and s.chat.state in ("active", "transferring")
        ]

    def waiting(self, queue: str) -> list[Chat]:
        """Chats waiting in a queue (queue names are unique across the consortium), from
        every library whose chats have fallen back or rolled over to it."""
        return [
            state.chat
            for state, _ in self._known.values()
            if state.chat.state == "queued" and state.chat.queue == queue
        ]

    def recent_waits(self, queue: str) -> list[float]:
        return list(self._waits[queue])

    def _followed(self, key: str, value: bytes | None, revision: int) -> None:
        if value is not None:
            self._observe(key, ChatState.model_validate_json(value), revision)

    async def start_watching(self) -> None:
        await self._follower.start()

    async def stop(self) -> None:
        await self._follower.stop()


class QueueDirectory:
    """Read access to queues, institutions, widgets and staff accounts (written by the
    gateway's admin API).

    Coverage needs the whole consortium's configuration at once (a chain crosses
    institutions), so it reads a snapshot of it, refreshed at most every `cache_s`.
    """

    def __init__(
        self,
        queues: TenantCollection,
        users: TenantCollection,
        institutions: TenantCollection,
        widgets: TenantCollection,
        cache_s: float,
    ) -> None:
        self.queues = queues
        self.users = users
        self.institutions = institutions
        self.widgets = widgets
        self.cache_s = cache_s
        self._snapshot: tuple[float, Directory] | None = None

    async def directory(self) -> Directory:
        now = time.monotonic()
        if self._snapshot is not None and now - self._snapshot[0] < self.cache_s:
            return self._snapshot[1]
        # Consortium-wide on purpose: fallback chains cross institutions by design.
        queues = await self.queues.raw.find({}, {"_id": 0}).to_list()
        institutions = await self.institutions.raw.find({}, {"_id": 0}).to_list()
        widgets = await self.widgets.raw.find({}, {"_id": 0}).to_list()
        directory = Directory(
            queues={q["name"]: Queue.model_validate(q) for q in queues},
            institutions={i["name"]: Institution.model_validate(i) for i in institutions},
            widgets={w["id"]: Widget.model_validate(w) for w in widgets},
        )
        self._snapshot = (now, directory)
        return directory

    async def get(self, institution: str, name: str) -> Queue:
        doc = await self.queues.find_one(institution, {"name": name}, {"_id": 0})
        if doc is None:
            raise Refusal("not_found", f"no queue {name}")
        return Queue.model_validate(doc)

    async def user_exists(self, institution: str, username: str) -> bool:
        return (
            await self.users.find_one(institution, {"username": username}, {"_id": 1}) is not None
        )
