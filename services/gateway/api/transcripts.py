"""Chats after the fact: searching transcripts, reading one, missed chats, a returning
guest's chats, the audit log of reads from outside the library, and erasing a patron."""

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.gateway import domain
from services.gateway.api.common import Answer, Gw, Staff, ask, known, principal
from services.gateway.auth import StaffClaims
from services.gateway.core import Gateway
from shared import subjects
from shared.errors import Refusal
from shared.schemas.base import Model
from shared.schemas.chat import TAG_PATTERN, ChatStateName
from shared.schemas.privacy import (
    ErasePatron,
    ErasureBody,
    ErasureReport,
    TicketsErased,
    TranscriptsErased,
)
from shared.schemas.requests import (
    SEARCH_PAGE_MAX,
    AuditLog,
    AuditQuery,
    GetTranscript,
    GuestChats,
    GuestChatsQuery,
    MissedChats,
    MissedQuery,
    SearchTranscripts,
    Transcript,
    TranscriptPage,
)

router = APIRouter()

NAME = r"^[a-z0-9][a-z0-9-]*$"
SEARCH_PARAMETERS = (
    "q",
    "tag",
    "queue",
    "operator",
    "state",
    "from",
    "to",
    "institution",
    "home",
    "answered",
    "limit",
    "cursor",
)


async def since_in(
    gw: Gateway,
    claims: StaffClaims,
    institution: str | None,
    since: datetime,
    limit: int,
    action: subjects.TranscriptsAction,
    query: Callable[..., Model],
    answer: type[Answer],
    request: Request | None = None,
) -> Answer:
    """What the transcripts service holds of the caller's institution (or, for a
    consortium admin, the one named) since `since`, at most `limit` of it. With the
    `request`, a query parameter other than these three is refused."""
    inst = domain.scoped_institution(claims, institution)
    if request is not None:
        known(request, "since", "institution", "limit")
    domain.aware("since", since)
    return await ask(
        gw,
        claims,
        subjects.transcripts(inst, action),
        query,
        answer,
        institution=inst,
        since=since,
        limit=limit,
    )


@router.get("/chats/missed", response_model=MissedChats)
async def missed_chats(
    gw: Gw,
    claims: Staff,
    since: Annotated[datetime, Query()],
    institution: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> MissedChats:
    """Chats of the library's patrons nobody claimed since `since`, newest first,
    including those that had fallen back or rolled over to a backup service."""
    return await since_in(gw, claims, institution, since, limit, "missed", MissedQuery, MissedChats)


@router.get("/transcripts", response_model=TranscriptPage)
async def search_transcripts(
    gw: Gw,
    request: Request,
    claims: Staff,
    q: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    tag: Annotated[str | None, Query(max_length=40, pattern=TAG_PATTERN)] = None,
    queue: Annotated[str | None, Query(max_length=80, pattern=NAME)] = None,
    operator: Annotated[str | None, Query(max_length=120, pattern=NAME)] = None,
    state: Annotated[ChatStateName | None, Query()] = None,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    institution: Annotated[str | None, Query()] = None,
    home: Annotated[str | None, Query(max_length=40, pattern=NAME)] = None,
    answered: Annotated[str | None, Query(max_length=40, pattern=NAME)] = None,
    limit: Annotated[int, Query(ge=1, le=SEARCH_PAGE_MAX)] = 25,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> TranscriptPage:
    """Transcripts newest first, by text and filters, a page at a time (`cursor` from
    the previous page). A library's staff see their patrons' chats and those they
    answered for others; a consortium admin every institution's, or one's."""
    # A consortium admin without `institution`: their own, the consortium's name, which
    # the transcripts service reads as every institution.
    inst = domain.scoped_institution(claims, institution)
    known(request, *SEARCH_PARAMETERS)
    domain.check_span(claims.role, start, end)
    return await ask(
        gw,
        claims,
        subjects.transcripts(inst, "search"),
        SearchTranscripts,
        TranscriptPage,
        institution=inst,
        q=q,
        tag=tag,
        queue=queue,
        operator=operator,
        state=state,
        start=start,
        end=end,
        home=home,
        answered=answered,
        limit=limit,
        cursor=cursor,
    )


@router.get("/guests/{guest_id}/chats", response_model=GuestChats)
async def guest_chats(
    gw: Gw,
    guest_id: str,
    request: Request,
    claims: Staff,
    since: Annotated[datetime | None, Query()] = None,
) -> GuestChats:
    """A returning patron's earlier chats (by default since the start of today in the
    caller's library), for staff whose library may see them."""
    known(request, "since")
    if not domain.GUEST_ID.match(guest_id):
        raise Refusal("not_found", "no such guest")
    if since is None:
        since = domain.start_of_day(gw.clock.now(), gw.view.zone_of(claims.institution))
    domain.aware("since", since)
    return await ask(
        gw,
        claims,
        subjects.transcripts(claims.institution, "guest_chats"),
        GuestChatsQuery,
        GuestChats,
        institution=claims.institution,
        guest_id=guest_id,
        since=since,
    )


@router.get("/transcripts/{chat_id}", response_model=Transcript)
async def transcript(
    gw: Gw, chat_id: str, claims: Staff, institution: Annotated[str | None, Query()] = None
) -> Transcript:
    inst = domain.scoped_institution(claims, institution)
    return await ask(
        gw,
        claims,
        subjects.transcripts(inst, "get"),
        GetTranscript,
        Transcript,
        institution=inst,
        chat_id=chat_id,
    )


@router.get("/audit", response_model=AuditLog)
async def audit_log(
    gw: Gw,
    request: Request,
    claims: Staff,
    since: Annotated[datetime, Query()],
    institution: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> AuditLog:
    """Who from outside the library (the consortium's admins, say) read its patrons'
    transcripts, chats or tickets, and erasures in its name, newest first: for the
    library's admins (docs/security.md, "Audit")."""
    return await since_in(
        gw, claims, institution, since, limit, "audit", AuditQuery, AuditLog, request
    )


@router.post("/erasures", response_model=ErasureReport)
async def erase_patron(gw: Gw, body: ErasureBody, claims: Staff) -> ErasureReport:
    """Erase one patron on request, by guest id or email, from transcripts, the chat
    stream, tickets and guest sightings: for a library's admins (a consortium admin
    names a library, or the consortium for all). Repeating it finishes what a failure
    left undone."""
    inst = domain.scoped_institution(claims, body.institution)
    everywhere = inst == gw.settings.consortium
    # One request for both services (tickets gets it with the chats transcripts erased),
    # so built here rather than by `ask`; its scope asked here too, so that a refusal
    # comes before anything is erased.
    req = ErasePatron(
        institution=inst, principal=principal(claims), guest_id=body.guest_id, email=body.email
    )
    req.scope(gw.settings.consortium)
    chats = await gw.bus.request(
        subjects.transcripts(inst, "erase"), req, TranscriptsErased, timeout=30
    )
    tickets = await gw.bus.request(
        subjects.tickets(inst, "erase"),
        req.model_copy(update={"chat_ids": chats.chat_ids}),
        TicketsErased,
        timeout=30,
    )
    guests = await gw.guests.forget(None if everywhere else inst, chats.guest_ids)
    return ErasureReport(
        chats=chats.chats,
        messages=chats.messages,
        events=chats.events,
        stream_records=chats.stream_records,
        tickets=tickets.tickets,
        guests=guests,
        active_skipped=chats.active_skipped,
    )
