"""Tickets: follow-up work from chats, missed chats, the offline form and staff, with
their replies, internal notes, history, and the mail that carries replies to patrons."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.schemas.base import Model
from shared.schemas.chat import Sender
from shared.schemas.records import Principal

TicketStatus = Literal["open", "pending", "closed"]
TicketSource = Literal["chat", "missed_chat", "offline_form", "staff"]
# Where a mail to the patron is: waiting to go, sent, being retried after a failure, or
# given up on (staff see it on the ticket and send it again or phone).
MailState = Literal["queued", "sent", "retrying", "failed"]
EntryKind = Literal["reply", "note", "patron"]
ChangeKind = Literal["created", "status", "assignee", "reply", "note", "patron_reply"]

# One line, no control characters (C0, DEL, C1) and no line or paragraph separator (every
# character `str.splitlines` or any reader breaks a line at is among them). Mail headers
# do not rely on it (the mail builder makes any stored text one line), but a subject or
# name that would show as several lines is refused where it is typed.
ONE_LINE = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"
SUBJECT_MAX = 200
BODY_MAX = 20_000
TRANSCRIPT_MAX = 1_000
TICKET_PAGE_MAX = 100


class TranscriptLine(Model):
    """A message of the chat a ticket follows up, as it was when the ticket was made."""

    from_: Sender = Field(alias="from")
    body: str
    ts: str


class TicketEntry(Model):
    """A reply to the patron (`reply`), an internal note (`note`) or the patron's own
    answer by email (`patron`)."""

    id: str
    kind: EntryKind
    # The staff member's user name; the patron's address for `patron`.
    by: str
    body: str
    at: str
    mail: MailState | None = None
    mail_error: str | None = None


class TicketChange(Model):
    at: str
    by: str
    what: ChangeKind
    old: str | None = None
    new: str | None = None


class Ticket(Model):
    id: str
    # The reference patrons see in mail subjects, `[T1A2B3C4D]`, that threads replies back.
    ref: str
    institution: str
    source: TicketSource
    chat_id: str | None = None
    transcript: list[TranscriptLine] = Field(default_factory=list)
    name: str | None = None
    email: str
    subject: str
    question: str
    status: TicketStatus
    assignee: str | None = None
    created_by: str
    created_at: str
    updated_at: str
    # The acknowledgement mailed for an offline message (None: none was due).
    acknowledgement: MailState | None = None
    replies: list[TicketEntry] = Field(default_factory=list)
    notes: list[TicketEntry] = Field(default_factory=list)
    history: list[TicketChange] = Field(default_factory=list)
    version: int = 0


class TicketSummary(Model):
    """A ticket in a list or a notice: enough to pick it, not its conversation."""

    id: str
    ref: str
    institution: str
    source: TicketSource
    subject: str
    name: str | None = None
    email: str
    status: TicketStatus
    assignee: str | None = None
    created_at: str
    updated_at: str
    replies: int
    mail_failed: bool = False


# --- requests -----------------------------------------------------------------------------


class CreateTicket(Model):
    institution: str
    # Who asked, when staff did; None for a patron's offline message.
    principal: Principal | None = None
    source: TicketSource = "staff"
    chat_id: str | None = None
    # Checked by the tickets service, so that a missing address is `invalid` naming it.
    email: str
    name: str | None = None
    subject: str
    body: str
    created_by: str
    transcript: list[TranscriptLine] = Field(default_factory=list, max_length=TRANSCRIPT_MAX)
    # Mail the patron that their message arrived (the offline form).
    acknowledge: bool = False


class GetTicket(Model):
    institution: str
    principal: Principal
    ticket_id: str


class ListTickets(Model):
    """`assignee`: a user name, `me`, or `none` (unassigned)."""

    institution: str
    principal: Principal
    status: TicketStatus | None = None
    assignee: str | None = None
    q: str | None = Field(default=None, min_length=1, max_length=200)
    limit: int = Field(default=25, ge=1, le=TICKET_PAGE_MAX)
    cursor: str | None = Field(default=None, max_length=400)


class TicketPage(Model):
    tickets: list[TicketSummary]
    next_cursor: str | None = None


class UpdateTicket(Model):
    """A status and/or an assignee; `assign` says whether `assignee` is meant (None then
    takes the ticket off whoever had it)."""

    institution: str
    principal: Principal
    ticket_id: str
    status: TicketStatus | None = None
    assign: bool = False
    assignee: str | None = None


class ReplyToTicket(Model):
    institution: str
    principal: Principal
    ticket_id: str
    body: str
    internal: bool = False


class TicketNotice(Model):
    """Published on `ticket.<inst>.evt`: a new ticket (for the institution's signed-in
    staff), an assignment (for the assignee's open clients), or the patron's answer by
    email (for the assignee, or all staff when nobody has it)."""

    kind: Literal["created", "assigned", "answered"]
    ticket: TicketSummary
    by: str
