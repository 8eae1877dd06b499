"""Requests and replies between services over NATS request/reply.

A successful reply is the result model's JSON; a refusal is nats micro's error reply (the
`Nats-Service-Error-Code` header set) carrying an `ErrorBody` (see shared.bus), so that
both sides stay typed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from shared.errors import ErrorCode
from shared.schemas.base import Model, PageUrl
from shared.schemas.chat import Chat, ChatStateName, ClientId, Message, Sender, SkippedQueue
from shared.schemas.records import Principal

OperatorStatus = Literal["online", "away", "internal", "offline"]


class ErrorBody(Model):
    code: ErrorCode
    message: str
    owner: str | None = None
    retry_after_ms: int | None = None


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
    page: PageUrl | None = None


class StartChatResult(Model):
    chat: Chat
    position: int
    estimated_wait_s: int | None


class ClaimChat(Model):
    """Also the request of a take-over (`take`) of a chat whose owner is disconnected."""

    institution: str
    chat_id: str
    operator: str
    operator_name: str
    monitoring: list[str]
    max_chats: int | None = None


class TransferChat(Model):
    institution: str
    chat_id: str
    by: str
    to_operator: str | None = None
    to_queue: str | None = None
    note: str | None = Field(default=None, max_length=500)
    # Required to hand a chat outside the operator's institution (see check_transfer_reach).
    cross_institution: bool = False


class TransferResult(Model):
    chat: Chat
    targets: list[str]


class AnswerOffer(Model):
    """A target's accept or decline of an open transfer offer."""

    institution: str
    chat_id: str
    operator: str
    operator_name: str
    max_chats: int | None = None


class PatronPresence(Model):
    """The gateway saying a patron's last connection to a chat dropped."""

    institution: str
    chat_id: str
    guest_id: str


class ResumeChat(Model):
    institution: str
    guest_id: str


class ResumeResult(Model):
    chat: Chat | None = None


class OwnedChats(Model):
    institution: str
    operator: str


class OwnedChatsResult(Model):
    chats: list[Chat]


class StartProactive(Model):
    institution: str
    chat_id: str = Field(pattern=r"^[a-f0-9]{32}$")
    queue: str
    guest_id: str
    widget: str | None = None
    operator: str
    operator_name: str
    body: str
    patron_connected: bool
    max_chats: int | None = None


class QueuePosition(Model):
    """Ephemeral: a waiting chat's place in its queue, published as the queue moves."""

    v: Literal[1] = 1
    institution: str
    chat_id: str
    position: int
    estimated_wait_s: int | None


class PostMessage(Model):
    institution: str
    chat_id: str
    sender: Sender
    body: str
    client_id: ClientId | None = None


class MessageResult(Model):
    """The posted message's id and `seq`; `repeated` when a resend with the same client id
    was answered with the original."""

    id: str
    seq: int
    repeated: bool = False


class TagChat(Model):
    institution: str
    chat_id: str
    by: Sender
    tags: list[str]
    remove: list[str] = Field(default_factory=list)


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
    max_chats: int | None = None


class Desk(Model):
    """What an operator chose last: it survives signing out and in again."""

    status: OperatorStatus = "offline"
    monitoring: list[str] = Field(default_factory=list)


class OpenSession(Model):
    institution: str
    operator: str
    name: str
    session_id: str
    max_chats: int | None = None


class SessionQuery(Model):
    institution: str
    operator: str


class SessionLookup(Model):
    session: Session | None = None


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
    """Who is online and monitoring a queue, with the chat limit of those who have one."""

    queue: str
    operators: list[str]
    limits: dict[str, int] = Field(default_factory=dict)


class TypingNotice(Model):
    """Ephemeral: published on the chat's typing subject, never stored."""

    v: Literal[1] = 1
    institution: str
    chat_id: str
    from_: Sender = Field(alias="from")


EndReason = Literal[
    "signed_in_elsewhere",
    "ended_by_admin",
    "expired",
    "disconnected",
    # The account was disabled or its role changed; the token ran out; the operator signed
    # out (from any of their clients); the account's password was changed (every earlier
    # token ended).
    "account_disabled",
    "token_expired",
    "signed_out",
    "password_changed",
]


