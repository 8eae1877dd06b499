"""The public endpoints the widget loader calls from a library's pages, so that a page
nobody chats from holds no socket (docs/protocol.md, "The widget loader"):

- `POST /api/widgets/{id}/views`: the page view (the guest, and the page they are on, for
  staff's list of guests), answered with the guest's token, the key under which an
  invitation for them would be listed, and the status;
- `GET /api/widgets/{id}/status`: availability and waiting invitations, from this
  replica's memory, one body for every page with an ETag and a short max-age, so that an
  ingress or a CDN absorbs the refreshes (`If-None-Match` is answered 304).

Both answer only pages of the widget's allowed origins (CORS, `widgets.cors`). The page
view is sent as `text/plain` JSON, a "simple" request, so the browser sends no preflight
before it."""

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import Field, ValidationError

from services.gateway import domain
from services.gateway.api.common import Gw
from services.gateway.api.widgets import cors, public_widget
from services.gateway.auth import GuestClaims
from services.gateway.core import Gateway
from shared.errors import Refusal
from shared.schemas.base import Model, PageUrl
from shared.schemas.records import Widget

router = APIRouter()

# A routing reason is a short phrase; cut, it still keeps the status under 1 KB.
MAX_REASON = 120


class WidgetStatusView(Model):
    online: bool
    queue: str | None
    reason: str
    # The loader keeps the chat frame (and its socket) open on every page view.
    live_socket: bool = False
    # `<invite key>.<chat id prefix>` of the proactive chats waiting for guests with no
    # socket, the newest first: a page that finds its own key opens the widget.
    invitations: list[str] = Field(default_factory=list)


class PageView(Model):
    # The guest token this browser holds for the widget, if any.
    token: str | None = Field(default=None, max_length=2048)
    page: PageUrl | None = None


class PageViewed(Model):
    token: str
    invite_key: str
    status: WidgetStatusView


async def status_view(gw: Gateway, widget: Widget) -> WidgetStatusView:
    status = await gw.widget_status(widget)
    return WidgetStatusView(
        online=status.online,
        queue=status.queue,
        reason=status.reason[:MAX_REASON],
        live_socket=widget.live_socket,
        invitations=gw.invitations.listed(widget.id),
    )


@router.get(
    "/widgets/{widget_id}/status",
    response_model=WidgetStatusView,
    responses={304: {"description": "Not modified: the ETag in If-None-Match is current"}},
)
async def widget_status(gw: Gw, widget_id: str, request: Request) -> Response:
    widget = public_widget(gw, widget_id)
    body = (await status_view(gw, widget)).to_json()
    tag = domain.entity_tag(body)
    headers = {"ETag": tag, "Cache-Control": f"public, max-age={gw.settings.status_max_age_s}"}
    if domain.not_modified(request.headers.get("if-none-match"), tag):
        response = Response(status_code=304, headers=headers)
    else:
        response = Response(body, media_type="application/json", headers=headers)
    cors(gw, request, response, widget)
    return response


def read_page_view(raw: bytes) -> PageView:
    """The body as JSON whatever its content type (the loader says text/plain); invalid,
    a 422 naming the fields, as any route's."""
    try:
        return PageView.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        errors: list[Any] = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from None


def guest_of(gw: Gateway, token: str | None, widget: Widget) -> str:
    """The guest a token names, when it is valid and for this widget; otherwise a new one
    (as `hello` does: an expired token starts afresh)."""
    if token:
        try:
            claims = gw.tokens.guest(token)
        except Refusal:
            return uuid.uuid4().hex
        if claims.widget == widget.id:
            return claims.guest_id
    return uuid.uuid4().hex


PAGE_VIEW_BODY = {
    "requestBody": {
        "required": False,
        "content": {"text/plain": {"schema": PageView.model_json_schema()}},
    }
}


@router.post("/widgets/{widget_id}/views", response_model=PageViewed, openapi_extra=PAGE_VIEW_BODY)
async def page_view(gw: Gw, widget_id: str, request: Request, response: Response) -> PageViewed:
    """A page of the library's site with the widget on it was opened."""
    widget = public_widget(gw, widget_id)
    cors(gw, request, response, widget)
    if not gw.page_views.take(widget.id):
        wait_ms = max(1, round(1000 / gw.settings.page_views_per_second))
        raise Refusal("rate_limited", "too many page views on this widget", retry_after_ms=wait_ms)
    view = read_page_view(await request.body())
    guest_id = guest_of(gw, view.token, widget)
    now = gw.clock.now()
    token = gw.tokens.issue_guest(GuestClaims(guest_id, widget.id), now)
    await gw.guests.saw_guest(widget.institution, guest_id, widget.id, now, view.page)
    response.headers["Cache-Control"] = "no-store"
    return PageViewed(
        token=token,
        invite_key=domain.invite_key(guest_id),
        status=await status_view(gw, widget),
    )
