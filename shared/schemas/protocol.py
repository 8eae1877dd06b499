"""The WebSocket frames of PROTOCOL.md, both directions.

Client frames are validated strictly (unknown fields and types are refused); server frames
are built from these models so that tests can check that what the gateway sends matches
its contract.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter

from shared.errors import ErrorCode
from shared.schemas.base import Model
from shared.schemas.chat import Chat, Message, Sender
from shared.schemas.requests import OperatorStatus

Ref = Annotated[str, Field(max_length=64)]
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Tags = Annotated[list[Annotated[str, Field(min_length=1, max_length=40)]], Field(max_length=20)]

# --- client -> server, patron ------------------------------------------------------------


class Hello(Model):
    type: Literal["hello"]
    token: str | None = None
    ref: Ref | None = None


class PatronChatStart(Model):
    type: Literal["chat.start"]
    question: str = Field(min_length=1)
    name: str | None = Field(default=None, max_length=80)
    email: str | None = Field(default=None, max_length=254)
    ref: Ref | None = None


class SendMessage(Model):
    type: Literal["message"]
    chat_id: Id
    body: str = Field(min_length=1)
    ref: Ref | None = None


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
    type: Literal["chat.tag"]
    chat_id: Id
    tags: Tags
    ref: Ref | None = None


class ChatClose(Model):
    type: Literal["chat.close"]
    chat_id: Id
    tags: Tags = Field(default_factory=list)
    ref: Ref | None = None


OperatorFrame = Annotated[
    Auth | StatusSet | MonitorSet | ChatClaim | SendMessage | Typing | ChatTag | ChatClose,
    Field(discriminator="type"),
]
OPERATOR_FRAME: TypeAdapter[Any] = TypeAdapter(OperatorFrame)

# --- server -> client --------------------------------------------------------------------


class Ack(Model):
    """An answer to a frame with a `ref`; result fields ride along."""

    model_config = ConfigDict(extra="allow")
    type: Literal["ack"] = "ack"
    ref: str


class Error(Model):
    type: Literal["error"] = "error"
    ref: str | None = None
    code: ErrorCode
    message: str
    owner: str | None = None


class WidgetInfo(Model):
    online: bool


class Welcome(Model):
    type: Literal["welcome"] = "welcome"
    guest_id: str
    token: str
    widget: WidgetInfo


class ChatResumed(Model):
    type: Literal["chat.resumed"] = "chat.resumed"
    chat: Chat
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


class WidgetStatus(Model):
    type: Literal["widget.status"] = "widget.status"
    online: bool


class SessionFrame(Model):
    type: Literal["session"] = "session"
    operator: str
    session_id: str
    status: OperatorStatus
    monitoring: list[str]


class SessionEndedFrame(Model):
    type: Literal["session.ended"] = "session.ended"
    reason: str


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


ServerFrame = Annotated[
    Ack
    | Error
    | Welcome
    | ChatResumed
    | ChatQueuedFrame
    | MessageFrame
    | TypingFrame
    | ChatClaimedFrame
    | ChatClosedFrame
    | WidgetStatus
    | SessionFrame
    | SessionEndedFrame
    | QueueSnapshot
    | QueueChatAdded
    | QueueChatRemoved,
    Field(discriminator="type"),
]
SERVER_FRAME: TypeAdapter[Any] = TypeAdapter(ServerFrame)
