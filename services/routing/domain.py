"""The chat state machine: pure functions of (state, command, now) -> transition.

No I/O here. Handlers load the chat's state with its key-value revision, call one of these,
write the new state with a compare-and-set on that revision and publish the events. A
refusal is raised as `Refusal` with the protocol's error code and changes nothing.

    created --> queued --claim--> active --close--> closed
                  |                  ^  \\
                  |                  |   message (owner or patron)
                  +--patron leaves--> missed

Closing a chat that is already closed or missed is an idempotent no-op (`changed=False`):
a retried close, or a patron and an operator closing at once, must not fail either side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from shared.clock import iso
from shared.errors import Refusal
from shared.schemas.chat import Chat, ChatState, Message, Patron, Sender
from shared.schemas.events import (
    ChatClaimed,
    ChatClosed,
    ChatCreated,
    ChatEvent,
    ChatMissed,
    ChatQueued,
    ChatTagged,
    MessagePosted,
)

OPEN_STATES = frozenset({"queued", "active", "transferring"})


@dataclass(frozen=True)
class Transition:
    state: ChatState
    events: list[ChatEvent] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.events)


@dataclass(frozen=True)
class NewChat:
    chat_id: str
    institution: str
    widget: str
    queue: str
    guest_id: str
    question: str
    name: str | None
    email: str | None
    reason: str


def _evolve(state: ChatState, chat: Chat, *, last_seq: int | None = None, events: int) -> ChatState:
    return ChatState(
        chat=chat,
        last_seq=state.last_seq if last_seq is None else last_seq,
        events=events,
    )


def _event_id(chat_id: str, n: int) -> str:
    return f"{chat_id}.{n}"


def normalize_tags(tags: list[str]) -> list[str]:
    """Lower-case, trimmed, de-duplicated, in first-seen order."""
    seen: dict[str, None] = {}
    for tag in tags:
        clean = " ".join(tag.lower().split())
        if not clean:
            raise Refusal("invalid", "a tag cannot be empty")
        seen.setdefault(clean, None)
    return list(seen)


def start_chat(cmd: NewChat, now: datetime) -> Transition:
    """A patron's new chat: created, its question as message 1, and queued."""
    ts = iso(now)
    chat = Chat(
        id=cmd.chat_id,
        queue=cmd.queue,
        institution=cmd.institution,
        state="queued",
        created_at=ts,
        patron=Patron(guest_id=cmd.guest_id, name=cmd.name, email=cmd.email),
        widget=cmd.widget,
        question=cmd.question,
    )
    state = ChatState(chat=chat, last_seq=1, events=3)
    sender = Sender(kind="patron", name=cmd.name or "Patron", id=cmd.guest_id)
    question = Message(
        id=f"{cmd.chat_id}-1", chat_id=cmd.chat_id, seq=1, from_=sender, body=cmd.question, ts=ts
    )
    events: list[ChatEvent] = [
        ChatCreated(id=_event_id(chat.id, 1), n=1, ts=ts, chat=chat, question=cmd.question),
        MessagePosted(id=_event_id(chat.id, 2), n=2, ts=ts, chat=chat, message=question),
        ChatQueued(
            id=_event_id(chat.id, 3), n=3, ts=ts, chat=chat, queue=cmd.queue, reason=cmd.reason
        ),
    ]
    return Transition(state, events)


def _require_open(chat: Chat) -> None:
    if chat.state not in OPEN_STATES:
        raise Refusal("gone", f"chat {chat.id} is {chat.state}")


def claim(
    state: ChatState, operator: str, operator_name: str, monitoring: list[str], now: datetime
) -> Transition:
    """An operator who monitors the chat's queue takes it; anyone racing them gets `conflict`."""
    chat = state.chat
    _require_open(chat)
    if chat.state == "queued" and chat.queue not in monitoring:
        raise Refusal("forbidden", f"you do not monitor {chat.queue}")
    if chat.state != "queued":
        if chat.owner == operator:
            raise Refusal("conflict", "you already own this chat", owner=chat.owner)
        raise Refusal("conflict", f"chat already claimed by {chat.owner}", owner=chat.owner)
    ts = iso(now)
    claimed = chat.model_copy(
        update={"state": "active", "owner": operator, "owner_name": operator_name, "claimed_at": ts}
    )
    wait_s = max(0.0, (now - datetime.fromisoformat(chat.created_at)).total_seconds())
    n = state.events + 1
    event = ChatClaimed(
        id=_event_id(chat.id, n),
        n=n,
        ts=ts,
        chat=claimed,
        operator=operator,
        operator_name=operator_name,
        wait_s=round(wait_s, 3),
    )
    return Transition(_evolve(state, claimed, events=n), [event])


