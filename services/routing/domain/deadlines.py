"""What time brings: the instants a chat comes due, and what happens then."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.routing.domain.presence import _requeue
from services.routing.domain.queues import rollover_at
from services.routing.domain.state import OPEN_STATES, Transition, _at, _chain, _evolve, _next
from services.routing.domain.transfers import expire_transfer
from shared.clock import iso
from shared.schemas.chat import (
    ChatState,
    Sender,
)
from shared.schemas.events import (
    ChatClosed,
    ChatEvent,
    ChatMissed,
)


@dataclass(frozen=True)
class Timing:
    """How long each kind of wait lasts before routing acts on its own."""

    offer_timeout_s: float = 120.0
    owner_grace_s: float = 60.0
    patron_grace_s: float = 600.0


def deadlines(state: ChatState, timing: Timing) -> list[datetime]:
    """Every instant at which this chat changes by itself, unless something happens first."""
    if state.chat.state not in OPEN_STATES:
        return []
    found: list[datetime] = []
    if state.offer is not None:
        found.append(datetime.fromisoformat(state.offer.expires_at))
    if state.owner_left_at is not None:
        found.append(_at(state.owner_left_at, timing.owner_grace_s))
    if state.patron_left_at is not None and not state.patron_present:
        found.append(_at(state.patron_left_at, timing.patron_grace_s))
    rollover = rollover_at(state)
    if rollover is not None:
        found.append(rollover)
    return found


def due(state: ChatState, now: datetime, timing: Timing) -> Transition:
    """Whatever the passing of time has decided by `now`: an offer expires, a disconnected
    owner's chat is requeued, a patron who never came back loses the chat."""
    result = Transition(state)
    if state.chat.state not in OPEN_STATES:
        return result
    if state.offer is not None:
        result = _chain(result, expire_transfer(state, state.offer.offered_at, now))
    current = result.state
    if current.patron_left_at is not None and not current.patron_present:
        if now >= _at(current.patron_left_at, timing.patron_grace_s):
            return _chain(result, _patron_gone_for_good(current, now))
    if current.owner_left_at is not None and now >= _at(
        current.owner_left_at, timing.owner_grace_s
    ):
        result = _chain(result, _requeue(current, "owner_disconnected", now))
    return result


def _patron_gone_for_good(state: ChatState, now: datetime) -> Transition:
    """The patron grace period ran out: unclaimed, the chat was missed; claimed, it closes."""
    chat = state.chat
    ts = iso(now)
    n, stamp = _next(state, now)
    if chat.state == "queued":
        missed = chat.model_copy(update={"state": "missed", "closed_at": ts})
        event: ChatEvent = ChatMissed(**stamp, chat=missed, reason="patron_left")
        return Transition(_evolve(state, missed, events=n), [event])
    closed = chat.model_copy(update={"state": "closed", "closed_at": ts})
    event = ChatClosed(
        **stamp,
        chat=closed,
        by=Sender(kind="system", name="refdesk"),
        reason="patron_left",
    )
    return Transition(_evolve(state, closed, events=n, offer=None, owner_left_at=None), [event])
