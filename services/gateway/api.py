"""The REST API of PROTOCOL.md (the part that exists so far).

No `from __future__ import annotations` here: FastAPI reads the dependency annotations of
these closures at definition time.
"""

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from services.gateway import domain, metrics
from services.gateway.auth import StaffClaims
from services.gateway.handlers import Gateway
from shared import subjects
from shared.errors import Refusal
from shared.passwords import verify_password
from shared.schemas.base import Model
from shared.schemas.records import Queue, Widget
from shared.schemas.requests import (
    Coverage,
    CoverageQuery,
    CreateTicket,
    GetTicket,
    GetTranscript,
    InternalHistory,
    InternalMessages,
    MissedChats,
    MissedQuery,
    Stats,
    StatsQuery,
    Ticket,
    Transcript,
)

STATUS = {
    "invalid": 422,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "gone": 410,
    "unavailable": 503,
    "rate_limited": 429,
    "too_large": 413,
    "busy": 503,
    "internal": 500,
}


def refusal_response(refusal: Refusal) -> JSONResponse:
    body: dict[str, str | int] = {"code": refusal.code, "message": refusal.message}
    if refusal.owner:
        body["owner"] = refusal.owner
    headers: dict[str, str] = {}
    if refusal.retry_after_ms is not None:
        body["retry_after_ms"] = refusal.retry_after_ms
        headers["Retry-After"] = str(max(1, -(-refusal.retry_after_ms // 1000)))
    return JSONResponse(body, status_code=STATUS[refusal.code], headers=headers)


class LoginRequest(Model):
    username: str = Field(min_length=1, max_length=120)
    password: str = Field(min_length=1, max_length=256)


class UserView(Model):
    username: str
    role: str
    institution: str
    display_name: str


class LoginResponse(Model):
    token: str
    user: UserView


class TicketRequest(Model):
    chat_id: str | None = Field(default=None, max_length=64)
    email: str = Field(max_length=254)
    subject: str = Field(max_length=200)
    body: str = Field(max_length=10_000)


class OfflineMessage(Model):
    name: str | None = Field(default=None, max_length=80)
    email: str = Field(max_length=254)
    question: str = Field(min_length=1, max_length=4000)


class OfflineReceipt(Model):
    ticket_id: str


class WidgetStatusView(Model):
    online: bool
    queue: str | None
    reason: str


def aware(field: str, *instants: datetime) -> None:
    """A span's edges must say their offset: a bare local time is ambiguous."""
    if any(instant.tzinfo is None for instant in instants):
        raise Refusal("invalid", f"{field}: give a time zone offset, e.g. Z")


Owned = TypeVar("Owned", Queue, Widget)


def visible(thing: Owned | None, what: str, claims: StaffClaims) -> Owned:
    """A configuration document the caller may read: their institution's, or anyone's for
    a consortium admin. Anything else does not exist for them."""
    if thing is None or not (
        claims.role == "consortium_admin" or thing.institution == claims.institution
    ):
        raise Refusal("not_found", f"no {what}")
    return thing


def saved_or_refused(saved: bool, create: bool, what: str) -> None:
    """A create of a key that exists, or a replace of one that does not, stored nothing."""
    if not saved and create:
        raise Refusal("conflict", f"{what} already exists")
    if not saved:
        raise Refusal("not_found", f"no {what}")


def same_identity(what: str, key: tuple[str, str, str], stored: Owned, body: Owned) -> None:
    """A replace keeps the document's key (field, path value, body value) and institution."""
    field, in_path, in_body = key
    if in_path != in_body:
        raise Refusal("invalid", f"{field}: a {what} cannot be renamed; create a new one")
    if stored.institution != body.institution:
        raise Refusal("invalid", f"institution: a {what} cannot move to another institution")


def build_router(get: Callable[[], Gateway]) -> APIRouter:
    """REST routes; `get` returns the process's Gateway once its lifespan has started."""
    router = APIRouter(prefix="/api")
    attempts: dict[str, domain.TokenBucket] = {}

    def staff(authorization: Annotated[str | None, Header()] = None) -> StaffClaims:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Refusal("unauthorized", "send Authorization: Bearer <token>")
        return get().tokens.staff(authorization.split(" ", 1)[1].strip())

    Staff = Annotated[StaffClaims, Depends(staff)]

    def scope(claims: StaffClaims, institution: str | None) -> str:
        if institution is None or institution == claims.institution:
            return claims.institution
        if claims.role != "consortium_admin":
            raise Refusal("forbidden", "you can only see your own institution")
        return institution

    def bucket(key: str) -> domain.TokenBucket:
        if len(attempts) > 10_000:
            attempts.clear()
        per_minute = get().settings.login_attempts_per_minute
        return attempts.setdefault(
            key, domain.TokenBucket(per_minute / 60.0, per_minute, time.monotonic())
        )

    def throttle(key: str) -> None:
        if not bucket(key).take(time.monotonic()):
            raise Refusal("rate_limited", "too many requests; wait a minute")

    @router.post("/auth/login", response_model=LoginResponse)
    async def login(body: LoginRequest, request: Request) -> LoginResponse:
        # Only failures spend the allowance: it stops guessing, never a colleague who
        # signs in correctly many times.
        client = request.client.host if request.client else "?"
        failures = bucket(f"{client}|{body.username}")
        if not failures.available(time.monotonic()):
            metrics.LOGINS.labels("throttled").inc()
            raise Refusal("rate_limited", "too many failed sign-ins; wait a minute")
        user = await get().config.user(body.username)
        # argon2 takes tens of milliseconds of CPU: in a thread (it releases the GIL), so a
        # sign-in does not hold up every socket on this replica's event loop.
        if user is None or not await asyncio.to_thread(
            verify_password, user.password_hash, body.password
        ):
            failures.take(time.monotonic())
            metrics.LOGINS.labels("refused").inc()
            raise Refusal("unauthorized", "wrong user name or password")
        metrics.LOGINS.labels("ok").inc()
        claims = StaffClaims(user.username, user.institution, user.role, user.display_name)
        token = get().tokens.issue_staff(claims, get().clock.now())
        view = UserView(
            username=user.username,
            role=user.role,
            institution=user.institution,
            display_name=user.display_name,
        )
        return LoginResponse(token=token, user=view)

    @router.get("/me", response_model=UserView)
    async def me(claims: Staff) -> UserView:
        return UserView(
            username=claims.username,
            role=claims.role,
            institution=claims.institution,
            display_name=claims.name,
        )

    @router.get("/queues", response_model=list[Queue])
    async def list_queues(claims: Staff) -> list[Queue]:
        everyone = claims.role == "consortium_admin"
        return await get().config.queues_of(None if everyone else claims.institution)

    async def visible_queue(name: str, claims: StaffClaims) -> Queue:
        return visible(await get().config.queue(name), f"queue {name}", claims)

    @router.get("/queues/{name}", response_model=Queue)
    async def read_queue(name: str, claims: Staff) -> Queue:
        return await visible_queue(name, claims)

    async def save_queue(queue: Queue, claims: StaffClaims, create: bool) -> Queue:
        """Hours, time zone and calendar are checked by the schema (422 naming the
        field); the fallback chain against the stored queues. A refusal stores nothing."""
        domain.check_admin("queues", queue.institution, claims.role, claims.institution)
        if await get().config.institution(queue.institution) is None:
            raise Refusal("invalid", f"institution: no institution {queue.institution}")
        domain.check_fallback(queue, await get().config.queues_of(None), claims.role)
        saved_or_refused(
            await get().config.save_queue(queue, create), create, f"queue {queue.name}"
        )
        return queue

    @router.post("/queues", response_model=Queue, status_code=201)
    async def create_queue(body: Queue, claims: Staff) -> Queue:
        return await save_queue(body, claims, create=True)

    @router.put("/queues/{name}", response_model=Queue)
    async def replace_queue(name: str, body: Queue, claims: Staff) -> Queue:
        same_identity("queue", ("name", name, body.name), await visible_queue(name, claims), body)
        return await save_queue(body, claims, create=False)

    @router.delete("/queues/{name}", status_code=204)
    async def delete_queue(name: str, claims: Staff) -> Response:
        queue = await visible_queue(name, claims)
        domain.check_admin("queues", queue.institution, claims.role, claims.institution)
        users = [q.name for q in await get().config.queues_of(None) if name in q.fallback]
        widgets = await get().config.widgets_on(name)
        if users or widgets:
            raise Refusal(
                "conflict", f"{name} is still used by queues {users} and widgets {widgets}"
            )
        await get().config.delete_queue(name)
        return Response(status_code=204)

    @router.get("/widgets", response_model=list[Widget])
    async def list_widgets(claims: Staff) -> list[Widget]:
        everyone = claims.role == "consortium_admin"
        return await get().config.widgets_of(None if everyone else claims.institution)

    async def visible_widget(widget_id: str, claims: StaffClaims) -> Widget:
        return visible(await get().config.widget(widget_id), f"widget {widget_id}", claims)

    @router.get("/widgets/{widget_id}", response_model=Widget)
    async def read_widget(widget_id: str, claims: Staff) -> Widget:
        return await visible_widget(widget_id, claims)

    async def save_widget(widget: Widget, claims: StaffClaims, create: bool) -> Widget:
        """Origins are checked by the schema (422 naming the field); the queue against
        the stored queues of the widget's library. A refusal stores nothing."""
        domain.check_admin("widgets", widget.institution, claims.role, claims.institution)
        domain.check_widget_queue(widget, await get().config.queue(widget.queue))
        saved = await get().config.save_widget(widget, create)
        saved_or_refused(saved, create, f"widget {widget.id}")
        return widget

    @router.post("/widgets", response_model=Widget, status_code=201)
    async def create_widget(body: Widget, claims: Staff) -> Widget:
        return await save_widget(body, claims, create=True)

    @router.put("/widgets/{widget_id}", response_model=Widget)
    async def replace_widget(widget_id: str, body: Widget, claims: Staff) -> Widget:
        stored = await visible_widget(widget_id, claims)
        same_identity("widget", ("id", widget_id, body.id), stored, body)
        return await save_widget(body, claims, create=False)

    @router.delete("/widgets/{widget_id}", status_code=204)
    async def delete_widget(widget_id: str, claims: Staff) -> Response:
        widget = await visible_widget(widget_id, claims)
        domain.check_admin("widgets", widget.institution, claims.role, claims.institution)
        await get().config.delete_widget(widget_id)
        return Response(status_code=204)

    @router.get("/coverage", response_model=Coverage)
    async def coverage(
        claims: Staff,
        queue: Annotated[str, Query(max_length=80)],
        start: Annotated[str, Query(alias="from", max_length=40)],
        end: Annotated[str, Query(alias="to", max_length=40)],
    ) -> Coverage:
        """Who answers the queue's chats from `from` to `to` (dates are the queue's local
        midnights), by hours and calendars alone."""
        return await get().bus.request(
            subjects.routing(claims.institution, "coverage"),
            CoverageQuery(
                institution=claims.institution,
                queue=queue,
                start=start,
                end=end,
                any_institution=claims.role == "consortium_admin",
            ),
            Coverage,
        )

    @router.get("/chats/missed", response_model=MissedChats)
    async def missed_chats(
        claims: Staff,
        since: Annotated[datetime, Query()],
        institution: Annotated[str | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> MissedChats:
        """Chats of the library's patrons nobody claimed since `since`, newest first,
        including those that had fallen back or rolled over to a backup service."""
        inst = scope(claims, institution)
        aware("since", since)
        return await get().bus.request(
            subjects.transcripts(inst, "missed"),
            MissedQuery(institution=inst, since=since, limit=limit),
            MissedChats,
        )

    @router.get("/stats", response_model=Stats)
    async def stats(
        claims: Staff,
        start: Annotated[datetime, Query(alias="from")],
        end: Annotated[datetime, Query(alias="to")],
        institution: Annotated[str | None, Query()] = None,
    ) -> Stats:
        """A library's chats in a span: answered at home, by a backup service, missed."""
        inst = scope(claims, institution)
        aware("from/to", start, end)
        if end <= start:
            raise Refusal("invalid", "to: must be after from")
        return await get().bus.request(
            subjects.transcripts(inst, "stats"),
            StatsQuery(institution=inst, start=start, end=end),
            Stats,
        )

    @router.get("/transcripts/{chat_id}", response_model=Transcript)
    async def transcript(
        chat_id: str, claims: Staff, institution: Annotated[str | None, Query()] = None
    ) -> Transcript:
        inst = scope(claims, institution)
        return await get().bus.request(
            subjects.transcripts(inst, "get"),
            GetTranscript(institution=inst, chat_id=chat_id),
            Transcript,
        )

    @router.get("/internal/{conversation}", response_model=InternalMessages)
    async def internal_conversation(
        conversation: str, claims: Staff, limit: Annotated[int, Query(ge=1, le=1000)] = 200
    ) -> InternalMessages:
        """Staff-only internal messages of one conversation: `dm:<a>:<b>` (its two
        operators and admins), `queue:<name>` or `all` (staff of the institution)."""
        if conversation.startswith("dm:"):
            people = conversation.split(":")[1:]
            if claims.username not in people and claims.role == "operator":
                raise Refusal("not_found", "no such conversation")
        return await get().bus.request(
            subjects.transcripts(claims.institution, "internal_list"),
            InternalHistory(institution=claims.institution, conversation=conversation, limit=limit),
            InternalMessages,
        )

    @router.post("/tickets", response_model=Ticket, status_code=201)
    async def create_ticket(body: TicketRequest, claims: Staff) -> Ticket:
        return await get().bus.request(
            subjects.tickets(claims.institution, "create"),
            CreateTicket(
                institution=claims.institution,
                chat_id=body.chat_id,
                email=body.email,
                subject=body.subject,
                body=body.body,
                created_by=claims.username,
            ),
            Ticket,
        )

    @router.get("/tickets/{ticket_id}", response_model=Ticket)
    async def get_ticket(
        ticket_id: str, claims: Staff, institution: Annotated[str | None, Query()] = None
    ) -> Ticket:
        inst = scope(claims, institution)
        return await get().bus.request(
            subjects.tickets(inst, "get"), GetTicket(institution=inst, ticket_id=ticket_id), Ticket
        )

    def cors(request: Request, response: Response, allowed: list[str]) -> None:
        origin = request.headers.get("origin")
        if origin and origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"

    @router.get("/widgets/{widget_id}/status", response_model=WidgetStatusView)
    async def widget_status(
        widget_id: str, request: Request, response: Response
    ) -> WidgetStatusView:
        widget = await get().config.widget(widget_id)
        if widget is None:
            raise Refusal("not_found", f"no widget {widget_id}")
        cors(request, response, widget.allowed_origins)
        status = await get().widget_status(widget)
        return WidgetStatusView(online=status.online, queue=status.queue, reason=status.reason)

    @router.post(
        "/widgets/{widget_id}/offline-message", response_model=OfflineReceipt, status_code=201
    )
    async def offline_message(
        widget_id: str, body: OfflineMessage, request: Request, response: Response
    ) -> OfflineReceipt:
        widget = await get().config.widget(widget_id)
        if widget is None:
            raise Refusal("not_found", f"no widget {widget_id}")
        cors(request, response, widget.allowed_origins)
        throttle(f"offline|{request.client.host if request.client else '?'}")
        ticket = await get().bus.request(
            subjects.tickets(widget.institution, "create"),
            CreateTicket(
                institution=widget.institution,
                email=body.email,
                subject=f"Offline question from {body.name or 'a patron'}",
                body=body.question,
                created_by=f"widget:{widget.id}",
            ),
            Ticket,
        )
        return OfflineReceipt(ticket_id=ticket.id)

    return router
