"""Widgets: an admin's (origins checked by the schema, scope and queue by the directory),
and the offline form's message, which becomes a ticket (public: the widget page sends it).
The public endpoints the loader calls, status and page views, are in `widget_pages`."""

from fastapi import Request
from fastapi.responses import Response
from pydantic import Field

from services.gateway import domain
from services.gateway.api.common import Gw, throttle
from services.gateway.api.records import collection
from services.gateway.core import Gateway
from services.gateway.throttle import counter_key as throttle_key
from shared import subjects
from shared.errors import Refusal
from shared.schemas.base import Email, Model
from shared.schemas.directory import DeleteWidget, SaveWidget
from shared.schemas.records import Widget
from shared.schemas.tickets import CreateTicket, Ticket

router = collection(
    "/widgets",
    Widget,
    "id",
    lambda view: view.widgets,
    lambda widget, claims, _: domain.sees_institution(claims, widget.institution),
    ("save_widget", "delete_widget"),
    (SaveWidget, DeleteWidget),
)


class OfflineMessage(Model):
    name: str | None = Field(default=None, max_length=80)
    email: Email
    question: str = Field(min_length=1, max_length=4000)


class OfflineReceipt(Model):
    ticket_id: str


def public_widget(gw: Gateway, widget_id: str) -> Widget:
    widget = gw.view.widget(widget_id)
    if widget is None:
        raise Refusal("not_found", "no such widget")
    return widget


def cors(gw: Gateway, request: Request, response: Response, widget: Widget) -> None:
    """A widget's public endpoints answer pages of its allowed origins (and the
    gateway's own widget page), with CORS; a browser page anywhere else is refused."""
    origin = request.headers.get("origin")
    own = domain.origin_of(gw.settings.public_url)
    if not domain.origin_allowed(origin, widget, own):
        raise Refusal("forbidden", "this widget is not for this site")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"


@router.post("/widgets/{widget_id}/offline-message", response_model=OfflineReceipt, status_code=201)
async def offline_message(
    gw: Gw, widget_id: str, body: OfflineMessage, request: Request, response: Response
) -> OfflineReceipt:
    widget = public_widget(gw, widget_id)
    cors(gw, request, response, widget)
    await throttle(gw, throttle_key("offline", request.client.host if request.client else "?"))
    ticket = await gw.bus.request(
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
