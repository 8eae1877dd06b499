"""The REST API of PROTOCOL.md (the part that exists so far).

No `from __future__ import annotations` here: FastAPI reads the dependency annotations of
these closures at definition time.
"""

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from services.gateway import domain, metrics
from services.gateway.auth import StaffClaims
from services.gateway.handlers import Gateway
from services.gateway.throttle import counter_key as throttle_key
from shared import names, subjects
from shared.clock import iso
from shared.errors import Refusal
from shared.schemas.base import Email, Model
from shared.schemas.chat import TAG_PATTERN, Chat, ChatStateName, Sender
from shared.schemas.directory import (
    DeletePartnership,
    DeleteQueue,
    DeleteSnippet,
    DeleteWidget,
    Principal,
    Saved,
    SaveInstitution,
    SavePartnership,
    SaveQueue,
    SaveSnippet,
    SaveUser,
    SaveWidget,
    SetPassword,
    SignIn,
)
from shared.schemas.privacy import (
    ErasePatron,
    ErasureBody,
    ErasureReport,
    TicketsErased,
    TranscriptsErased,
)
from shared.schemas.records import Account, Institution, Partnership, Queue, Snippet, Widget
from shared.schemas.requests import (
    ANNOUNCEMENTS,
    SEARCH_PAGE_MAX,
    Announcement,
    AuditLog,
    AuditQuery,
    AuditReads,
    Coverage,
    CoverageQuery,
    Done,
    EndSession,
    GetTranscript,
    GuestChats,
    GuestChatsQuery,
    InternalHistory,
    InternalMessage,
    InternalMessages,
    MissedChats,
    MissedQuery,
    SearchTranscripts,
    Staffing,
    StaffingQuery,
    Stats,
    StatsGrouping,
    StatsQuery,
    Transcript,
    TranscriptPage,
)
from shared.schemas.tickets import (
    TICKET_PAGE_MAX,
    TRANSCRIPT_MAX,
    CreateTicket,
    GetTicket,
    ListTickets,
    ReplyToTicket,
    Ticket,
    TicketPage,
    TicketSource,
    TicketStatus,
    TranscriptLine,
    UpdateTicket,
)
from shared.subjects import DirectoryAction

log = logging.getLogger(__name__)

SIGN_IN_TIMEOUT_S = 10.0
MAX_SPAN = timedelta(days=366)
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
    """A follow-up ticket. From a chat (`chat_id`), the chat's email, name and question
    are the defaults; otherwise `email`, `subject` and `body` are needed."""

    chat_id: str | None = Field(default=None, pattern=r"^[a-f0-9]{32}$")
    email: Email | None = None
    name: str | None = Field(default=None, max_length=80)
    subject: str | None = Field(default=None, max_length=200)
    body: str | None = None


class TransferTarget(Model):
    """Somewhere a chat can be transferred: an operator online, or a queue (online when
    someone monitors it). `relation`: the caller's own library, the patron's, a partner's
    or a backup service's; anything but `own` needs the explicit cross-library choice."""

    kind: Literal["operator", "queue"]
    name: str
    display_name: str
    institution: str
    relation: domain.Relation
    online: bool


class TransferTargets(Model):
    targets: list[TransferTarget]


class GuestSeen(Model):
    guest_id: str
    widget: str
    last_seen: str


class GuestsSeen(Model):
    guests: list[GuestSeen]


class TicketPatch(Model):
    """`assignee` null takes the ticket off whoever had it; absent leaves it."""

    status: TicketStatus | None = None
    assignee: str | None = Field(default=None, max_length=100)


class TicketReply(Model):
    body: str
    # An internal note for staff, not mailed to the patron.
    internal: bool = False


class OfflineMessage(Model):
    name: str | None = Field(default=None, max_length=80)
    email: Email
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


Owned = TypeVar("Owned", Institution, Account, Queue, Widget)
Keyed = TypeVar("Keyed", Queue, Widget, Snippet, Partnership)


class UserBody(Account):
    """An account as an admin sends it: a new one needs a password."""

    password: str | None = Field(default=None, max_length=256)


class PasswordBody(Model):
    password: str = Field(max_length=256)


class AnnouncementBody(Model):
    body: str = Field(min_length=1, max_length=2000)


class AnnouncementSent(Model):
    id: str


def visible(thing: Owned | None, what: str, claims: StaffClaims) -> Owned:
    """A configuration record the caller may read: their institution's, or anyone's for
    a consortium admin. Anything else does not exist for them."""
    if thing is None or not (
        claims.role == "consortium_admin" or thing.institution == claims.institution
    ):
        raise Refusal("not_found", f"no {what}")
    return thing


