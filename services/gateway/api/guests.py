"""Patrons seen lately on the library's pages: whom staff may invite to chat."""

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from services.gateway.api.common import Gw, Staff
from shared.clock import iso
from shared.schemas.base import Model

router = APIRouter()


class GuestSeen(Model):
    guest_id: str
    widget: str
    last_seen: str
    page: str | None = None


class GuestsSeen(Model):
    guests: list[GuestSeen]


@router.get("/guests", response_model=GuestsSeen)
async def recent_guests(
    gw: Gw, claims: Staff, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> GuestsSeen:
    """Patrons on the library's pages lately (the proactive window), the latest first:
    whom staff may start a chat with."""
    since = gw.clock.now() - timedelta(seconds=gw.settings.proactive_window_s)
    seen = await gw.guests.recent(claims.institution, since, limit)
    return GuestsSeen(
        guests=[
            GuestSeen(guest_id=s.guest_id, widget=s.widget, last_seen=iso(s.last_seen), page=s.page)
            for s in seen
        ]
    )
