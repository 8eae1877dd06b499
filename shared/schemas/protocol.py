"""The WebSocket frames of PROTOCOL.md, both directions.

Client frames are validated strictly (unknown fields and types are refused); server frames
are built from these models so that tests can check that what the gateway sends matches
its contract.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter, model_validator

from shared.errors import ErrorCode
from shared.schemas.base import Email, Model, PageUrl
from shared.schemas.chat import MAX_TAGS, Chat, ChatStateName, ClientId, Message, Sender
from shared.schemas.requests import EndReason, OperatorStatus
from shared.schemas.tickets import TicketSummary

Ref = Annotated[str, Field(max_length=64)]
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Tags = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=40)]], Field(max_length=MAX_TAGS)
]

# --- client -> server, patron ------------------------------------------------------------


class Hello(Model):
    type: Literal["hello"]
    token: str | None = None
    ref: Ref | None = None


class PatronChatStart(Model):
    type: Literal["chat.start"]
    question: str = Field(min_length=1)
    name: str | None = Field(default=None, max_length=80)
    email: Email | None = None
    page: PageUrl | None = None
    ref: Ref | None = None


class SendMessage(Model):
    """`client_id`, chosen by the client: a resend with the same id (after a timeout or an
    `unavailable`) is answered with the original ack and the message is posted once."""

    type: Literal["message"]
    chat_id: Id
    body: str = Field(min_length=1)
    client_id: ClientId | None = None
    ref: Ref | None = None


class OperatorMessage(Model):
    """An operator's message: its text, or the name of a snippet (canned text) of their
    institution or the consortium, which the gateway inserts."""

    type: Literal["message"]
    chat_id: Id
    body: str | None = Field(default=None, min_length=1)
    snippet: str | None = Field(default=None, max_length=120)
    client_id: ClientId | None = None
    ref: Ref | None = None

    @model_validator(mode="after")
    def _one_text(self) -> OperatorMessage:
        if (self.body is None) == (self.snippet is None):
            raise ValueError("give either body or snippet")
        return self


class Typing(Model):
    type: Literal["typing"]
    chat_id: Id
    ref: Ref | None = None


class PatronChatEnd(Model):
    type: Literal["chat.end"]
    chat_id: Id
    ref: Ref | None = None


PatronFrame = Annotated[
    Hello | PatronChatStart | SendMessage | Typing | PatronChatEnd, Field(discriminator="type")
]
PATRON_FRAME: TypeAdapter[Any] = TypeAdapter(PatronFrame)

# --- client -> server, operator ----------------------------------------------------------


class Auth(Model):
    type: Literal["auth"]
    token: str
    # What to do about a session of the same operator open elsewhere: end it (the default,
    # as the contract has always said), or ask: refuse with `conflict` saying since when,
    # so the person can choose (LibChat's behaviour), and send `end` to go ahead.
    elsewhere: Literal["end", "ask"] = "end"
    ref: Ref | None = None


class StatusSet(Model):
    type: Literal["status.set"]
    status: OperatorStatus
    ref: Ref | None = None


class MonitorSet(Model):
    type: Literal["monitor.set"]
    queues: list[Annotated[str, Field(max_length=80)]] = Field(max_length=50)
    ref: Ref | None = None


class ChatClaim(Model):
    type: Literal["chat.claim"]
    chat_id: Id
    ref: Ref | None = None


class ChatTag(Model):
    """Add `tags` to a chat and take `remove` off it: during the chat or after it closed,
    by whoever answered it."""

    type: Literal["chat.tag"]
    chat_id: Id
    tags: Tags
    remove: Tags = Field(default_factory=list)
    ref: Ref | None = None


class ChatClose(Model):
    type: Literal["chat.close"]
    chat_id: Id
    tags: Tags = Field(default_factory=list)
    ref: Ref | None = None


class TransferTarget(Model):
    """Exactly one of `operator` or `queue`."""

    operator: Id | None = None
    queue: Id | None = None

    @model_validator(mode="after")
    def _one(self) -> TransferTarget:
        if (self.operator is None) == (self.queue is None):
            raise ValueError("name exactly one of operator or queue")
        return self


class ChatTransfer(Model):
    type: Literal["chat.transfer"]
    chat_id: Id
    to: TransferTarget
    note: str | None = Field(default=None, max_length=500)
    # Says the operator means to hand the chat outside their own library.
    cross_institution: bool = False
    ref: Ref | None = None


class TransferAccept(Model):
    type: Literal["transfer.accept"]
    chat_id: Id
    ref: Ref | None = None


class TransferDecline(Model):
    type: Literal["transfer.decline"]
    chat_id: Id
    ref: Ref | None = None


class TransferCancel(Model):
    """The owner withdraws an offer nobody has accepted yet."""

    type: Literal["transfer.cancel"]
    chat_id: Id
    ref: Ref | None = None


class ChatTake(Model):
    type: Literal["chat.take"]
    chat_id: Id
    ref: Ref | None = None


class ChatStartProactive(Model):
    type: Literal["chat.start_proactive"]
    guest_id: Id
    body: str = Field(min_length=1)
    queue: Id | None = None
    ref: Ref | None = None


class InternalTarget(Model):
    """Exactly one of `operator`, `queue` or `all: true`."""

    operator: Id | None = None
    queue: Id | None = None
    all: Literal[True] | None = None

    @model_validator(mode="after")
    def _one(self) -> InternalTarget:
        if sum(x is not None for x in (self.operator, self.queue, self.all)) != 1:
            raise ValueError("name exactly one of operator, queue or all")
        return self


class InternalSend(Model):
    type: Literal["internal.send"]
    to: InternalTarget
    body: str = Field(min_length=1)
    ref: Ref | None = None


OperatorFrame = Annotated[
    Auth
    | StatusSet
    | MonitorSet
    | ChatClaim
    | OperatorMessage
    | Typing
    | ChatTag
    | ChatClose
    | ChatTransfer
    | TransferAccept
    | TransferDecline
    | TransferCancel
    | ChatTake
    | ChatStartProactive
    | InternalSend,
    Field(discriminator="type"),
]
OPERATOR_FRAME: TypeAdapter[Any] = TypeAdapter(OperatorFrame)

# --- server -> client --------------------------------------------------------------------


class Ack(Model):
    """The answer to a frame with a `ref`. A frame with results is answered by the
    subclass `ACK_OF` names for its type; one without, by this."""

    type: Literal["ack"] = "ack"
    ref: str = ""


class HelloAck(Ack):
    guest_id: str


class ChatStartAck(Ack):
    chat_id: str


class MessageAck(Ack):
    """`repeated`: a resend with the same `client_id`, answered with the original."""

    id: str
    seq: int
    repeated: bool = False


class StateAck(Ack):
    state: ChatStateName


class AuthAck(Ack):
    session_id: str


class StatusAck(Ack):
    status: OperatorStatus


class MonitorAck(Ack):
    monitoring: list[str]


class ChatAck(Ack):
    chat: Chat


class OwnedAck(Ack):
    """A claim, take-over or accepted transfer: the chat and its whole history."""

    chat: Chat
    messages: list[Message]


class TransferAck(Ack):
    chat: Chat
    targets: list[str]


class ProactiveAck(Ack):
    chat_id: str
    chat: Chat


class InternalSendAck(Ack):
    id: str
    conversation: str


class CloseAck(Ack):
    chat: Chat
    changed: bool


# Every client frame's acknowledgement; tests check each ack a server sends against it.
ACK_OF: dict[str, type[Ack]] = {
    "hello": HelloAck,
    "chat.start": ChatStartAck,
    "message": MessageAck,
    "typing": Ack,
    "chat.end": StateAck,
    "auth": AuthAck,
    "status.set": StatusAck,
    "monitor.set": MonitorAck,
    "chat.claim": OwnedAck,
    "chat.take": OwnedAck,
    "transfer.accept": OwnedAck,
    "transfer.decline": StateAck,
    "transfer.cancel": StateAck,
    "chat.transfer": TransferAck,
    "chat.start_proactive": ProactiveAck,
    "internal.send": InternalSendAck,
    "chat.tag": ChatAck,
    "chat.close": CloseAck,
}


class AnyAck(Model):
    """Any acknowledgement, as a frame among the others (its own model is `ACK_OF`'s)."""

    model_config = ConfigDict(extra="allow")
    type: Literal["ack"] = "ack"
    ref: str


class Error(Model):
    type: Literal["error"] = "error"
    ref: str | None = None
    code: ErrorCode
    message: str
    owner: str | None = None
    retry_after_ms: int | None = None


class WidgetInfo(Model):
    online: bool
    queue: str | None = None
    reason: str | None = None


class WidgetStatusFrame(Model):
    """To a widget's patrons: its availability changed (an operator came or went, a window
    opened or closed, a holiday began). `queue` answers now; `reason` says why."""

    type: Literal["widget.status"] = "widget.status"
    online: bool
    queue: str | None
    reason: str


class Welcome(Model):
    type: Literal["welcome"] = "welcome"
    guest_id: str
    token: str
    widget: WidgetInfo


class PatronChat(Model):
    """The chat as its patron sees it: its state and who answers, by display name. Never
    staff fields (login names, tags, notes, routing)."""

    id: str
    state: ChatStateName
    queue: str
    operator: str | None = None
    created_at: str
    question: str | None = None


class ChatResumed(Model):
    """To a patron (`PatronChat`, messages with staff named by display name only) or to an
    operator who owns the chat (the whole `Chat`)."""

    type: Literal["chat.resumed"] = "chat.resumed"
    chat: PatronChat | Chat
    messages: list[Message]


class ChatQueuedFrame(Model):
    type: Literal["chat.queued"] = "chat.queued"
    chat_id: str
    queue: str
    position: int
    estimated_wait_s: int | None


class MessageFrame(Message):
    type: Literal["message"] = "message"


class TypingFrame(Model):
    type: Literal["typing"] = "typing"
    chat_id: str
    from_: Sender = Field(alias="from")


class ChatClaimedFrame(Model):
    type: Literal["chat.claimed"] = "chat.claimed"
    chat_id: str
    operator: str


class ChatClosedFrame(Model):
    type: Literal["chat.closed"] = "chat.closed"
    chat_id: str
    state: str
    reason: str


class SessionFrame(Model):
    """`chats`: the chats this operator owns now (their `chat.resumed` frames follow), so
    that a desk back from a drop knows which of its chats went to a colleague, back to
    the queue or ended while it was away."""

    type: Literal["session"] = "session"
    operator: str
    session_id: str
    status: OperatorStatus
    monitoring: list[str]
    chats: list[str] = Field(default_factory=list)


class SessionEndedFrame(Model):
    type: Literal["session.ended"] = "session.ended"
    reason: EndReason


class WaitingChatView(Model):
    chat: Chat
    position: int
    wait_s: float


class QueueSnapshot(Model):
    type: Literal["queue.snapshot"] = "queue.snapshot"
    chats: list[WaitingChatView]


class QueueChatAdded(Model):
    type: Literal["queue.chat_added"] = "queue.chat_added"
    chat: Chat
    question: str | None = None


class QueueChatRemoved(Model):
    type: Literal["queue.chat_removed"] = "queue.chat_removed"
    chat_id: str
    queue: str
    reason: str


class ChatStarted(Model):
    """To a patron: an operator has started a chat with you."""

    type: Literal["chat.started"] = "chat.started"
    chat: PatronChat


class QueuePositionFrame(Model):
    type: Literal["queue.position"] = "queue.position"
    chat_id: str
    position: int
    estimated_wait_s: int | None


class ChatTransferring(Model):
    type: Literal["chat.transferring"] = "chat.transferring"
    chat_id: str


class ChatTransferred(Model):
    type: Literal["chat.transferred"] = "chat.transferred"
    chat_id: str
    operator: str


class ChatRolledOverFrame(Model):
    """To the patron and the watchers of both queues: nobody claimed the chat in time,
    so it moved to the next queue of its chain (a backup service, often)."""

    type: Literal["chat.rolled_over"] = "chat.rolled_over"
    chat_id: str
    from_queue: str
    queue: str
    reason: str
    # For the queues' watchers; the patron's copy has none.
    chat: Chat | None = None


class ChatRequeuedFrame(Model):
    type: Literal["chat.requeued"] = "chat.requeued"
    chat_id: str
    queue: str
    reason: str
    chat: Chat | None = None


class OwnerPresenceFrame(Model):
    """To a queue's watchers: a chat's owner has gone (it may be taken) or come back."""

    type: Literal["chat.owner_left", "chat.owner_returned"]
    chat_id: str
    queue: str
    owner: str


class TransferOfferFrame(Model):
    type: Literal["transfer.offer"] = "transfer.offer"
    chat_id: str
    from_: str = Field(alias="from")
    note: str | None
    to_queue: str | None = None
    expires_at: str
    chat: Chat
    messages: list[Message] = Field(default_factory=list)


class TransferWithdrawnFrame(Model):
    type: Literal["transfer.withdrawn"] = "transfer.withdrawn"
    chat_id: str
    reason: str


class TransferAcceptedFrame(Model):
    type: Literal["transfer.accepted"] = "transfer.accepted"
    chat_id: str
    operator: str
    operator_name: str


class TransferExpiredFrame(Model):
    type: Literal["transfer.expired"] = "transfer.expired"
    chat_id: str
    reason: str


class InternalPeer(Model):
    operator: str | None = None
    queue: str | None = None
    all: bool | None = None


class InternalMessageFrame(Model):
    type: Literal["internal.message"] = "internal.message"
    id: str
    conversation: str
    from_: Sender = Field(alias="from")
    to: InternalPeer
    body: str
    ts: str


class AnnouncementFrame(Model):
    """A consortium admin's message to every signed-in operator."""

    type: Literal["announcement"] = "announcement"
    id: str
    from_: Sender = Field(alias="from")
    body: str
    ts: str


class TicketFrame(Model):
    """A ticket for this member of staff: new in their institution (`ticket.created`),
    assigned to them (`ticket.assigned`), or answered by its patron by email
    (`ticket.answered`: to its assignee, or all staff when it has none)."""

    type: Literal["ticket.created", "ticket.assigned", "ticket.answered"]
    ticket: TicketSummary
    by: str


ServerFrame = Annotated[
    AnyAck
    | Error
    | AnnouncementFrame
    | Welcome
    | ChatResumed
    | ChatQueuedFrame
    | MessageFrame
    | TypingFrame
    | ChatClaimedFrame
    | ChatClosedFrame
    | WidgetStatusFrame
    | ChatRolledOverFrame
    | SessionFrame
    | SessionEndedFrame
    | QueueSnapshot
    | QueueChatAdded
    | QueueChatRemoved
    | ChatStarted
    | QueuePositionFrame
    | ChatTransferring
    | ChatTransferred
    | ChatRequeuedFrame
    | OwnerPresenceFrame
    | TransferOfferFrame
    | TransferWithdrawnFrame
    | TransferAcceptedFrame
    | TransferExpiredFrame
    | InternalMessageFrame
    | TicketFrame,
    Field(discriminator="type"),
]
SERVER_FRAME: TypeAdapter[Any] = TypeAdapter(ServerFrame)


# --- what a patron may receive -------------------------------------------------------------
# The frames above as a patron gets them: staff by display name only. A model here refuses
# a staff login (`from.id` of an operator or the system) and the whole `Chat` that staff
# see; the gateway builds patrons' typing frames from them, and the tests check every
# frame a patron socket receives against PATRON_SERVER_FRAME.


class PatronSender(Sender):
    """Who wrote or types, as a patron is told: the patron themself with their guest id,
    anyone else by `kind` and `name` only."""

    @model_validator(mode="after")
    def _no_staff_login(self) -> PatronSender:
        if self.kind != "patron" and self.id is not None:
            raise ValueError("from.id: a patron is never told a staff member's login")
        return self


class PatronMessage(Message):
    from_: PatronSender = Field(alias="from")


class PatronMessageFrame(PatronMessage):
    type: Literal["message"] = "message"


class PatronTypingFrame(TypingFrame):
    from_: PatronSender = Field(alias="from")


class PatronChatResumed(Model):
    type: Literal["chat.resumed"] = "chat.resumed"
    chat: PatronChat
    messages: list[PatronMessage]


class PatronRolledOverFrame(ChatRolledOverFrame):
    chat: None = None


class PatronRequeuedFrame(ChatRequeuedFrame):
    chat: None = None


PatronServerFrame = Annotated[
    AnyAck
    | Error
    | Welcome
    | WidgetStatusFrame
    | PatronChatResumed
    | ChatStarted
    | ChatQueuedFrame
    | QueuePositionFrame
    | PatronMessageFrame
    | PatronTypingFrame
    | ChatClaimedFrame
    | ChatTransferring
    | ChatTransferred
    | PatronRequeuedFrame
    | PatronRolledOverFrame
    | ChatClosedFrame,
    Field(discriminator="type"),
]
PATRON_SERVER_FRAME: TypeAdapter[Any] = TypeAdapter(PatronServerFrame)
