"""Messages: who may write, and a resend with the same client id posted once."""

from __future__ import annotations

from datetime import datetime

from services.routing.domain.presence import _requeue, owner_returned, patron_returned
from services.routing.domain.state import (
    Transition,
    _chain,
    _evolve,
    _may_write,
    _next,
    _require_open,
)
from services.routing.domain.transfers import _close_offer
from shared.clock import iso
from shared.schemas.chat import (
    RECENT_CLIENT_IDS,
    ChatState,
    ClientSent,
    Message,
    Sender,
)
from shared.schemas.events import (
    MessagePosted,
)


def message_id(chat_id: str, seq: int) -> str:
    return f"{chat_id}-{seq}"


def sent_before(state: ChatState, sender: Sender, client_id: str | None) -> ClientSent | None:
    """The message this sender already posted with this client-chosen id, if any."""
    if client_id is None:
        return None
    who = _sender_key(sender)
    return next((s for s in state.sent if s.client_id == client_id and s.sender == who), None)


def _sender_key(sender: Sender) -> str:
    return f"{sender.kind}:{sender.id or sender.name}"


def post_message(
    state: ChatState, sender: Sender, body: str, now: datetime, client_id: str | None = None
) -> Transition:
    """A message from the patron or the owning operator, numbered with the next `seq`.

    With a client-chosen id, a resend of one already posted (after a timeout, or an
    `unavailable` while it did land) changes nothing, even once the chat has closed: the
    caller answers it with the original (`sent_before`).

    Writing also says who is there. The owner writing while a transfer offer is open takes
    the chat back: the offer is withdrawn first (`reclaimed`), so a late accept gets
    `conflict`. The patron writing to a chat whose owner is disconnected sends it back to
    the front of the queue at once rather than into silence.
    """
    if sent_before(state, sender, client_id) is not None:
        return Transition(state)
    chat = state.chat
    _require_open(chat)
    _may_write(chat, sender)
    before = Transition(state)
    if sender.kind == "patron" and not state.patron_present:
        before = _chain(before, patron_returned(before.state, now))
    if sender.kind == "patron" and before.state.owner_left_at is not None:
        before = _chain(before, _requeue(before.state, "patron_wrote", now))
    if sender.kind == "operator" and before.state.owner_left_at is not None:
        before = _chain(before, owner_returned(before.state, chat.owner or "", now))
    if before.state.offer is not None and sender.kind == "operator":
        before = _chain(before, _close_offer(before.state, "reclaimed", now))
    state, chat = before.state, before.state.chat
    ts = iso(now)
    seq = state.last_seq + 1
    n, stamp = _next(state, now)
    message = Message(
        id=message_id(chat.id, seq), chat_id=chat.id, seq=seq, from_=sender, body=body, ts=ts
    )
    posted = MessagePosted(**stamp, chat=chat, message=message)
    after = _evolve(state, chat, last_seq=seq, events=n)
    if client_id is not None:
        sent = ClientSent(client_id=client_id, sender=_sender_key(sender), seq=seq)
        after = after.model_copy(update={"sent": [*state.sent, sent][-RECENT_CLIENT_IDS:]})
    return Transition(after, [*before.events, posted])