def _may_write(chat: Chat, sender: Sender) -> None:
    if sender.kind == "patron":
        if sender.id != chat.patron.guest_id:
            raise Refusal("forbidden", "this is not your chat")
    elif sender.kind == "operator":
        if chat.owner != sender.id:
            raise Refusal("forbidden", "only the chat's owner may do that", owner=chat.owner)


def post_message(state: ChatState, sender: Sender, body: str, now: datetime) -> Transition:
    """A message from the patron or the owning operator, numbered with the next `seq`."""
    chat = state.chat
    _require_open(chat)
    _may_write(chat, sender)
    seq = state.last_seq + 1
    n = state.events + 1
    ts = iso(now)
    message = Message(
        id=f"{chat.id}-{seq}", chat_id=chat.id, seq=seq, from_=sender, body=body, ts=ts
    )
    event = MessagePosted(id=_event_id(chat.id, n), n=n, ts=ts, chat=chat, message=message)
    return Transition(_evolve(state, chat, last_seq=seq, events=n), [event])


def tag(state: ChatState, by: Sender, tags: list[str], now: datetime) -> Transition:
    """The owner adds tags (existing tags stay; repeating one changes nothing)."""
    chat = state.chat
    if by.kind != "operator":
        raise Refusal("forbidden", "only staff may tag a chat")
    if chat.owner != by.id:
        raise Refusal("forbidden", "only the chat's owner may tag it", owner=chat.owner)
    merged = normalize_tags([*chat.tags, *tags])
    if merged == chat.tags:
        return Transition(state)
    tagged = chat.model_copy(update={"tags": merged})
    n = state.events + 1
    event = ChatTagged(id=_event_id(chat.id, n), n=n, ts=iso(now), chat=tagged, by=by, tags=merged)
    return Transition(_evolve(state, tagged, events=n), [event])


def close(state: ChatState, by: Sender, tags: list[str], now: datetime) -> Transition:
    """Close by the owner or the patron. A chat nobody claimed closes as `missed`."""
    chat = state.chat
    if chat.state not in OPEN_STATES:
        return Transition(state)
    _may_write(chat, by)
    if by.kind == "operator" and chat.state == "queued":
        raise Refusal("forbidden", "claim the chat before closing it")
    ts = iso(now)
    merged = normalize_tags([*chat.tags, *tags]) if by.kind == "operator" else chat.tags
    n = state.events + 1
    if chat.state == "queued":
        missed = chat.model_copy(update={"state": "missed", "closed_at": ts})
        event: ChatEvent = ChatMissed(
            id=_event_id(chat.id, n), n=n, ts=ts, chat=missed, reason="patron_left"
        )
        return Transition(_evolve(state, missed, events=n), [event])
    reason = "closed_by_operator" if by.kind == "operator" else "closed_by_patron"
    closed = chat.model_copy(update={"state": "closed", "closed_at": ts, "tags": merged})
    event = ChatClosed(id=_event_id(chat.id, n), n=n, ts=ts, chat=closed, by=by, reason=reason)
    return Transition(_evolve(state, closed, events=n), [event])


def queue_position(waiting: list[Chat], chat_id: str) -> int:
    """1-based position of a chat among a queue's waiting chats, oldest first; 0 if absent."""
    ordered = sorted(waiting, key=lambda c: (c.created_at, c.id))
    for index, chat in enumerate(ordered, start=1):
        if chat.id == chat_id:
            return index
    return 0


def estimate_wait(recent_waits: list[float]) -> int | None:
    """Median of recent claim waits for the queue, in whole seconds; None without history."""
    if not recent_waits:
        return None
    ordered = sorted(recent_waits)
    return round(ordered[len(ordered) // 2])