class EndSession(Model):
    """End an operator's session from outside it: an admin, or the operator signing out.
    `institution` is the operator's; the principal must manage it, or be the operator."""

    institution: str
    operator: str
    principal: Principal
    reason: Literal["ended_by_admin", "signed_out"]


class Announcement(Model):
    """A consortium-wide message from a consortium admin to every signed-in operator."""

    v: Literal[1] = 1
    id: str
    institution: str
    from_: Sender = Field(alias="from")
    body: str
    ts: str


class SessionEnded(Model):
    """Published on the presence events subject when a session is replaced or ended."""

    v: Literal[1] = 1
    type: Literal["session.ended"] = "session.ended"
    institution: str
    operator: str
    session_id: str
    reason: EndReason


class SessionStarted(Model):
    """Published on the presence events subject when an operator signs in."""

    v: Literal[1] = 1
    type: Literal["session.started"] = "session.started"
    institution: str
    operator: str
    session_id: str


class SessionChanged(Model):
    """Published on the presence events subject when an operator's status or monitored
    queues change: who staffs which queue may have changed (widget availability)."""

    v: Literal[1] = 1
    type: Literal["session.changed"] = "session.changed"
    institution: str
    operator: str
    session_id: str


SessionEvent = Annotated[
    SessionStarted | SessionEnded | SessionChanged, Field(discriminator="type")
]
SESSION_EVENT: TypeAdapter[SessionStarted | SessionEnded | SessionChanged] = TypeAdapter(
    SessionEvent
)


# --- transcripts -------------------------------------------------------------------------


class GetTranscript(Model):
    institution: str
    principal: Principal
    chat_id: str


class DeadLetter(Model):
    """A record a consumer could not read: set aside (and counted) so consumption goes on."""

    v: Literal[1] = 1
    consumer: str
    subject: str
    stream_seq: int
    error: str
    data: str


class AuditQuery(Model):
    """An institution's audit log: who from outside it read its patrons' transcripts."""

    institution: str
    principal: Principal
    since: datetime
    limit: int = Field(default=200, ge=1, le=1000)


AuditAction = Literal["read_transcript", "read_chat", "read_ticket", "erase_patron"]


class AuditEntry(Model):
    """One entry of a library's audit log: a read of its patrons' content from outside
    it (a transcript; a chat as a listing shows it, with its patron's details and
    question; a ticket), or an erasure in its name."""

    at: str
    who: str
    action: AuditAction
    chat_id: str | None = None
    ticket_id: str | None = None
    # Where a read came from (a listing, a change), or what an erasure removed, counted:
    # never whom.
    detail: str | None = None


class AuditReads(Model):
    """Reads of a library's tickets that the gateway served (the tickets service keeps
    no audit log of its own): `institution` is the library, `ids` the tickets read.
    Transcripts records those the audit rule says are audited."""

    institution: str
    principal: Principal
    action: Literal["read_ticket"] = "read_ticket"
    ids: list[str] = Field(max_length=1000)
    detail: str | None = Field(default=None, max_length=80)


class AuditLog(Model):
    entries: list[AuditEntry]


class RoutingDecision(Model):
    """One decision about where a chat waits: when it started, or when it was due to roll
    over. `queue` None: it stayed where it was."""

    at: str
    trigger: Literal["start", "rollover"] = "start"
    queue: str | None
    reason: str
    skipped: list[SkippedQueue] = Field(default_factory=list)


class Transcript(Model):
    chat: Chat
    messages: list[Message]
    routing: list[RoutingDecision]


# The consortium's announcements: one conversation of the consortium's own, which staff of
# every institution read (through their own institution's `internal_list`).
ANNOUNCEMENTS = "announcements"


class InternalMessage(Model):
    """A staff-only message: to one operator, to a queue's staff, or to all online staff.

    `conversation` names the thread it belongs to: `dm:<a>:<b>` (the two operators in
    order), `queue:<name>` or `all`."""

    v: Literal[1] = 1
    id: str
    institution: str
    conversation: str
    from_: Sender = Field(alias="from")
    to_operator: str | None = None
    to_queue: str | None = None
    to_all: bool = False
    body: str
    ts: str


