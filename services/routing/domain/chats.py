"""A chat starts (from a patron, or proactively), is claimed, changes hands and closes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.routing.domain.state import (
    OPEN_STATES,
    Transition,
    _event_id,
    _evolve,
    _may_write,
    _next,
    _require_open,
)
from services.routing.domain.tags import NO_RULES, TagRules, normalize_tags
from shared.clock import iso
from shared.errors import Refusal
from shared.schemas.chat import (
    Chat,
    ChatState,
    Message,
    Patron,
    Sender,
    SkippedQueue,
)
from shared.schemas.events import (
    ChatClaimed,
    ChatClosed,
    ChatCreated,
    ChatEvent,
    ChatMissed,
    ChatQueued,
    MessagePosted,
)


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
    page: str | None = None
    queue_institution: str = ""
    chain: tuple[str, ...] = ()
    rollover_after_s: int | None = None
    skipped: tuple[SkippedQueue, ...] = ()


def start_chat(cmd: NewChat, now: datetime) -> Transition:
    """A patron's new chat: created, its question as message 1, and queued."""
    ts = iso(now)
    chat = Chat(
        id=cmd.chat_id,
        queue=cmd.queue,
        institution=cmd.institution,
        state="queued",
        created_at=ts,
        patron=Patron(guest_id=cmd.guest_id, name=cmd.name, email=cmd.email, page=cmd.page),
        widget=cmd.widget,
        question=cmd.question,
        queue_institution=cmd.queue_institution or cmd.institution,
        home_queue=cmd.chain[0] if cmd.chain else cmd.queue,
    )
    state = ChatState(
        chat=chat,
        last_seq=1,
        events=3,
        chain=list(cmd.chain) or [cmd.queue],
        queued_at=ts,
        rollover_after_s=cmd.rollover_after_s,
    )
    sender = Sender(kind="patron", name=cmd.name or "Patron", id=cmd.guest_id)
    question = Message(
        id=f"{cmd.chat_id}-1", chat_id=cmd.chat_id, seq=1, from_=sender, body=cmd.question, ts=ts
    )
    events: list[ChatEvent] = [
        ChatCreated(id=_event_id(chat.id, 1), n=1, ts=ts, chat=chat, question=cmd.question),
        MessagePosted(id=_event_id(chat.id, 2), n=2, ts=ts, chat=chat, message=question),
        ChatQueued(
            id=_event_id(chat.id, 3),
            n=3,
            ts=ts,
            chat=chat,
            queue=cmd.queue,
            reason=cmd.reason,
            skipped=list(cmd.skipped),
        ),
    ]
    return Transition(state, events)


@dataclass(frozen=True)
class NewProactiveChat:
    chat_id: str
    institution: str
    queue: str
    guest_id: str
    widget: str | None
    operator: str
    operator_name: str
    body: str
    patron_connected: bool


def start_proactive(cmd: NewProactiveChat, now: datetime) -> Transition:
    """An operator opens a chat with a guest: active from the start, owned by that operator,
    their opening line as message 1. From here it is a chat like any other."""
    ts = iso(now)
    chat = Chat(
        id=cmd.chat_id,
        queue=cmd.queue,
        institution=cmd.institution,
        state="active",
        owner=cmd.operator,
        owner_name=cmd.operator_name,
        operators=[cmd.operator],
        origin="proactive",
        created_at=ts,
        claimed_at=ts,
        patron=Patron(guest_id=cmd.guest_id),
        widget=cmd.widget,
        question=cmd.body,
        home_queue=cmd.queue,
        # The library reaching out answers its own chat, and counts it so.
        queue_institution=cmd.institution,
        answered_institution=cmd.institution,
        answered_queue=cmd.queue,
        handled_by=[cmd.institution],
    )
    sender = Sender(kind="operator", name=cmd.operator_name, id=cmd.operator)
    opening = Message(
        id=f"{cmd.chat_id}-1", chat_id=cmd.chat_id, seq=1, from_=sender, body=cmd.body, ts=ts
    )
    state = ChatState(
        chat=chat,
        last_seq=1,
        events=2,
        patron_present=cmd.patron_connected,
        patron_left_at=None if cmd.patron_connected else ts,
    )
    events: list[ChatEvent] = [
        ChatCreated(id=_event_id(chat.id, 1), n=1, ts=ts, chat=chat, question=cmd.body),
        MessagePosted(id=_event_id(chat.id, 2), n=2, ts=ts, chat=chat, message=opening),
    ]
    return Transition(state, events)


