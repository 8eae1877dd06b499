"""Ticket rules, pure: what a new ticket needs, who may be assigned, what a status change,
a reply, a note and a patron's emailed answer do, and what each mail says. The instant
and the ids are always arguments."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import TypeAdapter, ValidationError

from shared.clock import iso
from shared.errors import Refusal
from shared.schemas.base import Email
from shared.schemas.privacy import email_key
from shared.schemas.records import Account, Principal
from shared.schemas.tickets import (
    BODY_MAX,
    ONE_LINE,
    SUBJECT_MAX,
    CreateTicket,
    MailState,
    ReplyToTicket,
    Ticket,
    TicketChange,
    TicketEntry,
    TicketSummary,
    UpdateTicket,
)

_EMAIL: TypeAdapter[str] = TypeAdapter(Email)
_ONE_LINE = re.compile(ONE_LINE)
# `[T1A2B3C4D]` in a subject: the ticket a patron's mail answers.
REF = re.compile(r"\[(T[0-9A-F]{8})\]")
ASSIGNABLE = ("operator", "institution_admin")


def ref_of(ticket_id: str) -> str:
    return "T" + ticket_id[:8].upper()


def find_ref(subject: str) -> str | None:
    found = REF.search(subject)
    return found.group(1) if found else None


def _email(value: str) -> str:
    try:
        return _EMAIL.validate_python(value.strip())
    except ValidationError:
        raise Refusal("invalid", "email: a ticket needs the patron's email address") from None


def _line(value: str | None, field: str, most: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not _ONE_LINE.match(value):
        raise Refusal("invalid", f"{field}: one line, no control characters")
    if len(value) > most:
        raise Refusal("invalid", f"{field}: at most {most} characters")
    return value


def _body(value: str, field: str) -> str:
    if not value.strip():
        raise Refusal("invalid", f"{field}: cannot be empty")
    if len(value) > BODY_MAX:
        raise Refusal("too_large", f"{field}: at most {BODY_MAX} characters")
    return value


def new_ticket(req: CreateTicket, ticket_id: str, now: datetime) -> Ticket:
    email = _email(req.email)
    subject = _line(req.subject, "subject", SUBJECT_MAX)
    if not subject:
        raise Refusal("invalid", "subject: cannot be empty")
    at = iso(now)
    return Ticket(
        id=ticket_id,
        ref=ref_of(ticket_id),
        institution=req.institution,
        source=req.source,
        chat_id=req.chat_id,
        transcript=req.transcript,
        name=_line(req.name, "name", 80) or None,
        email=email,
        subject=subject,
        question=_body(req.body, "body"),
        status="open",
        created_by=req.created_by,
        created_at=at,
        updated_at=at,
        acknowledgement="queued" if req.acknowledge else None,
        history=[TicketChange(at=at, by=req.created_by, what="created", new=req.source)],
    )


def may_work_on(principal: Principal, ticket: Ticket) -> None:
    """Staff of the ticket's institution work on it (a consortium admin on any)."""
    if not principal.may_act_in(ticket.institution):
        raise Refusal("not_found", f"no ticket {ticket.id}")


def _changed(ticket: Ticket, now: datetime, change: TicketChange, **fields: object) -> Ticket:
    return ticket.model_copy(
        update={
            **fields,
            "updated_at": iso(now),
            "history": [*ticket.history, change],
        }
    )


def update(ticket: Ticket, req: UpdateTicket, assignee: Account | None, now: datetime) -> Ticket:
    """A status and/or assignee change, each recorded; asking for what already holds
    (closing a closed ticket) changes nothing. `assignee` is the account named, if any."""
    may_work_on(req.principal, ticket)
    by = req.principal.username
    at = iso(now)
    if req.assign and req.assignee != ticket.assignee:
        if req.assignee is not None:
            if assignee is None or assignee.disabled:
                raise Refusal("invalid", f"assignee: no user {req.assignee}")
            if assignee.institution != ticket.institution or assignee.role not in ASSIGNABLE:
                raise Refusal("forbidden", "assignee: only staff of the ticket's institution")
        change = TicketChange(at=at, by=by, what="assignee", old=ticket.assignee, new=req.assignee)
        ticket = _changed(ticket, now, change, assignee=req.assignee)
    if req.status is not None and req.status != ticket.status:
        change = TicketChange(at=at, by=by, what="status", old=ticket.status, new=req.status)
        ticket = _changed(ticket, now, change, status=req.status)
    return ticket


