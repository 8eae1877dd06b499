"""Open sockets of this gateway replica and who should hear what.

Each socket has a bounded outbox drained by its own writer task, so one slow client can
never stall delivery to the others: when its outbox is full it is closed instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from starlette.websockets import WebSocket

from services.gateway import metrics
from shared.schemas.base import Model

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, ws: WebSocket, kind: str, limit: int) -> None:
        self.ws = ws
        self.kind = kind
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=limit)
        self._writer = asyncio.create_task(self._drain())
        self.closing = False

    def send(self, frame: Model) -> None:
        self.send_text(frame.model_dump_json())

    def send_text(self, text: str) -> None:
        if self.closing:
            return
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            metrics.SLOW_CLIENTS.inc()
            self.close(1013)

    def close(self, code: int = 1000) -> None:
        """Deliver what is queued, then close the socket with `code`."""
        if self.closing:
            return
        self.closing = True
        self._close_code = code
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)
        if self._queue.full():
            # No room even for the close marker: drop what is queued and close now.
            self._writer.cancel()
            self._closer = asyncio.create_task(self._close_now(code))

    async def _close_now(self, code: int) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code)

    async def _drain(self) -> None:
        try:
            while True:
                text = await self._queue.get()
                if text is None:
                    await self._close_now(self._close_code)
                    return
                await self.ws.send_text(text)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.closing = True

    async def finish(self, code: int = 1000, timeout: float = 2.0) -> None:
        """Close after what is queued has been written, waiting at most `timeout`."""
        self.close(code)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(self._writer), timeout)

    async def stop(self) -> None:
        self.closing = True
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._writer


@dataclass(eq=False)
class PatronLink:
    outbox: Outbox
    institution: str
    widget: str
    guest_id: str
    name: str = "Patron"
    chats: set[str] = field(default_factory=set)


@dataclass(eq=False)
class OperatorLink:
    outbox: Outbox
    institution: str
    username: str
    name: str
    role: str
    session_id: str
    status: str = "offline"
    monitoring: frozenset[str] = frozenset()
    max_chats: int | None = None
    # The token generation the socket signed in with (see domain.current_account).
    generation: int = 0


class Hub:
    def __init__(self) -> None:
        self.patrons_by_chat: dict[str, set[PatronLink]] = defaultdict(set)
        self.patrons_by_guest: dict[str, set[PatronLink]] = defaultdict(set)
        self.patrons_by_widget: dict[str, set[PatronLink]] = defaultdict(set)
        self.operators: dict[str, OperatorLink] = {}
        self.sessions: dict[str, OperatorLink] = {}
        self.watchers: dict[str, set[OperatorLink]] = defaultdict(set)
        self.chat_owners: dict[str, str] = {}

    def track_owner(self, chat_id: str, owner: str | None) -> None:
        """Remember who owns each followed chat, as its events tell it (typing notices go
        to the owner, and a chat owned here is followed)."""
        if owner is None:
            self.chat_owners.pop(chat_id, None)
        else:
            self.chat_owners[chat_id] = owner

    def watches_chat(self, chat_id: str) -> bool:
        """Whether a socket of this replica watches the chat: its patron, or its owner."""
        return bool(self.patrons_by_chat.get(chat_id)) or (
            self.chat_owners.get(chat_id) in self.operators
        )

    def forget_chat(self, chat_id: str) -> None:
        self.chat_owners.pop(chat_id, None)

    def chats_owned_by(self, username: str) -> list[str]:
        return [chat for chat, owner in self.chat_owners.items() if owner == username]

    # patrons
    def add_patron(self, link: PatronLink) -> None:
        self.patrons_by_guest[link.guest_id].add(link)
        self.patrons_by_widget[link.widget].add(link)

    def guest_connected(self, guest_id: str) -> bool:
        return bool(self.patrons_by_guest.get(guest_id))

    def follow_chat(self, link: PatronLink, chat_id: str) -> None:
        link.chats.add(chat_id)
        self.patrons_by_chat[chat_id].add(link)

    def unfollow_chat(self, link: PatronLink, chat_id: str) -> None:
        link.chats.discard(chat_id)
        followers = self.patrons_by_chat.get(chat_id)
        if followers is not None:
            followers.discard(link)
            if not followers:
                del self.patrons_by_chat[chat_id]

    def remove_patron(self, link: PatronLink) -> list[str]:
        """Forget a closed patron socket; returns the chats no other socket of this
        replica follows any more (their patron may have left)."""
        orphaned = []
        for chat_id in list(link.chats):
            self.unfollow_chat(link, chat_id)
            if chat_id not in self.patrons_by_chat:
                orphaned.append(chat_id)
        links = self.patrons_by_guest.get(link.guest_id)
        if links is not None:
            links.discard(link)
            if not links:
                del self.patrons_by_guest[link.guest_id]
        on_widget = self.patrons_by_widget.get(link.widget)
        if on_widget is not None:
            on_widget.discard(link)
            if not on_widget:
                del self.patrons_by_widget[link.widget]
        return orphaned

    def end_chat(self, chat_id: str) -> None:
        """A chat closed: its patron sockets stop following it (and may start another)."""
        for link in list(self.patrons_by_chat.get(chat_id, ())):
            self.unfollow_chat(link, chat_id)

    # operators
    def add_operator(self, link: OperatorLink) -> None:
        self.operators[link.username] = link
        self.sessions[link.session_id] = link

    def set_monitoring(self, link: OperatorLink, queues: frozenset[str]) -> None:
        for queue in link.monitoring - queues:
            self.watchers[queue].discard(link)
        for queue in queues:
            self.watchers[queue].add(link)
        link.monitoring = queues

    def remove_operator(self, link: OperatorLink) -> None:
        self.set_monitoring(link, frozenset())
        self.sessions.pop(link.session_id, None)
        if self.operators.get(link.username) is link:
            del self.operators[link.username]

    def owner(self, username: str | None) -> OperatorLink | None:
        return self.operators.get(username) if username else None

    def staff_of(self, institution: str) -> list[OperatorLink]:
        return [link for link in self.operators.values() if link.institution == institution]