def in_scope(
    things: Iterable[Owned], claims: StaffClaims, key: Callable[[Owned], str]
) -> list[Owned]:
    everyone = claims.role == "consortium_admin"
    return sorted((t for t in things if everyone or t.institution == claims.institution), key=key)


def same_key(field: str, in_path: str, in_body: str, what: str) -> None:
    """A replace keeps the record's key: renaming means creating a new one."""
    if in_path != in_body:
        raise Refusal("invalid", f"{field}: a {what} cannot be renamed; create a new one")


def principal(claims: StaffClaims) -> Principal:
    return Principal(username=claims.username, institution=claims.institution, role=claims.role)


def build_router(get: Callable[[], Gateway]) -> APIRouter:
    """REST routes; `get` returns the process's Gateway once its lifespan has started."""
    router = APIRouter(prefix="/api")

    def staff(authorization: Annotated[str | None, Header()] = None) -> StaffClaims:
        """The caller's claims, honoured only while their account is as it was signed: a
        disabled or changed account loses access as soon as this replica hears of it."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Refusal("unauthorized", "send Authorization: Bearer <token>")
        claims = get().tokens.staff(authorization.split(" ", 1)[1].strip())
        domain.current_account(get().view.account(claims.username), claims)
        return claims

    Staff = Annotated[StaffClaims, Depends(staff)]

    def scope(claims: StaffClaims, institution: str | None) -> str:
        if institution is None or institution == claims.institution:
            return claims.institution
        # It becomes a subject token: `a.b` or `*` must never reach the bus.
        try:
            names.check_part(institution, "institution")
        except ValueError as exc:
            raise Refusal("invalid", f"institution: {exc}") from None
        if claims.role != "consortium_admin":
            raise Refusal("forbidden", "you can only see your own institution")
        return institution

    async def throttle(key: str) -> None:
        """At most the sign-in allowance of requests a window for `key`, across replicas."""
        if await get().counters.add(key) > get().settings.login_attempts_per_minute:
            raise Refusal("rate_limited", "too many requests; wait a minute")

    async def forgive(keys: Iterable[str]) -> None:
        """Take back an attempt counted in advance. Should that fail, the count stays one
        too high for a minute: on the safe side, and no reason to refuse the caller."""
        for key in keys:
            try:
                await get().counters.add(key, -1)
            except Exception:
                log.warning("could not take back a counted sign-in attempt", exc_info=True)

    async def change(action: DirectoryAction, request: Model, claims: StaffClaims) -> None:
        """Ask the directory for a change, and answer once this replica's view has it, so
        the caller reads their own write here (other replicas have it within moments)."""
        saved = await get().bus.request(
            subjects.directory(claims.institution, action), request, Saved
        )
        if not await get().view.until(saved.revision):
            raise Refusal("unavailable", "saved, but not yet in force here; read it again shortly")

    @router.post("/auth/login", response_model=LoginResponse)
    async def login(body: LoginRequest, request: Request) -> LoginResponse:
        # Only failures spend the allowances: they stop guessing, never a colleague who
        # signs in correctly many times. They are counted in the shared bucket, so every
        # replica refuses alike and no flood of other keys can clear them.
        address = request.client.host if request.client else "?"
        counted = (
            throttle_key("pair", f"{address}|{body.username}"),
            throttle_key("address", address),
            throttle_key("name", body.username),
        )
        counters = get().counters
        settings = get().settings
        limits = domain.SignInLimits(
            settings.login_attempts_per_minute,
            settings.login_failures_per_address,
            settings.login_failures_per_name,
        )
        # Already over: refused without a write.
        if limits.blocked(*[await counters.count(key) for key in counted]):
            metrics.LOGINS.labels("throttled").inc()
            raise Refusal("rate_limited", "too many failed sign-ins; wait a minute")
        # Counted before it is checked, atomically, as if it will fail: forty attempts at
        # once take forty places, and only those within the allowance are checked. One
        # that is refused here, or turns out not to be a wrong password, is taken back.
        counts = [await counters.add(key) for key in counted]
        if not limits.admits(*counts):
            await forgive(counted)
            metrics.LOGINS.labels("throttled").inc()
            raise Refusal("rate_limited", "too many failed sign-ins; wait a minute")
        try:
            # argon2 runs a few at a time in the directory: a burst of sign-ins queues
            # there, so this waits longer than other requests do.
            user = await get().bus.request(
                subjects.directory(get().settings.consortium, "sign_in"),
                SignIn(username=body.username, password=body.password),
                Account,
                timeout=SIGN_IN_TIMEOUT_S,
            )
        except Refusal as refusal:
            if refusal.code == "unauthorized":
                metrics.LOGINS.labels("refused").inc()
            else:
                await forgive(counted)  # not a guess that failed: the directory did not say
            raise
        await forgive(counted)
        metrics.LOGINS.labels("ok").inc()
        claims = StaffClaims(
            user.username,
            user.institution,
            user.role,
            user.display_name,
            generation=user.token_generation,
        )
        token = get().tokens.issue_staff(claims, get().clock.now())
        view = UserView(
            username=user.username,
            role=user.role,
            institution=user.institution,
            display_name=user.display_name,
        )
        return LoginResponse(token=token, user=view)

    @router.post("/auth/logout", status_code=204)
    async def logout(claims: Staff) -> Response:
        """Sign out everywhere this token reaches: it stops working on every gateway, and
        the operator's session (if any) ends with `signed_out`."""
        if claims.token_id is not None:
            await get().revoked.revoke(claims.token_id)
        await end_session(claims.username, claims.institution, "signed_out", claims)
        return Response(status_code=204)

    async def end_session(
        operator: str,
        institution: str,
        reason: Literal["ended_by_admin", "signed_out"],
        claims: StaffClaims,
    ) -> bool:
        """False when the operator was not signed in."""
        try:
            await get().bus.request(
                subjects.presence(institution, "end"),
                EndSession(
                    institution=institution,
                    operator=operator,
                    principal=principal(claims),
                    reason=reason,
                ),
                Done,
            )
        except Refusal as refusal:
            if refusal.code == "not_found":
                return False
            raise
        return True

    @router.delete("/sessions/{operator}", status_code=204)
    async def end_operator_session(operator: str, claims: Staff) -> Response:
        """An admin ends an operator's session: their client hears `session.ended`
        (`ended_by_admin`), and their chats are held for the owner grace period."""
        account = visible(get().view.account(operator), f"user {operator}", claims)
        if claims.role == "operator":
            raise Refusal("forbidden", "only admins end other people's sessions")
        if not await end_session(operator, account.institution, "ended_by_admin", claims):
            raise Refusal("not_found", f"{operator} is not signed in")
        return Response(status_code=204)

    @router.post("/announcements", response_model=AnnouncementSent, status_code=202)
    async def announce(body: AnnouncementBody, claims: Staff) -> AnnouncementSent:
        """The consortium admin's word to every signed-in operator (the "green light"
        message of a shared service), delivered by every gateway to its own operators."""
        if claims.role != "consortium_admin":
            raise Refusal("forbidden", "only a consortium admin sends announcements")
        consortium = get().settings.consortium
        announcement = Announcement(
            id=uuid.uuid4().hex,
            institution=consortium,
            from_=Sender(kind="operator", name=claims.name, id=claims.username),
            body=body.body,
            ts=iso(get().clock.now()),
        )
        # Kept before it is sent, as staff messages are: the desk shows the history.
        kept = InternalMessage(
            id=announcement.id,
            institution=consortium,
            conversation=ANNOUNCEMENTS,
            from_=announcement.from_,
            to_all=True,
            body=announcement.body,
            ts=announcement.ts,
        )
        await get().bus.request(subjects.transcripts(consortium, "internal_save"), kept, Done)
        await get().bus.publish(subjects.announcements(consortium), announcement)
        return AnnouncementSent(id=announcement.id)

    @router.get("/me", response_model=UserView)
    async def me(claims: Staff) -> UserView:
        return UserView(
            username=claims.username,
            role=claims.role,
            institution=claims.institution,
            display_name=claims.name,
        )

    # --- institutions -------------------------------------------------------------------------

    @router.get("/institutions", response_model=list[Institution])
    async def list_institutions(claims: Staff) -> list[Institution]:
        return in_scope(get().view.institutions.values(), claims, lambda i: i.name)

    @router.get("/institutions/{name}", response_model=Institution)
    async def read_institution(name: str, claims: Staff) -> Institution:
        return visible(get().view.institutions.get(name), f"institution {name}", claims)

    @router.post("/institutions", response_model=Institution, status_code=201)
    async def create_institution(body: Institution, claims: Staff) -> Institution:
        request = SaveInstitution(
            institution=claims.institution, principal=principal(claims), record=body, create=True
        )
        await change("save_institution", request, claims)
        return body

    @router.put("/institutions/{name}", response_model=Institution)
    async def replace_institution(name: str, body: Institution, claims: Staff) -> Institution:
        visible(get().view.institutions.get(name), f"institution {name}", claims)
        same_key("name", name, body.name, "institution")
        request = SaveInstitution(
            institution=claims.institution, principal=principal(claims), record=body, create=False
        )
        await change("save_institution", request, claims)
        return body

    # --- staff accounts -----------------------------------------------------------------------

    @router.get("/users", response_model=list[Account])
    async def list_users(claims: Staff) -> list[Account]:
        return in_scope(get().view.accounts.values(), claims, lambda a: a.username)

    @router.get("/users/{username}", response_model=Account)
    async def read_user(username: str, claims: Staff) -> Account:
        return visible(get().view.account(username), f"user {username}", claims)

    async def save_user(body: UserBody, claims: StaffClaims, create: bool) -> Account:
        account = Account.model_validate(body.model_dump(exclude={"password"}))
        request = SaveUser(
            institution=claims.institution,
            principal=principal(claims),
            record=account,
            password=body.password,
            create=create,
        )
        await change("save_user", request, claims)
        # As saved: the directory sets the token generation, whatever the body said.
        return get().view.account(account.username) or account

    @router.post("/users", response_model=Account, status_code=201)
    async def create_user(body: UserBody, claims: Staff) -> Account:
        return await save_user(body, claims, create=True)

    @router.put("/users/{username}", response_model=Account)
    async def replace_user(username: str, body: UserBody, claims: Staff) -> Account:
        visible(get().view.account(username), f"user {username}", claims)
        same_key("username", username, body.username, "user")
        return await save_user(body, claims, create=False)

    @router.put("/users/{username}/password", status_code=204)
    async def set_password(username: str, body: PasswordBody, claims: Staff) -> Response:
        visible(get().view.account(username), f"user {username}", claims)
        request = SetPassword(
            institution=claims.institution,
            principal=principal(claims),
            username=username,
            password=body.password,
        )
        await change("set_password", request, claims)
        return Response(status_code=204)

    # --- configuration collections: one shape for each --------------------------------------

    def collection(
        path: str,
        model: type[Keyed],
        key: str,
        records: Callable[[], Mapping[str, Keyed]],
        may_read: Callable[[Keyed, StaffClaims], bool],
        actions: tuple[DirectoryAction, DirectoryAction],
        requests: tuple[Callable[..., Model], Callable[..., Model]],
    ) -> None:
        """List, read, create, replace and delete one kind of configuration record. Reads
        come from this replica's view, scoped by `may_read` (anything else does not exist
        for the caller); changes go to the directory, which checks scope and rules again.
        A refusal anywhere stores nothing."""
        kind = path.strip("/").removesuffix("s")
        save_action, delete_action = actions
        save_request, delete_request = requests

        def readable(name: str, claims: StaffClaims) -> Keyed:
            found = records().get(name)
            if found is None or not may_read(found, claims):
                raise Refusal("not_found", f"no {kind} {name}")
            return found

        async def save(body: Keyed, claims: StaffClaims, create: bool) -> Keyed:
            request = save_request(
                institution=claims.institution,
                principal=principal(claims),
                record=body,
                create=create,
            )
            await change(save_action, request, claims)
            return body

        async def list_all(claims: Staff) -> list[Keyed]:
            found = [r for r in records().values() if may_read(r, claims)]
            return sorted(found, key=lambda r: str(getattr(r, key)))

        async def read(name: str, claims: Staff) -> Keyed:
            return readable(name, claims)

        async def create(body: model, claims: Staff) -> Keyed:  # type: ignore[valid-type]
            return await save(body, claims, create=True)

        async def replace(name: str, body: model, claims: Staff) -> Keyed:  # type: ignore[valid-type]
            readable(name, claims)
            same_key(key, name, getattr(body, key), kind)
            return await save(body, claims, create=False)

        async def delete(name: str, claims: Staff) -> Response:
            readable(name, claims)
            request = delete_request(
                institution=claims.institution, principal=principal(claims), **{key: name}
            )
            await change(delete_action, request, claims)
            return Response(status_code=204)

        one = f"{path}/{{name}}"
        listing = list[model]  # type: ignore[valid-type]
        router.add_api_route(path, list_all, methods=["GET"], response_model=listing)
        router.add_api_route(one, read, methods=["GET"], response_model=model)
        router.add_api_route(path, create, methods=["POST"], response_model=model, status_code=201)
        router.add_api_route(one, replace, methods=["PUT"], response_model=model)
        router.add_api_route(one, delete, methods=["DELETE"], status_code=204)

    def own_institution(record: Queue | Widget, claims: StaffClaims) -> bool:
        return claims.role == "consortium_admin" or record.institution == claims.institution

    def libraries_and_consortium(snippet: Snippet, claims: StaffClaims) -> bool:
        own = (claims.institution, get().settings.consortium)
        return claims.role == "consortium_admin" or snippet.institution in own

    def member(partnership: Partnership, claims: StaffClaims) -> bool:
        return claims.role == "consortium_admin" or claims.institution in partnership.institutions

    # Queues: hours, time zone and calendar are checked by the schema (422 naming the field),
    # scope, name and fallback chain by the directory. Widgets: origins by the schema, scope
    # and queue by the directory. Snippets: a library's and the consortium's. Partnerships:
    # the consortium admin's, read by their members.
    collection(
        "/queues",
        Queue,
        "name",
        lambda: get().view.queues,
        own_institution,
        ("save_queue", "delete_queue"),
        (SaveQueue, DeleteQueue),
    )
    collection(
        "/widgets",
        Widget,
        "id",
        lambda: get().view.widgets,
        own_institution,
        ("save_widget", "delete_widget"),
        (SaveWidget, DeleteWidget),
    )
    collection(
        "/snippets",
        Snippet,
        "name",
        lambda: get().view.snippets,
        libraries_and_consortium,
        ("save_snippet", "delete_snippet"),
        (SaveSnippet, DeleteSnippet),
    )
    collection(
        "/partnerships",
        Partnership,
        "name",
        lambda: get().view.partnerships,
        member,
        ("save_partnership", "delete_partnership"),
        (SavePartnership, DeletePartnership),
    )

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
                principal=principal(claims),
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
            MissedQuery(institution=inst, principal=principal(claims), since=since, limit=limit),
            MissedChats,
        )

    def known(request: Request, *allowed: str) -> None:
        """A query parameter this route does not know is refused, not ignored: a typo in
        a filter must not quietly widen a search."""
        for name in request.query_params:
            if name not in allowed:
                raise Refusal("invalid", f"{name}: not a parameter of this request")

    def span_allowed(claims: StaffClaims, start: datetime | None, end: datetime | None) -> None:
        if start is not None and end is not None:
            aware("from/to", start, end)
            if end <= start:
                raise Refusal("invalid", "to: must be after from")
            if claims.role != "consortium_admin" and end - start > MAX_SPAN:
                raise Refusal("invalid", "from: a span is at most a year (366 days)")
        elif start is not None or end is not None:
            aware("from/to", *(t for t in (start, end) if t is not None))

    @router.get("/stats", response_model=Stats)
    async def stats(
        request: Request,
        claims: Staff,
        start: Annotated[datetime, Query(alias="from")],
        end: Annotated[datetime, Query(alias="to")],
        institution: Annotated[str | None, Query()] = None,
        group_by: Annotated[StatsGrouping | None, Query()] = None,
        format: Annotated[Literal["json", "csv"], Query()] = "json",
    ) -> Stats | Response:
        """A library's chats in a span (a consortium admin: the consortium's, with a
        breakdown by institution), grouped by day, hour of week, queue, operator, tag or
        institution; `format=csv` for spreadsheets."""
        # A consortium admin without `institution`: their own, the consortium's name, which
        # the transcripts service reads as every institution.
        inst = scope(claims, institution)
        known(request, "from", "to", "institution", "group_by", "format")
        span_allowed(claims, start, end)
        figures = await get().bus.request(
            subjects.transcripts(inst, "stats"),
            StatsQuery(
                institution=inst,
                principal=principal(claims),
                start=start,
                end=end,
                group_by=group_by,
            ),
            Stats,
        )
        if format == "csv":
            return Response(
                domain.stats_csv(figures),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": 'attachment; filename="refdesk-stats.csv"'},
            )
        return figures

    @router.get("/transcripts", response_model=TranscriptPage)
    async def search_transcripts(
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
        inst = scope(claims, institution)
        known(request, *SEARCH_PARAMETERS)
        span_allowed(claims, start, end)
        return await get().bus.request(
            subjects.transcripts(inst, "search"),
            SearchTranscripts(
                institution=inst,
                principal=principal(claims),
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
            ),
            TranscriptPage,
        )

    @router.get("/transfer-targets", response_model=TransferTargets)
    async def transfer_targets(
        claims: Staff, chat_id: Annotated[str, Query(pattern=r"^[a-f0-9]{32}$")]
    ) -> TransferTargets:
        """Who and where a chat can go now: operators online (not the caller) and queues,
        own library first."""
        found = await get().bus.last_chat_record(chat_id)
        if found is None or not found[0].state.chat.visible_to(claims.institution):
            raise Refusal("not_found", f"no chat {chat_id}")
        view = get().view
        reach = domain.reachable_institutions(
            claims.institution,
            found[0].state.chat.institution,
            view.partners_of(claims.institution),
            view.backups(),
        )
        queues = sorted(
            (q for q in view.queues.values() if q.institution in reach),
            key=lambda q: (list(reach).index(q.institution), q.name),
        )
        staffed = await asyncio.gather(
            *(
                get().bus.request(
                    subjects.presence(q.institution, "staffing"),
                    StaffingQuery(institution=q.institution, queue=q.name),
                    Staffing,
                )
                for q in queues
            )
        )
        targets: list[TransferTarget] = []
        people: dict[str, TransferTarget] = {}
        for queue, staffing in zip(queues, staffed, strict=True):
            relation = reach[queue.institution]
            targets.append(
                TransferTarget(
                    kind="queue",
                    name=queue.name,
                    display_name=queue.display_name,
                    institution=queue.institution,
                    relation=relation,
                    online=bool(staffing.operators),
                )
            )
            for name in staffing.operators:
                account = view.account(name)
                if name == claims.username or account is None or name in people:
                    continue
                if account.institution not in reach:
                    continue  # a consortium admin monitoring the queue, say
                people[name] = TransferTarget(
                    kind="operator",
                    name=name,
                    display_name=account.display_name,
                    institution=account.institution,
                    relation=reach[account.institution],
                    online=True,
                )
        order = list(reach)
        colleagues = sorted(
            people.values(), key=lambda t: (order.index(t.institution), t.display_name)
        )
        return TransferTargets(targets=[*colleagues, *targets])

    @router.get("/guests", response_model=GuestsSeen)
    async def recent_guests(
        claims: Staff, limit: Annotated[int, Query(ge=1, le=200)] = 50
    ) -> GuestsSeen:
        """Patrons on the library's pages lately (the proactive window), the latest first:
        whom staff may start a chat with."""
        since = get().clock.now() - timedelta(seconds=get().settings.proactive_window_s)
        seen = await get().guests.recent(claims.institution, since, limit)
        return GuestsSeen(
            guests=[
                GuestSeen(guest_id=guest, widget=widget, last_seen=iso(at))
                for guest, widget, at in seen
            ]
        )

    @router.get("/guests/{guest_id}/chats", response_model=GuestChats)
    async def guest_chats(
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
            since = domain.start_of_day(get().clock.now(), get().view.zone_of(claims.institution))
        aware("since", since)
        return await get().bus.request(
            subjects.transcripts(claims.institution, "guest_chats"),
            GuestChatsQuery(
                institution=claims.institution,
                principal=principal(claims),
                guest_id=guest_id,
                since=since,
            ),
            GuestChats,
        )

    @router.get("/transcripts/{chat_id}", response_model=Transcript)
    async def transcript(
        chat_id: str, claims: Staff, institution: Annotated[str | None, Query()] = None
    ) -> Transcript:
        inst = scope(claims, institution)
        return await get().bus.request(
            subjects.transcripts(inst, "get"),
            GetTranscript(institution=inst, principal=principal(claims), chat_id=chat_id),
            Transcript,
        )

    @router.get("/audit", response_model=AuditLog)
    async def audit_log(
        request: Request,
        claims: Staff,
        since: Annotated[datetime, Query()],
        institution: Annotated[str | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> AuditLog:
        """Who from outside the library (the consortium's admins, say) read its patrons'
        transcripts, chats or tickets, and erasures in its name, newest first: for the
        library's admins (docs/security.md, "Audit")."""
        inst = scope(claims, institution)
        known(request, "since", "institution", "limit")
        aware("since", since)
        return await get().bus.request(
            subjects.transcripts(inst, "audit"),
            AuditQuery(institution=inst, principal=principal(claims), since=since, limit=limit),
            AuditLog,
        )

    @router.post("/erasures", response_model=ErasureReport)
    async def erase_patron(body: ErasureBody, claims: Staff) -> ErasureReport:
        """Erase one patron on request, by guest id or email, from transcripts, the chat
        stream, tickets and guest sightings: for a library's admins (a consortium admin
        names a library, or the consortium for all). Repeating it finishes what a failure
        left undone."""
        inst = scope(claims, body.institution)
        everywhere = inst == get().settings.consortium
        req = ErasePatron(
            institution=inst, principal=principal(claims), guest_id=body.guest_id, email=body.email
        )
        # Asked here too so that a refusal comes before anything is erased.
        req.scope(get().settings.consortium)
        chats = await get().bus.request(
            subjects.transcripts(inst, "erase"), req, TranscriptsErased, timeout=30
        )
        tickets = await get().bus.request(
            subjects.tickets(inst, "erase"),
            req.model_copy(update={"chat_ids": chats.chat_ids}),
            TicketsErased,
            timeout=30,
        )
        guests = await get().guests.forget(None if everywhere else inst, chats.guest_ids)
        return ErasureReport(
            chats=chats.chats,
            messages=chats.messages,
            events=chats.events,
            stream_records=chats.stream_records,
            tickets=tickets.tickets,
            guests=guests,
            active_skipped=chats.active_skipped,
        )

    @router.get("/internal/{conversation}", response_model=InternalMessages)
    async def internal_conversation(
        conversation: str, claims: Staff, limit: Annotated[int, Query(ge=1, le=1000)] = 200
    ) -> InternalMessages:
        """Staff-only internal messages of one conversation: `dm:<a>:<b>` (its two
        operators and admins), `queue:<name>` or `all` (staff of the institution), or the
        consortium's `announcements` (all staff)."""
        if conversation.startswith("dm:"):
            people = conversation.split(":")[1:]
            if claims.username not in people and claims.role == "operator":
                raise Refusal("not_found", "no such conversation")
        return await get().bus.request(
            subjects.transcripts(claims.institution, "internal_list"),
            InternalHistory(
                institution=claims.institution,
                principal=principal(claims),
                conversation=conversation,
                limit=limit,
            ),
            InternalMessages,
        )

    async def chat_for_ticket(
        chat_id: str, claims: StaffClaims
    ) -> tuple[Chat, list[TranscriptLine]]:
        """The chat a ticket follows up, and its messages: from the stream while it holds
        the chat, from its transcript after. Another library's chat does not exist here."""
        found = await get().bus.last_chat_record(chat_id)
        if found is not None:
            chat = found[0].state.chat
            if not chat.visible_to(claims.institution):
                raise Refusal("not_found", f"no chat {chat_id}")
            messages = await get().chat_messages(chat.institution, chat_id)
        else:
            try:
                transcript = await get().bus.request(
                    subjects.transcripts(claims.institution, "get"),
                    GetTranscript(
                        institution=claims.institution, principal=principal(claims), chat_id=chat_id
                    ),
                    Transcript,
                )
            except Refusal as refusal:
                if refusal.code == "not_found":
                    raise Refusal("not_found", f"no chat {chat_id}") from None
                raise
            chat, messages = transcript.chat, transcript.messages
        lines = [TranscriptLine(from_=m.from_, body=m.body, ts=m.ts) for m in messages]
        return chat, lines[-TRANSCRIPT_MAX:]

    @router.post("/tickets", response_model=Ticket, status_code=201)
    async def create_ticket(body: TicketRequest, claims: Staff) -> Ticket:
        """One step from a chat under way, a missed chat, or none (staff's own)."""
        source: TicketSource = "staff"
        email, name, subject, question = body.email, body.name, body.subject, body.body
        transcript: list[TranscriptLine] = []
        if body.chat_id is not None:
            chat, transcript = await chat_for_ticket(body.chat_id, claims)
            source = "missed_chat" if chat.state == "missed" else "chat"
            email = email or chat.patron.email
            name = name or chat.patron.name
            asked = chat.question or "Follow-up"
            subject = subject or " ".join(asked.split())[:200]
            question = question or asked
            if email is None:
                raise Refusal("invalid", "email: the chat has none; ask the patron for it")
        if email is None:
            raise Refusal("invalid", "email: a ticket needs the patron's email address")
        return await get().bus.request(
            subjects.tickets(claims.institution, "create"),
            CreateTicket(
                institution=claims.institution,
                principal=principal(claims),
                source=source,
                chat_id=body.chat_id,
                email=email,
                name=name,
                subject=subject or "",
                body=question or "",
                created_by=claims.username,
                transcript=transcript,
            ),
            Ticket,
        )

    async def audited_tickets(
        claims: StaffClaims, institution: str, ids: list[str], detail: str | None
    ) -> None:
        """Tickets of another institution served to the caller (a consortium admin) go in
        that institution's audit log before the caller sees them: transcripts keeps the
        log and applies the audit rule, as it does to the chats it serves."""
        if institution == claims.institution or not ids:
            return
        await get().bus.request(
            subjects.transcripts(institution, "audit_reads"),
            AuditReads(
                institution=institution, principal=principal(claims), ids=ids, detail=detail
            ),
            Done,
        )

    @router.get("/tickets", response_model=TicketPage)
    async def list_tickets(
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
        inst = scope(claims, institution)
        page = await get().bus.request(
            subjects.tickets(inst, "list"),
            ListTickets(
                institution=inst,
                principal=principal(claims),
                status=status,
                assignee=assignee,
                q=q,
                limit=limit,
                cursor=cursor,
            ),
            TicketPage,
        )
        await audited_tickets(claims, inst, [t.id for t in page.tickets], "ticket list")
        return page

    @router.get("/tickets/{ticket_id}", response_model=Ticket)
    async def get_ticket(
        ticket_id: str, claims: Staff, institution: Annotated[str | None, Query()] = None
    ) -> Ticket:
        inst = scope(claims, institution)
        ticket = await get().bus.request(
            subjects.tickets(inst, "get"),
            GetTicket(institution=inst, principal=principal(claims), ticket_id=ticket_id),
            Ticket,
        )
        await audited_tickets(claims, inst, [ticket.id], None)
        return ticket

    @router.patch("/tickets/{ticket_id}", response_model=Ticket)
    async def update_ticket(
        ticket_id: str,
        body: TicketPatch,
        claims: Staff,
        institution: Annotated[str | None, Query()] = None,
    ) -> Ticket:
        inst = scope(claims, institution)
        ticket = await get().bus.request(
            subjects.tickets(inst, "update"),
            UpdateTicket(
                institution=inst,
                principal=principal(claims),
                ticket_id=ticket_id,
                status=body.status,
                assign="assignee" in body.model_fields_set,
                assignee=body.assignee,
            ),
            Ticket,
        )
        await audited_tickets(claims, inst, [ticket.id], "ticket changed")
        return ticket

    @router.post("/tickets/{ticket_id}/replies", response_model=Ticket, status_code=201)
    async def reply_to_ticket(
        ticket_id: str,
        body: TicketReply,
        claims: Staff,
        institution: Annotated[str | None, Query()] = None,
    ) -> Ticket:
        """A reply mailed to the patron, or an internal note (`internal: true`)."""
        inst = scope(claims, institution)
        ticket = await get().bus.request(
            subjects.tickets(inst, "reply"),
            ReplyToTicket(
                institution=inst,
                principal=principal(claims),
                ticket_id=ticket_id,
                body=body.body,
                internal=body.internal,
            ),
            Ticket,
        )
        await audited_tickets(claims, inst, [ticket.id], "ticket answered")
        return ticket

    def cors(request: Request, response: Response, widget: Widget) -> None:
        """A widget's public endpoints answer pages of its allowed origins (and the
        gateway's own widget page), with CORS; a browser page anywhere else is refused."""
        origin = request.headers.get("origin")
        own = domain.origin_of(get().settings.public_url)
        if not domain.origin_allowed(origin, widget, own):
            raise Refusal("forbidden", "this widget is not for this site")
        if origin:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"

    @router.get("/widgets/{widget_id}/status", response_model=WidgetStatusView)
    async def widget_status(
        widget_id: str, request: Request, response: Response
    ) -> WidgetStatusView:
        widget = get().view.widget(widget_id)
        if widget is None:
            raise Refusal("not_found", "no such widget")
        cors(request, response, widget)
        status = await get().widget_status(widget)
        return WidgetStatusView(online=status.online, queue=status.queue, reason=status.reason)

    @router.post(
        "/widgets/{widget_id}/offline-message", response_model=OfflineReceipt, status_code=201
    )
    async def offline_message(
        widget_id: str, body: OfflineMessage, request: Request, response: Response
    ) -> OfflineReceipt:
        widget = get().view.widget(widget_id)
        if widget is None:
            raise Refusal("not_found", "no such widget")
        cors(request, response, widget)
        await throttle(throttle_key("offline", request.client.host if request.client else "?"))
        ticket = await get().bus.request(
            subjects.tickets(widget.institution, "create"),
            CreateTicket(
                institution=widget.institution,
                source="offline_form",
                email=body.email,
                name=body.name,
                subject=" ".join(body.question.split())[:80],
                body=body.question,
                created_by=f"widget:{widget.id}",
                acknowledge=True,
            ),
            Ticket,
        )
        return OfflineReceipt(ticket_id=ticket.id)

    return router
