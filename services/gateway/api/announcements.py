"""The consortium admin's word to every signed-in operator."""

import uuid

from fastapi import APIRouter
from pydantic import Field

from services.gateway import domain
from services.gateway.api.common import Gw, Staff
from shared import subjects
from shared.clock import iso
from shared.schemas.base import Model
from shared.schemas.chat import Sender
from shared.schemas.requests import ANNOUNCEMENTS, Announcement, Done, InternalMessage

router = APIRouter()


class AnnouncementBody(Model):
    body: str = Field(min_length=1, max_length=2000)


class AnnouncementSent(Model):
    id: str


@router.post("/announcements", response_model=AnnouncementSent, status_code=202)
async def announce(gw: Gw, body: AnnouncementBody, claims: Staff) -> AnnouncementSent:
    """The consortium admin's word to every signed-in operator (the "green light"
    message of a shared service), delivered by every gateway to its own operators."""
    domain.may_announce(claims)
    consortium = gw.settings.consortium
    announcement = Announcement(
        id=uuid.uuid4().hex,
        institution=consortium,
        from_=Sender(kind="operator", name=claims.name, id=claims.username),
        body=body.body,
        ts=iso(gw.clock.now()),
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
    await gw.bus.request(subjects.transcripts(consortium, "internal_save"), kept, Done)
    await gw.bus.publish(subjects.announcements(consortium), announcement)
    return AnnouncementSent(id=announcement.id)
