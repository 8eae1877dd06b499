"""Routing's persistence: each chat's state is the last record of its subject in the chat
stream; queue configuration comes from MongoDB.

Every write is one record, conditional on the chat's last one (see `Bus.append_chat_record`):
state and events land together or not at all. A follower keeps an index of open chats (for
queue snapshots, positions and deadlines) current with every routing replica's writes.

A chat's last record that does not parse (routing writes none: a fault, or a forgery with
routing's credentials) is set aside on the dead-letter subject, once, and the chat goes on
from its last record that does (see `Bus.last_chat_record`): its patron and operator can
go on, and its deadline timer finds a state to act on rather than failing every second.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, defaultdict, deque
from collections.abc import Awaitable, Callable
from datetime import datetime

from nats.aio.msg import Msg
from pydantic import ValidationError

from services.routing import metrics
from services.routing.coverage import Directory
from services.routing.domain import OPEN_STATES, Transition
from shared import subjects
from shared.bus import STATE_HEADER, Bus, ChatFollower, describe_validation, record_id
from shared.configuration import ConfigView
from shared.errors import Refusal, StaleRevision
from shared.schemas.chat import Chat, ChatState
from shared.schemas.events import ChatRecord, parse_chat_record
from shared.schemas.records import Queue
from shared.schemas.requests import DeadLetter
from shared.tasks import cancel_and_wait

log = logging.getLogger(__name__)
RECENT_WAITS = 20
OWN_KEPT = 10_000
# The name routing's dead letters go under (`deadletter.routing`).
READER = "routing"
SET_ASIDE_KEPT = 10_000
PauseHook = Callable[[str, Transition], Awaitable[None]]
ENDED = frozenset({"closed", "missed"})


class ChatStore:
    """Open chats as every routing replica sees them: its own writes and, through the
    stream follower, everyone else's. `on_change` hears each newer state (the deadline
    timers use it). Chats are keyed by id alone: ids are unique across the consortium."""

    def __init__(self, bus: Bus, pause: PauseHook | None = None) -> None:
        self.bus = bus
        self.pause = pause
        self.on_change: Callable[[ChatState], None] | None = None
        self._known: dict[str, tuple[ChatState, int]] = {}
        self._waits: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=RECENT_WAITS))
        self._follower = ChatFollower(bus, self._followed)
        # Ids of records this replica is writing: the follower often hears one before the
        # publish's ack comes back, and need not decode what this replica already holds.
        self._own: OrderedDict[str, None] = OrderedDict()
        # Stream sequences of unreadable records this replica has set aside: each goes to
        # the dead letters once, however often it is read again.
        self._set_aside: OrderedDict[int, None] = OrderedDict()
        self._recovering: set[asyncio.Task[None]] = set()

    def is_cached(self, chat_id: str) -> bool:
        return chat_id in self._known

    async def load(self, chat_id: str, fresh: bool = False) -> tuple[ChatState, int]:
        """The chat's state and the stream sequence of its last record; `fresh` reads the
        stream even when this replica holds a copy (which may lag another's write)."""
        if not fresh and chat_id in self._known:
            return self._known[chat_id]
        found = await self.bus.last_chat_record(chat_id, unreadable=self._set_aside_record)
        if found is None:
            raise Refusal("not_found", f"no chat {chat_id}")
        record, seq = found
        self._observe(record.state, seq)
        return record.state, seq

    async def append(self, transition: Transition, after: int) -> int:
        """Write a transition as one record, if the chat's last record is still `after`
        (0 for a new chat). Raises `StaleRevision` when another write came first."""
        record = ChatRecord(state=transition.state, events=transition.events)
        if self.pause is not None:
            await self.pause("before", transition)
        msg_id = record_id(record)
        self._own[msg_id] = None
        if len(self._own) > OWN_KEPT:
            self._own.popitem(last=False)
        try:
            seq = await self.bus.append_chat_record(record, after, msg_id)
        except StaleRevision:
            self._known.pop(transition.state.chat.id, None)
            self._own.pop(msg_id, None)
            raise
        except BaseException:
            # It may have landed all the same: the follower must then take it in.
            self._own.pop(msg_id, None)
            raise
        if self.pause is not None:
            await self.pause("after", transition)
        self._observe(transition.state, seq)
        return seq

    async def create(self, transition: Transition) -> int:
        try:
            return await self.append(transition, 0)
        except StaleRevision as exc:
            chat_id = transition.state.chat.id
            raise Refusal("conflict", f"chat {chat_id} already exists") from exc

    def _observe(self, state: ChatState, seq: int) -> None:
        chat_id = state.chat.id
        known = self._known.get(chat_id)
        if known and known[1] >= seq:
            return
        if known and known[0].chat.state == "queued" and state.chat.state == "active":
            created = known[0].chat.created_at
            claimed = state.chat.claimed_at
            if claimed:
                wait = datetime.fromisoformat(claimed) - datetime.fromisoformat(created)
                self._waits[state.chat.queue].append(wait.total_seconds())
        if state.chat.state in OPEN_STATES:
            self._known[chat_id] = (state, seq)
        else:
            self._known.pop(chat_id, None)
        if self.on_change is not None:
            self.on_change(state)

    def _followed(self, msg: Msg) -> None:
        headers = msg.headers or {}
        msg_id = headers.get("Nats-Msg-Id", "")
        if msg_id in self._own:
            del self._own[msg_id]
            return  # this replica's own write: `append` records it
        chat_id = msg.subject.split(".")[2]
        seq = msg.metadata.sequence.stream
        known = self._known.get(chat_id)
        if known is not None and known[1] >= seq:
            return  # older than what this replica holds
        if known is None and headers.get(STATE_HEADER) in ENDED:
            return  # a chat that ended before this replica heard of it
        try:
            record = parse_chat_record(msg.data)
        except ValidationError:
            # Read again as a load does: set aside, and the chat as its last readable record.
            task = asyncio.create_task(self._recover(chat_id))
            self._recovering.add(task)
            task.add_done_callback(self._recovering.discard)
            return
        self._observe(record.state, seq)

    async def _recover(self, chat_id: str) -> None:
        try:
            await self.load(chat_id, fresh=True)
        except Refusal:
            pass  # no record of it parses: not a chat routing knows
        except Exception:
            log.exception("reading chat %s after an unreadable record failed", chat_id)

    async def _set_aside_record(
        self, subject: str, seq: int, data: bytes, error: ValidationError
    ) -> None:
        """An unreadable last record of a chat: logged, counted and published on the
        dead-letter subject once, however often it is read."""
        if seq in self._set_aside:
            return
        self._set_aside[seq] = None
        if len(self._set_aside) > SET_ASIDE_KEPT:
            self._set_aside.popitem(last=False)
        log.error("unreadable chat record on %s (#%d) set aside; the chat goes on", subject, seq)
        metrics.DEAD_LETTERS.inc()
        letter = DeadLetter(
            consumer=READER,
            subject=subject,
            stream_seq=seq,
            error=describe_validation(error)[:500],
            data=data.decode(errors="replace")[:65536],
        )
        await self.bus.publish(subjects.dead_letters(READER), letter)

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

    async def start_watching(self) -> None:
        await self._follower.start()

    async def stop(self) -> None:
        await self._follower.stop()
        for task in list(self._recovering):
            await cancel_and_wait(task)


class QueueDirectory:
    """Routing's reads of configuration, from this replica's view of the config bucket
    (written by the directory service; a saved change arrives within moments).

    Coverage needs the whole consortium's configuration at once (a chain crosses
    institutions), so it reads one `Directory` snapshot, rebuilt only after the view
    changed: its schedules are worked out once per configuration.
    """

    def __init__(self, view: ConfigView) -> None:
        self.view = view
        self._snapshot: tuple[int, Directory] | None = None

    async def directory(self) -> Directory:
        if self._snapshot is not None and self._snapshot[0] == self.view.changes:
            return self._snapshot[1]
        directory = Directory(
            queues=dict(self.view.queues),
            institutions=dict(self.view.institutions),
            widgets=dict(self.view.widgets),
        )
        self._snapshot = (self.view.changes, directory)
        return directory

    async def get(self, institution: str, name: str) -> Queue:
        queue = self.view.queues.get(name)
        if queue is None or queue.institution != institution:
            raise Refusal("not_found", f"no queue {name}")
        return queue

    def partners_of(self, institution: str) -> frozenset[str]:
        return self.view.partners_of(institution)
