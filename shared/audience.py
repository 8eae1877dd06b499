"""Who must hear a chat record, beyond the chat's own subject.

Gateways subscribe only to what their sockets watch: a chat's own subject for the chats
their patrons follow and their operators own, a queue's subject for the queues their
operators monitor, an operator's subject for each signed-in operator, and a guest's subject
for each connected patron. Routing writes each record to the chat's subject (the stream)
and then publishes it, on core NATS, to the subjects this function names; gateways deliver
from each subscription only what belongs to it. Both sides use this one rule, so what
routing sends and what gateways expect cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.schemas.events import (
    ChatClosed,
    ChatCreated,
    ChatEvent,
    ChatMissed,
    ChatRecord,
    ChatRequeued,
    ChatRolledOver,
    MessagePosted,
    TransferAccepted,
    TransferExpired,
    TransferOffered,
    TransferWithdrawn,
)

# Events that change what a queue's watchers see (the waiting list, owner presence).
QUEUE_EVENTS = frozenset(
    {
        "queued",
        "requeued",
        "rolled_over",
        "claimed",
        "missed",
        "taken",
        "owner_left",
        "owner_returned",
    }
)


@dataclass(frozen=True)
class Audience:
    """Queues whose watchers, operators and the guest (of a new proactive chat) to tell.
    An operator addressed while owning the chat is not among them: the owner's gateway
    follows the chat itself."""

    queues: frozenset[str] = frozenset()
    operators: frozenset[str] = frozenset()
    guest: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.queues or self.operators or self.guest)


def operators_named(event: ChatEvent) -> set[str]:
    """Operators an event is addressed to by name, whoever owns the chat."""
    owner = event.chat.owner
    match event:
        case MessagePosted() | ChatClosed() | ChatMissed():
            return {owner} if owner else set()
        case TransferOffered(offer=offer):
            return set(offer.targets)
        case TransferAccepted(from_operator=previous, operator=taker, targets=targets):
            return {previous, *targets} - {taker}
        case TransferWithdrawn(targets=targets):
            return set(targets)
        case TransferExpired(targets=targets):
            return set(targets) | ({owner} if owner else set())
        case ChatRequeued(from_operator=previous):
            return {previous} if previous else set()
        case _:
            return set()


def by_subject_of_operator(event: ChatEvent, operator: str) -> bool:
    """Whether a frame for `operator` travels on the operator's subject (else on the
    chat's, which the owner's gateway follows)."""
    return operator != event.chat.owner


def audience(record: ChatRecord) -> Audience:
    queues: set[str] = set()
    operators: set[str] = set()
    guest: str | None = None
    for event in record.events:
        if event.type in QUEUE_EVENTS:
            queues.add(event.chat.queue)
        if isinstance(event, ChatRolledOver):
            queues.add(event.from_queue)
        if isinstance(event, ChatCreated) and event.chat.origin == "proactive":
            guest = event.chat.patron.guest_id
        operators |= {op for op in operators_named(event) if by_subject_of_operator(event, op)}
    return Audience(frozenset(queues), frozenset(operators), guest)
