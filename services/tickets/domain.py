"""Ticket rules, pure: what a new ticket needs, who may be assigned, what a status change,
a reply, a note and a patron's emailed answer do, and what each mail says. The instant
and the ids are always arguments."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from email_validator import EmailNotValidError, validate_email
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
        email = _EMAIL.validate_python(value.strip())
    except ValidationError:
        raise Refusal("invalid", "email: a ticket needs the patron's email address") from None
    mail_address(email)
    return email


def mail_address(email: str) -> str:
    """The address a patron's mail is sent to, as it goes into `To` and `RCPT TO`: a valid
    address (email-validator) in ASCII (an internationalised domain in its IDNA form), and
    nothing a mail reader could decode into something else (`=?`: an encoded word)."""
    try:
        checked = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError:
        raise Refusal("invalid", "email: not an address mail can be sent to") from None
    address = checked.ascii_email
    if address is None or "=?" in address:
        raise Refusal("invalid", "email: not an address mail can be sent to")
    return address


def _line(value: str | None, field: str, most: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not _ONE_LINE.fullmatch(value):
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


def patron_sender(addresses: list[str]) -> str:
    """The one address a patron's mail is from. A `From` with several (or none, or only a
    group) is refused: never taken as its first, nor any other, address."""
    if len(addresses) != 1 or not addresses[0]:
        raise Refusal("forbidden", "From: not one address")
    return addresses[0]


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
    """A mail to a patron, before it is a MIME message. `to` is the ticket's address as
    stored (`mail_address` gives where it goes); `subject` any text (`header_text` makes
    it one that may stand in a header)."""

    to: str
    subject: str
    body: str


# Never in a header as they are: control characters (C0, DEL, C1), line and paragraph
# separators (everything `str.splitlines` breaks at is among them) and lone surrogates.
_NOT_IN_HEADERS = frozenset(("Cc", "Zl", "Zp", "Cs"))
HEADER_TEXT_MAX = 400


def header_text(value: str) -> str:
    """Text as it may stand in a mail header, whatever was stored: each character above
    becomes a space, each run of white space one space, at most HEADER_TEXT_MAX long.
    (The mail builder then encodes it, so that what looks like an encoded word stays
    text.)"""
    kept = "".join(" " if unicodedata.category(c) in _NOT_IN_HEADERS else c for c in value)
    return " ".join(kept.split())[:HEADER_TEXT_MAX]


# The headers of every mail this service sends, each once; `Reply-To` too when the
# deployment has a reply address. Nothing else: no `Cc`, `Bcc` or second `To`.
LETTER_HEADERS = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
)
# RFC 5322: a field name is printable ASCII but the colon; a line is at most 998 octets.
_HEADER_LINE = re.compile(rb"([!-9;-~]+):[ \t!-~]*")
_FOLDED_LINE = re.compile(rb"[ \t][ \t!-~]*")
LINE_MAX = 998


def header_fault(head: bytes) -> str | None:
    """What is wrong with the header block of a built mail (its bytes up to the empty
    line), if anything. Every line is printable ASCII ended by CRLF, so that no server
    or reader can see a line break where the builder put none (a lone CR or LF, a
    vertical tab, U+0085 or U+2028 are all refused), and the headers are exactly a
    letter's (`Reply-To` at most once)."""
    if not head.endswith(b"\r\n"):
        return "the header block does not end a line"
    names: list[str] = []
    for line in head[:-2].split(b"\r\n"):
        if len(line) > LINE_MAX:
            return "a header line is too long"
        if names and _FOLDED_LINE.fullmatch(line):
            continue
        found = _HEADER_LINE.fullmatch(line)
        if found is None:
            return f"not a header line: {line[:40]!r}"
        names.append(found.group(1).decode().lower())
    wanted = (*LETTER_HEADERS, "reply-to") if "reply-to" in names else LETTER_HEADERS
    if sorted(names) != sorted(wanted):
        return f"headers {', '.join(names)}: not a letter's"
    return None


def addresses_fault(
    senders: list[str], recipients: list[str], sender: str, recipient: str
) -> str | None:
    """A built mail's `From` and `To` as its reader parses them: the service's one
    sender and the one recipient it is sent to, nobody else."""
    if senders != [sender]:
        return "From is not the sender alone"
    if recipients != [recipient]:
        return "To is not the recipient alone"
    return None


def acknowledgement(ticket: Ticket, library: str) -> Letter:
    """That the library has a question: nothing the sender wrote (question, subject,
    name) is in it, since anyone can have the offline form mail any address."""
    return Letter(
        to=ticket.email,
        subject=f"[{ticket.ref}] We have your question",
        body=(
            f"Hello,\n\n{library} has a question sent from its website with this address "
            f"and will answer by email. To add anything, reply to this message and keep "
            f"[{ticket.ref}] in the subject.\n\n"
            "If you did not write to us, you can ignore this message.\n"
        ),
    )


def reply_letter(ticket: Ticket, entry: TicketEntry, library: str) -> Letter:
    return Letter(
        to=ticket.email,
        subject=f"[{ticket.ref}] Re: {ticket.subject}",
        body=f"{entry.body}\n\n-- \n{library}. Reply to this message to answer.\n",
    )


# Acknowledgements to one address are counted across replicas, in a window that runs
# until this long after the last one asked for (the acknowledgements bucket's TTL).
ACKNOWLEDGEMENT_WINDOW = timedelta(hours=1)


def may_acknowledge(asked: int, allowance: int) -> bool:
    """Whether the `asked`-th acknowledgement to one address within the window is mailed:
    the first `allowance` are, the rest not (their tickets are made all the same)."""
    return asked <= allowance


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
