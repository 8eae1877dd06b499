"""Requests and replies between services over NATS request/reply.

A successful reply is the result model's JSON; a refusal is an `ErrorBody` with the
`Refdesk-Error` header set (see shared.bus), so that both sides stay typed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.errors import ErrorCode
from shared.schemas.base import Model
from shared.schemas.chat import Chat, Message, Sender

OperatorStatus = Literal["online", "away", "internal", "offline"]


class ErrorBody(Model):
    code: ErrorCode
    message: str
    owner: str | None = None


class Done(Model):
    ok: Literal[True] = True


# --- routing -----------------------------------------------------------------------------


class StartChat(Model):
    institution: str
    chat_id: str = Field(pattern=r"^[a-f0-9]{32}$")
    widget: str
    queue: str
    guest_id: str
    question: str
    name: str | None = None
    email: str | None = None


class StartChatResult(Model):
    chat: Chat
    position: int
    estimated_wait_s: int | None


class ClaimChat(Model):
    institution: str
    chat_id: str
    operator: str
    operator_name: str
    monitoring: list[str]


class PostMessage(Model):
    institution: str
    chat_id: str
    sender: Sender
    body: str


class MessageResult(Model):
    message: Message


class TagChat(Model):
    institution: str
    chat_id: str
    by: Sender
    tags: list[str]


class CloseChat(Model):
    institution: str
    chat_id: str
    by: Sender
    tags: list[str] = Field(default_factory=list)


class ChatResult(Model):
    chat: Chat
    changed: bool = True


class ListQueues(Model):
    institution: str
    queues: list[str]


class WaitingChat(Model):
    chat: Chat
    position: int
    wait_s: float


class QueueListing(Model):
    chats: list[WaitingChat]


# --- presence ----------------------------------------------------------------------------


class Session(Model):
    institution: str
    operator: str
    name: str
    session_id: str
    status: OperatorStatus = "offline"
    monitoring: list[str] = Field(default_factory=list)
    started_at: str


class OpenSession(Model):
    institution: str
    operator: str
    name: str
    session_id: str


class SessionRef(Model):
    institution: str
    operator: str
    session_id: str


class SetStatus(SessionRef):
    status: OperatorStatus


class SetMonitoring(SessionRef):
    queues: list[str]


class StaffingQuery(Model):
    institution: str
    queue: str


class Staffing(Model):
    queue: str
    operators: list[str]


class TypingNotice(Model):
    """Ephemeral: published on the chat's typing subject, never stored."""

    v: Literal[1] = 1
    institution: str
    chat_id: str
    from_: Sender = Field(alias="from")


class SessionEnded(Model):
    """Published on the presence events subject when a session is replaced or ended."""

    v: Literal[1] = 1
    type: Literal["session.ended"] = "session.ended"
    institution: str
    operator: str
    session_id: str
    reason: Literal["signed_in_elsewhere", "ended_by_admin", "expired"]


# --- transcripts -------------------------------------------------------------------------


class GetTranscript(Model):
    institution: str
    chat_id: str


class RoutingDecision(Model):
    at: str
    queue: str
    reason: str


class Transcript(Model):
    chat: Chat
    messages: list[Message]
    routing: list[RoutingDecision]


# --- tickets -----------------------------------------------------------------------------


class CreateTicket(Model):
    institution: str
    chat_id: str | None = None
    email: str
    subject: str
    body: str
    created_by: str


class GetTicket(Model):
    institution: str
    ticket_id: str


class Ticket(Model):
    id: str
    institution: str
    chat_id: str | None
    email: str
    subject: str
    body: str
    status: Literal["open", "pending", "closed"]
    assignee: str | None
    created_by: str
    created_at: str