def reply(ticket: Ticket, req: ReplyToTicket, entry_id: str, now: datetime) -> Ticket:
    """A reply to the patron (mailed; the ticket then waits on them: `pending`) or an
    internal note (staff only; nothing else changes)."""
    may_work_on(req.principal, ticket)
    body = _body(req.body, "body")
    at = iso(now)
    by = req.principal.username
    if req.internal:
        note = TicketEntry(id=entry_id, kind="note", by=by, body=body, at=at)
        change = TicketChange(at=at, by=by, what="note", new=entry_id)
        return _changed(ticket, now, change, notes=[*ticket.notes, note])
    answer = TicketEntry(id=entry_id, kind="reply", by=by, body=body, at=at, mail="queued")
    change = TicketChange(at=at, by=by, what="reply", new=entry_id)
    return _changed(ticket, now, change, replies=[*ticket.replies, answer], status="pending")


def patron_reply(ticket: Ticket, sender: str, body: str, entry_id: str, now: datetime) -> Ticket:
    """The patron's answer by email, from the address the ticket has: the ticket is open
    again for staff. Mail from any other address is refused (it cannot be theirs)."""
    if email_key(sender) != email_key(ticket.email):
        raise Refusal("forbidden", "this address is not the ticket's patron")
    at = iso(now)
    text = body.strip()[:BODY_MAX] or "(empty message)"
    entry = TicketEntry(id=entry_id, kind="patron", by=ticket.email, body=text, at=at)
    change = TicketChange(at=at, by=ticket.email, what="patron_reply", new=entry_id)
    return _changed(ticket, now, change, replies=[*ticket.replies, entry], status="open")


def mail_state(ticket: Ticket, entry_id: str | None, state: MailState, error: str | None) -> Ticket:
    """Where a mail of the ticket is now: a reply's (by entry id) or the acknowledgement."""
    if entry_id is None:
        return ticket.model_copy(update={"acknowledgement": state})
    replies = [
        r.model_copy(update={"mail": state, "mail_error": error}) if r.id == entry_id else r
        for r in ticket.replies
    ]
    return ticket.model_copy(update={"replies": replies})


def summary(ticket: Ticket) -> TicketSummary:
    return TicketSummary(
        id=ticket.id,
        ref=ticket.ref,
        institution=ticket.institution,
        source=ticket.source,
        subject=ticket.subject,
        name=ticket.name,
        email=ticket.email,
        status=ticket.status,
        assignee=ticket.assignee,
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
        replies=len(ticket.replies),
        mail_failed=ticket.acknowledgement == "failed"
        or any(r.mail == "failed" for r in ticket.replies),
    )


# --- mail ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Letter:
    """A mail to a patron, before it is a MIME message."""

    to: str
    subject: str
    body: str


def acknowledgement(ticket: Ticket, library: str) -> Letter:
    return Letter(
        to=ticket.email,
        subject=f"[{ticket.ref}] We have your question: {ticket.subject}",
        body=(
            f"Hello{' ' + ticket.name if ticket.name else ''},\n\n"
            f"{library} has your question and will answer by email. To add anything, "
            f"reply to this message and keep [{ticket.ref}] in the subject.\n\n"
            f"Your question:\n{ticket.question}\n"
        ),
    )


def reply_letter(ticket: Ticket, entry: TicketEntry, library: str) -> Letter:
    return Letter(
        to=ticket.email,
        subject=f"[{ticket.ref}] Re: {ticket.subject}",
        body=f"{entry.body}\n\n-- \n{library}. Reply to this message to answer.\n",
    )


def retry_after(attempts: int, base: timedelta, most: timedelta) -> timedelta:
    """Back-off before attempt `attempts + 1`: doubling from `base`, at most `most`."""
    return min(base * (2 ** max(0, attempts - 1)), most)


QUOTE = re.compile(r"^\s*>")
WROTE = re.compile(r"^On .+ wrote:\s*$")


def fresh_text(body: str) -> str:
    """A patron's emailed answer without the quoted message it answers."""
    kept: list[str] = []
    for line in body.splitlines():
        if WROTE.match(line):
            break
        if not QUOTE.match(line):
            kept.append(line)
    return "\n".join(kept).strip()