def claim(
    state: ChatState,
    operator: str,
    operator_name: str,
    monitoring: list[str],
    now: datetime,
    by_institution: str | None = None,
) -> Transition:
    """An operator who monitors the chat's queue takes it; anyone racing them gets `conflict`.
    `by_institution`: the claimant's, when it may differ from the queue's (partner coverage)."""
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
        update={
            "state": "active",
            **_handed_to(chat, operator, operator_name, by_institution),
            "claimed_at": ts,
        }
    )
    wait_s = max(0.0, (now - datetime.fromisoformat(chat.created_at)).total_seconds())
    n, stamp = _next(state, now)
    event = ChatClaimed(
        **stamp,
        chat=claimed,
        operator=operator,
        operator_name=operator_name,
        wait_s=round(wait_s, 3),
    )
    return Transition(_evolve(state, claimed, events=n), [event])


def _answered_here(chat: Chat, by_institution: str | None = None) -> dict[str, str | None]:
    """Who answers the chat, for statistics: whoever first takes it answers for the
    institution of the queue it is in, or for their own when they cover it as a partner
    of that institution. Another institution that takes it over from the patron's own
    library (a transfer to the backup service or a partner) answers it from then on; after
    that the first other institution keeps it: a backup service that answered and handed
    the chat back is still the one that answered, even when the library re-claims it after
    a requeue."""
    held_by = chat.queue_institution or chat.institution
    if chat.answered_institution is not None:
        taken_from_home = (
            chat.answered_institution == chat.institution
            and by_institution is not None
            and by_institution != chat.institution
        )
        if not taken_from_home:
            return {}
        return {"answered_institution": by_institution, "answered_queue": chat.queue}
    covering = by_institution is not None and by_institution not in (held_by, chat.institution)
    return {
        "answered_institution": by_institution if covering else held_by,
        "answered_queue": chat.queue,
    }


def _handed_to(
    chat: Chat, operator: str, operator_name: str, institution: str | None
) -> dict[str, Any]:
    """The fields of a chat that changes hands to `operator` of `institution` (None: of
    the institution whose queue holds the chat): its owner, everyone and every institution
    that held it, and who answers it."""
    held = chat.operators if operator in chat.operators else [*chat.operators, operator]
    where = institution or chat.queue_institution or chat.institution
    handled = chat.handled_by if where in chat.handled_by else [*chat.handled_by, where]
    return {
        "owner": operator,
        "owner_name": operator_name,
        "operators": held,
        "handled_by": handled,
        **_answered_here(chat, institution),
    }


def close(
    state: ChatState,
    by: Sender,
    tags: list[str],
    now: datetime,
    rules: TagRules = NO_RULES,
) -> Transition:
    """Close by the owner or the patron. A chat nobody claimed closes as `missed`. The
    owner's library may require a tag before its staff close a chat."""
    chat = state.chat
    if chat.state not in OPEN_STATES:
        return Transition(state)
    _may_write(chat, by)
    if by.kind == "operator" and chat.state == "queued":
        raise Refusal("forbidden", "claim the chat before closing it")
    ts = iso(now)
    merged = chat.tags
    if by.kind == "operator":
        added = normalize_tags(tags)
        rules.check(added)
        merged = normalize_tags([*chat.tags, *added])
        if rules.required and not merged:
            raise Refusal("invalid", "tags: your library asks for at least one tag on every chat")
    n, stamp = _next(state, now)
    if chat.state == "queued":
        missed = chat.model_copy(update={"state": "missed", "closed_at": ts})
        event: ChatEvent = ChatMissed(**stamp, chat=missed, reason="patron_left")
        return Transition(_evolve(state, missed, events=n), [event])
    reason = "closed_by_operator" if by.kind == "operator" else "closed_by_patron"
    closed = chat.model_copy(update={"state": "closed", "closed_at": ts, "tags": merged})
    event = ChatClosed(**stamp, chat=closed, by=by, reason=reason)
    return Transition(_evolve(state, closed, events=n, offer=None, owner_left_at=None), [event])
