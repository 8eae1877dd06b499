"""Follow-up tickets: made by staff (from a chat under way, a missed chat, or none), listed,
read, changed and answered. Another institution's tickets served to a consortium admin go in
that institution's audit log."""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import Field

from services.gateway import domain
from services.gateway.api.common import Gw, Staff, ask, known
from services.gateway.auth import StaffClaims
from services.gateway.core import Gateway
from shared import subjects
from shared.errors import Refusal
from shared.schemas.base import Email, Model
from shared.schemas.chat import Chat
from shared.schemas.requests import AuditReads, Done, GetTranscript, Transcript
from shared.schemas.tickets import (
    TICKET_PAGE_MAX,
    TRANSCRIPT_MAX,
    CreateTicket,
    GetTicket,
    ListTickets,
    ReplyToTicket,
    Ticket,
    TicketPage,
    TicketStatus,
    TranscriptLine,
    UpdateTicket,
)

router = APIRouter()


class TicketRequest(Model):
    """A follow-up ticket. From a chat (`chat_id`), the chat's email, name and question
    are the defaults; otherwise `email`, `subject` and `body` are needed."""

    chat_id: str | None = Field(default=None, pattern=r"^[a-f0-9]{32}$")
    email: Email | None = None
    name: str | None = Field(default=None, max_length=80)
    subject: str | None = Field(default=None, max_length=200)
    body: str | None = None


class TicketPatch(Model):
    """`assignee` null takes the ticket off whoever had it; absent leaves it."""

    status: TicketStatus | None = None
    assignee: str | None = Field(default=None, max_length=100)


class TicketReply(Model):
    body: str
    # An internal note for staff, not mailed to the patron.
    internal: bool = False


async def chat_for_ticket(
    gw: Gateway, chat_id: str, claims: StaffClaims
) -> tuple[Chat, list[TranscriptLine]]:
    """The chat a ticket follows up, and its messages: from the stream while it holds
    the chat, from its transcript after. Another library's chat does not exist here."""
    found = await gw.bus.last_chat_record(chat_id)
    if found is not None:
        chat = found[0].state.chat
        if not chat.visible_to(claims.institution):
            raise Refusal("not_found", f"no chat {chat_id}")
        messages = await gw.chat_messages(chat.institution, chat_id)
    else:
        try:
            transcript = await ask(
                gw,
                claims,
                subjects.transcripts(claims.institution, "get"),
                GetTranscript,
                Transcript,
                institution=claims.institution,
                chat_id=chat_id,
            )
        except Refusal as refusal:
            if refusal.code == "not_found":
                raise Refusal("not_found", f"no chat {chat_id}") from None
            raise
        chat, messages = transcript.chat, transcript.messages
    lines = [TranscriptLine(from_=m.from_, body=m.body, ts=m.ts) for m in messages]
    return chat, lines[-TRANSCRIPT_MAX:]


@router.post("/tickets", response_model=Ticket, status_code=201)
async def create_ticket(gw: Gw, body: TicketRequest, claims: Staff) -> Ticket:
    """One step from a chat under way, a missed chat, or none (staff's own)."""
    chat: Chat | None = None
    transcript: list[TranscriptLine] = []
    if body.chat_id is not None:
        chat, transcript = await chat_for_ticket(gw, body.chat_id, claims)
    follow_up = domain.follow_up(chat, body.email, body.name, body.subject, body.body)
    return await ask(
        gw,
        claims,
        subjects.tickets(claims.institution, "create"),
        CreateTicket,
        Ticket,
        institution=claims.institution,
        source=follow_up.source,
        chat_id=body.chat_id,
        email=follow_up.email,
        name=follow_up.name,
        subject=follow_up.subject,
        body=follow_up.question,
        created_by=claims.username,
        transcript=transcript,
    )


async def audited_tickets(
    gw: Gateway, claims: StaffClaims, institution: str, ids: list[str], detail: str | None
) -> None:
    """Tickets of another institution served to the caller (a consortium admin) go in
    that institution's audit log before the caller sees them: transcripts keeps the
    log and applies the audit rule, as it does to the chats it serves."""
    if not domain.reads_to_audit(claims.institution, institution, ids):
        return
    await ask(
        gw,
        claims,
        subjects.transcripts(institution, "audit_reads"),
        AuditReads,
        Done,
        institution=institution,
        ids=ids,
        detail=detail,
    )


@router.get("/tickets", response_model=TicketPage)
async def list_tickets(
    gw: Gw,
    request: Request,
    claims: Staff,
    status: Annotated[TicketStatus | None, Query()] = None,
    assignee: Annotated[str | None, Query(max_length=100)] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    institution: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=TICKET_PAGE_MAX)] = 25,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> TicketPage:
    """Newest first; `assignee=me`, `assignee=none` (unassigned) or a user name."""
    known(request, "status", "assignee", "q", "institution", "limit", "cursor")
    inst = domain.scoped_institution(claims, institution)
    page = await ask(
        gw,
        claims,
        subjects.tickets(inst, "list"),
        ListTickets,
        TicketPage,
        institution=inst,
        status=status,
        assignee=assignee,
        q=q,
        limit=limit,
        cursor=cursor,
    )
    await audited_tickets(gw, claims, inst, [t.id for t in page.tickets], "ticket list")
    return page


async def ticket_action(
    gw: Gateway,
    claims: StaffClaims,
    institution: str | None,
    action: subjects.TicketsAction,
    request: Callable[..., Model],
    detail: str | None,
    **fields: Any,
) -> Ticket:
    """One ticket read or changed, in the caller's institution or (a consortium admin)
    the one named, and put in that institution's audit log with `detail`."""
    inst = domain.scoped_institution(claims, institution)
    ticket = await ask(
        gw, claims, subjects.tickets(inst, action), request, Ticket, institution=inst, **fields
    )
    await audited_tickets(gw, claims, inst, [ticket.id], detail)
    return ticket


@router.get("/tickets/{ticket_id}", response_model=Ticket)
async def get_ticket(
    gw: Gw, ticket_id: str, claims: Staff, institution: Annotated[str | None, Query()] = None
) -> Ticket:
    return await ticket_action(gw, claims, institution, "get", GetTicket, None, ticket_id=ticket_id)


@router.patch("/tickets/{ticket_id}", response_model=Ticket)
async def update_ticket(
    gw: Gw,
    ticket_id: str,
    body: TicketPatch,
    claims: Staff,
    institution: Annotated[str | None, Query()] = None,
) -> Ticket:
    return await ticket_action(
        gw,
        claims,
        institution,
        "update",
        UpdateTicket,
        "ticket changed",
        ticket_id=ticket_id,
        status=body.status,
        assign="assignee" in body.model_fields_set,
        assignee=body.assignee,
    )


@router.post("/tickets/{ticket_id}/replies", response_model=Ticket, status_code=201)
async def reply_to_ticket(
    gw: Gw,
    ticket_id: str,
    body: TicketReply,
    claims: Staff,
    institution: Annotated[str | None, Query()] = None,
) -> Ticket:
    """A reply mailed to the patron, or an internal note (`internal: true`)."""
    return await ticket_action(
        gw,
        claims,
        institution,
        "reply",
        ReplyToTicket,
        "ticket answered",
        ticket_id=ticket_id,
        body=body.body,
        internal=body.internal,
    )
