"""The chat and message objects of the client protocol, shared by events and replies."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from shared.schemas.base import Email, Model, PageUrl

ChatStateName = Literal["queued", "active", "transferring", "closed", "missed"]
Origin = Literal["patron", "proactive"]
SenderKind = Literal["patron", "operator", "system"]

MAX_TAGS = 20
TAG_PATTERN = r"^[a-z0-9][a-z0-9 _-]{0,39}$"


def normal_tag(tag: str) -> str:
    """A tag as chats carry it: lower case, single spaces (then checked by TAG_PATTERN)."""
    return " ".join(tag.lower().split())


class Patron(Model):
    guest_id: str
    name: str | None = Field(default=None, max_length=80)
    email: Email | None = None
    page: PageUrl | None = None


class Chat(Model):
    """A chat as clients see it (PROTOCOL.md "Chat object")."""

    id: str
    queue: str
    institution: str
    state: ChatStateName
    owner: str | None = None
    owner_name: str | None = None
    # Everyone who has owned the chat, first first: who answered it, and so who may still
    # tag it after a transfer or after it closed.
    operators: list[str] = Field(default_factory=list)
    origin: Origin = "patron"
    created_at: str
    claimed_at: str | None = None
    closed_at: str | None = None
    tags: list[str] = Field(default_factory=list)
    patron: Patron
    widget: str | None = None
    question: str | None = None
    requeued_at: str | None = None
    # The institution whose queue the chat is in now: a backup service's after a fallback
    # or rollover. `institution` stays the home library's (the widget's): its patron asked.
    queue_institution: str | None = None
    # The queue the patron's widget routes to, first of its chain: where an operator
    # answering for another library (the backup service) can hand the chat back.
    home_queue: str | None = None
    # Which institution and queue answered: set when an operator claims or takes it.
    answered_institution: str | None = None
    answered_queue: str | None = None
    # Every institution whose staff has owned the chat, first first (the institutions of
    # `operators`): a library that handed a chat to the backup service, and the backup
    # service that took it, both keep sight of it.
    handled_by: list[str] = Field(default_factory=list)

    def visible_to(self, institution: str) -> bool:
        """The home library, the institution whose queue holds it, the one that answered
        it and every one whose staff held it may see and act on a chat; nobody else."""
        return (
            institution in (self.institution, self.queue_institution, self.answered_institution)
            or institution in self.handled_by
        )


class Sender(Model):
    kind: SenderKind
    name: str
    id: str | None = None


class Message(Model):
    """One message of a chat; `seq` starts at 1 and grows by one with no gaps."""

    id: str
    chat_id: str
    seq: int = Field(ge=1)
    from_: Sender = Field(alias="from")
    body: str
    ts: str


class SkippedQueue(Model):
    """A queue of the chain passed over by a routing decision, and why."""

    queue: str
    reason: str


class TransferOffer(Model):
    """An open offer of a chat to an operator, or to everyone staffing a queue."""

    by: str
    to_operator: str | None = None
    to_queue: str | None = None
    to_queue_institution: str | None = None
    # The institution of the operator or queue offered: its staff may act on the chat
    # (accept, decline) while the offer is open, whoever else sees it.
    to_institution: str | None = None
    targets: list[str]
    declined: list[str] = Field(default_factory=list)
    note: str | None = None
    offered_at: str
    expires_at: str


# How many client-chosen message ids a chat remembers, to answer a resend with the original:
# a client resends only what is still unacknowledged, and every record carries the list.
RECENT_CLIENT_IDS = 8
ClientId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class ClientSent(Model):
    """A message sent with a client-chosen id: a resend of the same id by the same sender
    is answered with this instead of posting the message again."""

    client_id: ClientId
    sender: str
    seq: int


class ChatState(Model):
    """The live state of a chat as routing keeps it in the chats bucket."""

    v: Literal[1] = 1
    chat: Chat
    last_seq: int = 0
    sent: list[ClientSent] = Field(default_factory=list)
    events: int = 0
    offer: TransferOffer | None = None
    patron_present: bool = True
    # When the patron's last connection dropped, and when the owner's session ended: the
    # grace periods that follow are measured from these (see routing.domain.deadline).
    patron_left_at: str | None = None
    owner_left_at: str | None = None
    # The queues the chat may move through, home first (see shared.chains), when it last
    # entered a queue, and how long it may wait there unclaimed before rolling over.
    chain: list[str] = Field(default_factory=list)
    queued_at: str | None = None
    rollover_after_s: int | None = None
    # Institutions the chat has been offered to: their staff's answer to an offer that
    # has ended is `conflict`, not `not_found`, since they were told of the chat.
    offered_to: list[str] = Field(default_factory=list)
