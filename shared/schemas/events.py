"""Chat events and the records that carry them: what routing writes to the chat stream, the
source of truth for a chat's state and history.

Each transition of a chat is one `ChatRecord` on the chat's own subject: the state after it
and the events it made, written in one publish that is conditional on the chat's last
record. Each event carries the chat as it is after the event, so that every consumer
(gateways, transcripts) can act on one event without asking anyone. `id` is
`<chat_id>.<n>` where `n` counts the chat's events from 1: writes keyed by it are
idempotent.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas.base import Model
from shared.schemas.chat import Chat, ChatState, Message, Sender, SkippedQueue, TransferOffer


class _Event(Model):
    v: Literal[1] = 1
    id: str
    n: int = Field(ge=1)
    ts: str
    chat: Chat


class ChatCreated(_Event):
    type: Literal["created"] = "created"
    question: str


class RoutingDecided(_Event):
    """A routing decision: the queue (the one the chat is in after it), why, and the
    queues of the chain passed over on the way (closed or unstaffed)."""

    queue: str
    reason: str
    skipped: list[SkippedQueue] = Field(default_factory=list)


class ChatQueued(RoutingDecided):
    """A new chat placed in the first open, staffed queue of its chain."""

    type: Literal["queued"] = "queued"


class ChatRolledOver(RoutingDecided):
    """Unclaimed past its queue's rollover timeout, the chat moved to the next open,
    staffed queue of its chain."""

    type: Literal["rolled_over"] = "rolled_over"
    from_queue: str


class RolloverHeld(RoutingDecided):
    """The rollover timeout passed but no later queue of the chain could take the chat:
    it stays in `queue`, and the timeout starts again."""

    type: Literal["rollover_held"] = "rollover_held"


class ChatClaimed(_Event):
    type: Literal["claimed"] = "claimed"
    operator: str
    operator_name: str
    wait_s: float


class MessagePosted(_Event):
    type: Literal["message"] = "message"
    message: Message


class ChatTagged(_Event):
    type: Literal["tagged"] = "tagged"
    by: Sender
    tags: list[str]


class ChatClosed(_Event):
    type: Literal["closed"] = "closed"
    by: Sender
    reason: str


class ChatMissed(_Event):
    type: Literal["missed"] = "missed"
    reason: str


class TransferOffered(_Event):
    type: Literal["transfer_offered"] = "transfer_offered"
    offer: TransferOffer


class TransferAccepted(_Event):
    type: Literal["transfer_accepted"] = "transfer_accepted"
    from_operator: str
    operator: str
    operator_name: str
    targets: list[str] = Field(default_factory=list)


class TransferDeclined(_Event):
    """One target of an offer to several said no; the offer stays open for the others."""

    type: Literal["transfer_declined"] = "transfer_declined"
    operator: str


class TransferWithdrawn(_Event):
    """The owner wrote while the offer was open, and so took the chat back."""

    type: Literal["reclaimed"] = "reclaimed"
    operator: str
    targets: list[str]


class TransferExpired(_Event):
    type: Literal["transfer_expired"] = "transfer_expired"
    reason: Literal["timeout", "declined", "patron_left", "owner_left"]
    targets: list[str]


class PatronLeft(_Event):
    """The patron's last connection dropped; the patron grace period starts."""

    type: Literal["patron_left"] = "patron_left"


class PatronReturned(_Event):
    type: Literal["patron_returned"] = "patron_returned"


class OwnerLeft(_Event):
    """The owner's session ended; the owner grace period starts."""

    type: Literal["owner_left"] = "owner_left"
    operator: str


class OwnerReturned(_Event):
    type: Literal["owner_returned"] = "owner_returned"
    operator: str


class ChatRequeued(_Event):
    """The chat went back to the front of its queue without an owner."""

    type: Literal["requeued"] = "requeued"
    from_operator: str
    reason: Literal["owner_disconnected", "patron_wrote"]


class ChatTaken(_Event):
    """A colleague took over a chat whose owner is disconnected."""

    type: Literal["taken"] = "taken"
    from_operator: str
    operator: str
    operator_name: str


ChatEvent = Annotated[
    ChatCreated
    | ChatQueued
    | ChatRolledOver
    | RolloverHeld
    | ChatClaimed
    | MessagePosted
    | ChatTagged
    | ChatClosed
    | ChatMissed
    | TransferOffered
    | TransferAccepted
    | TransferDeclined
    | TransferWithdrawn
    | TransferExpired
    | PatronLeft
    | PatronReturned
    | OwnerLeft
    | OwnerReturned
    | ChatRequeued
    | ChatTaken,
    Field(discriminator="type"),
]


class ChatRecord(Model):
    """One transition of one chat, as one message of the chat stream: the chat's whole
    state after it, and the events it made (in order, numbered on from the last record's).
    The last record of a chat's subject is its current state."""

    v: Literal[1] = 1
    state: ChatState
    events: list[ChatEvent] = Field(min_length=1)

    @property
    def first_n(self) -> int:
        return self.events[0].n


def parse_chat_record(data: bytes) -> ChatRecord:
    return ChatRecord.model_validate_json(data)


class RecordEvents(BaseModel):
    """A `ChatRecord` read for its events alone: gateways deliver them and transcripts
    store them, and neither needs the state, which is routing's (it is passed over
    unvalidated, about half the decoding)."""

    model_config = ConfigDict(extra="ignore")
    v: Literal[1] = 1
    events: list[ChatEvent] = Field(min_length=1)

    @property
    def first_n(self) -> int:
        return self.events[0].n


def parse_record_events(data: bytes) -> RecordEvents:
    return RecordEvents.model_validate_json(data)
