"""Owners and patrons leaving and coming back, and a colleague taking over a chat whose
owner is gone."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from services.routing.domain.chats import _handed_to
from services.routing.domain.state import OPEN_STATES, Transition, _evolve, _next, _require_open
from services.routing.domain.transfers import _end_open_offer
from shared.clock import iso
from shared.errors import Refusal
from shared.schemas.chat import (
    ChatState,
)
from shared.schemas.events import (
    ChatRequeued,
    ChatTaken,
    OwnerLeft,
    OwnerReturned,
    PatronLeft,
    PatronReturned,
)


def patron_left(state: ChatState, now: datetime) -> Transition:
    """The patron's last connection dropped. An open offer ends (nobody should accept a chat
    nobody is in), the chat cannot be transferred, and the patron grace period starts."""
    chat = state.chat
    if chat.state not in OPEN_STATES or not state.patron_present:
        return Transition(state)
    before = _end_open_offer(state, "patron_left", now)
    state, chat = before.state, before.state.chat
    n, stamp = _next(state, now)
    ts = iso(now)
    left = PatronLeft(**stamp, chat=chat)
    return Transition(
        _evolve(state, chat, events=n, patron_present=False, patron_left_at=ts),
        [*before.events, left],
    )


def patron_returned(state: ChatState, now: datetime) -> Transition:
    """The patron is connected again (resumed with their token, or wrote)."""
    chat = state.chat
    if chat.state not in OPEN_STATES or state.patron_present:
        return Transition(state)
    n, stamp = _next(state, now)
    back = PatronReturned(**stamp, chat=chat)
    return Transition(
        _evolve(state, chat, events=n, patron_present=True, patron_left_at=None), [back]
    )


def owner_left(state: ChatState, operator: str, now: datetime) -> Transition:
    """The owner's session ended: their chats are held for the owner grace period."""
    chat = state.chat
    if chat.state not in ("active", "transferring") or chat.owner != operator:
        return Transition(state)
    if state.owner_left_at is not None:
        return Transition(state)
    n, stamp = _next(state, now)
    ts = iso(now)
    left = OwnerLeft(**stamp, chat=chat, operator=operator)
    return Transition(_evolve(state, chat, events=n, owner_left_at=ts), [left])


def owner_returned(state: ChatState, operator: str, now: datetime) -> Transition:
    """The owner is back within the grace period: the chat is theirs as before."""
    chat = state.chat
    if state.owner_left_at is None or chat.owner != operator or chat.state not in OPEN_STATES:
        return Transition(state)
    n, stamp = _next(state, now)
    back = OwnerReturned(**stamp, chat=chat, operator=operator)
    return Transition(_evolve(state, chat, events=n, owner_left_at=None), [back])


def _requeue(
    state: ChatState, reason: Literal["owner_disconnected", "patron_wrote"], now: datetime
) -> Transition:
    """Back to the front of the queue, ownerless (an open offer ends first)."""
    before = _end_open_offer(state, "owner_left", now)
    state = before.state
    ts = iso(now)
    chat = state.chat
    queued = chat.model_copy(
        update={
            "state": "queued",
            "owner": None,
            "owner_name": None,
            "claimed_at": None,
            "requeued_at": ts,
        }
    )
    n, stamp = _next(state, now)
    event = ChatRequeued(
        **stamp,
        chat=queued,
        from_operator=chat.owner or "",
        reason=reason,
    )
    return Transition(
        _evolve(state, queued, events=n, offer=None, owner_left_at=None, queued_at=ts),
        [*before.events, event],
    )


def take(
    state: ChatState,
    operator: str,
    operator_name: str,
    monitoring: list[str],
    now: datetime,
    institution: str | None = None,
) -> Transition:
    """A colleague who monitors the queue takes over a chat whose owner is disconnected.
    `institution`: the colleague's (by default the queue's)."""
    chat = state.chat
    _require_open(chat)
    if chat.state == "queued":
        raise Refusal("conflict", "this chat is waiting in the queue: claim it instead")
    if chat.owner == operator:
        raise Refusal("conflict", "you already own this chat", owner=chat.owner)
    if chat.queue not in monitoring:
        raise Refusal("forbidden", f"you do not monitor {chat.queue}")
    if state.owner_left_at is None:
        raise Refusal(
            "conflict", f"{chat.owner} is connected and still owns this chat", owner=chat.owner
        )
    before = _end_open_offer(state, "owner_left", now)
    state = before.state
    previous = chat.owner or ""
    taken = state.chat.model_copy(
        update={
            "state": "active",
            **_handed_to(state.chat, operator, operator_name, institution),
        }
    )
    n, stamp = _next(state, now)
    event = ChatTaken(
        **stamp,
        chat=taken,
        from_operator=previous,
        operator=operator,
        operator_name=operator_name,
    )
    return Transition(
        _evolve(state, taken, events=n, offer=None, owner_left_at=None), [*before.events, event]
    )
