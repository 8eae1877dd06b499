"""What every transition of the chat state machine builds on: the transition, the next state
and the next event's stamp."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.clock import iso
from shared.errors import Refusal
from shared.schemas.chat import (
    Chat,
    ChatState,
    Sender,
    TransferOffer,
)
from shared.schemas.events import (
    ChatEvent,
)

OPEN_STATES = frozenset({"queued", "active", "transferring"})


@dataclass(frozen=True)
class Transition:
    state: ChatState
    events: list[ChatEvent] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.events)


class _Keep:
    """Marks a field `_evolve` should carry over (None is a value: "no offer")."""


KEEP = _Keep()


def _evolve(
    state: ChatState,
    chat: Chat,
    *,
    events: int,
    last_seq: int | None = None,
    offer: TransferOffer | _Keep | None = KEEP,
    patron_present: bool | None = None,
    patron_left_at: str | _Keep | None = KEEP,
    owner_left_at: str | _Keep | None = KEEP,
    queued_at: str | _Keep | None = KEEP,
) -> ChatState:
    """The next state: what is not named carries over unchanged."""
    update: dict[str, object] = {"chat": chat, "events": events}
    if last_seq is not None:
        update["last_seq"] = last_seq
    if not isinstance(offer, _Keep):
        update["offer"] = offer
    if patron_present is not None:
        update["patron_present"] = patron_present
    if not isinstance(patron_left_at, _Keep):
        update["patron_left_at"] = patron_left_at
    if not isinstance(owner_left_at, _Keep):
        update["owner_left_at"] = owner_left_at
    if not isinstance(queued_at, _Keep):
        update["queued_at"] = queued_at
    return state.model_copy(update=update)


def _chain(first: Transition, then: Transition) -> Transition:
    """Two transitions applied one after the other, as one."""
    return Transition(then.state, [*first.events, *then.events])


def _event_id(chat_id: str, n: int) -> str:
    return f"{chat_id}.{n}"


def _next(state: ChatState, now: datetime) -> tuple[int, dict[str, Any]]:
    """The number of the chat's next event, and its `id`, `n` and `ts` to build it with."""
    n = state.events + 1
    return n, {"id": _event_id(state.chat.id, n), "n": n, "ts": iso(now)}


def _require_open(chat: Chat) -> None:
    if chat.state not in OPEN_STATES:
        raise Refusal("gone", f"chat {chat.id} is {chat.state}")


def _may_write(chat: Chat, sender: Sender) -> None:
    if sender.kind == "patron":
        if sender.id != chat.patron.guest_id:
            raise Refusal("forbidden", "this is not your chat")
    elif sender.kind == "operator":
        if chat.owner != sender.id:
            raise Refusal("forbidden", "only the chat's owner may do that", owner=chat.owner)


def _at(stamp: str, seconds: float) -> datetime:
    return datetime.fromisoformat(stamp) + timedelta(seconds=seconds)


def may_act(chat: Chat, institution: str, partners_of_holder: frozenset[str]) -> bool:
    """Who may see and act on a chat: its home, the institution whose queue holds it,
    those whose staff answered or held it (`Chat.visible_to`), and partners of the
    queue's institution, which cover its queues. Anyone else is told the chat does not
    exist."""
    return chat.visible_to(institution) or institution in partners_of_holder