class InternalHistory(Model):
    institution: str
    principal: Principal
    conversation: str
    limit: int = Field(default=200, ge=1, le=1000)


class InternalMessages(Model):
    messages: list[InternalMessage]


# --- coverage -----------------------------------------------------------------------------


class WidgetStatusQuery(Model):
    institution: str
    widget: str


class WidgetStatus(Model):
    """Whether a widget's chain has a queue open and staffed now: routing publishes it on
    the widget's status subject whenever it changes, and answers it when asked."""

    v: Literal[1] = 1
    institution: str
    widget: str
    online: bool
    queue: str | None
    reason: str
    at: str


MAX_COVERAGE_DAYS = 62


class CoverageQuery(Model):
    institution: str
    queue: str
    # ISO 8601: a date (the queue's local midnight), a local date-time, or one with offset.
    start: str = Field(max_length=40)
    end: str = Field(max_length=40)
    # Who asks: a consortium admin may ask about any institution's queue (routing decides
    # from the principal, not from a flag the asker sets).
    principal: Principal


class CoverageInterval(Model):
    start: str
    end: str
    queue: str | None
    reason: str


class Coverage(Model):
    queue: str
    intervals: list[CoverageInterval]


StatsGrouping = Literal["day", "hour", "queue", "operator", "tag", "institution"]


class StatsQuery(Model):
    """`institution`: a library, or the consortium's own name for the whole consortium
    (a consortium admin's)."""

    institution: str
    principal: Principal
    start: datetime
    end: datetime
    group_by: StatsGrouping | None = None


class StatsFigures(Model):
    """What a set of chats came to. `chats` counts the library's patrons' chats (all
    patrons' for the consortium); `answered_for_others` counts other libraries' chats this
    one answered. Waits run from queued to claimed, durations from claimed to closed, in
    seconds; None when no chat had one."""

    chats: int = 0
    answered_at_home: int = 0
    answered_by_backup: int = 0
    answered_by_partners: int = 0
    answered_for_others: int = 0
    missed: int = 0
    missed_rate: float = 0.0
    wait_p50_s: float | None = None
    wait_p90_s: float | None = None
    duration_p50_s: float | None = None
    messages: int = 0


class StatsGroup(StatsFigures):
    """One group: a local day (YYYY-MM-DD), an hour of the week (`mon 09`), a queue, an
    operator, a tag or an institution."""

    key: str


class Stats(StatsFigures):
    """The totals of a span, its groups when asked for, and for the consortium a
    breakdown by institution."""

    institution: str | None
    start: str
    end: str
    group_by: StatsGrouping | None = None
    groups: list[StatsGroup] = Field(default_factory=list)
    institutions: list[StatsGroup] = Field(default_factory=list)


SEARCH_PAGE_MAX = 100


class SearchTranscripts(Model):
    """A page of transcripts, newest first: the chats `institution` may read, or every
    institution's when it is the consortium's own name (a consortium admin's). `home` and
    `answered` filter by the patron's library and the one that answered."""

    institution: str
    principal: Principal
    q: str | None = Field(default=None, min_length=1, max_length=200)
    tag: str | None = None
    queue: str | None = None
    operator: str | None = None
    state: ChatStateName | None = None
    start: datetime | None = None
    end: datetime | None = None
    home: str | None = None
    answered: str | None = None
    limit: int = Field(default=25, ge=1, le=SEARCH_PAGE_MAX)
    cursor: str | None = Field(default=None, max_length=400)


class TranscriptPage(Model):
    chats: list[Chat]
    next_cursor: str | None = None


class GuestChatsQuery(Model):
    """A guest's chats since `since`, as far as the asker's institution may see them."""

    institution: str
    principal: Principal
    guest_id: str
    since: datetime
    limit: int = Field(default=50, ge=1, le=200)


class GuestChats(Model):
    chats: list[Chat]


class MissedQuery(Model):
    institution: str
    principal: Principal
    since: datetime
    limit: int = Field(default=200, ge=1, le=1000)


class MissedChats(Model):
    """Chats of the institution's patrons that nobody claimed, newest first: wherever they
    waited, a backup service's queue included."""

    chats: list[Chat]
