"""Patron privacy rules: when a library's transcripts are due, what anonymising leaves, and
which chats an erasure may touch. Pure: the instant is always an argument."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from services.transcripts.domain import ENDED
from shared.schemas.privacy import ErasePatron, email_key

# What an anonymised chat says of its patron: nothing that leads back to them. Statistics
# read other fields (times, queue, who answered, tags, message count), which stay.
ANONYMOUS_PATRON = {"guest_id": "", "name": None, "email": None}
PATRON_NAME = "patron"


def anonymised_chat() -> dict[str, Any]:
    """The update that strips a chat document of its patron: name, email and guest id,
    their question and the searchable copy of the conversation."""
    return {
        "$set": {"patron": dict(ANONYMOUS_PATRON), "question": None, "anonymised": True},
        "$unset": {"text": "", "email_key": ""},
    }


def anonymised_patron_message() -> dict[str, Any]:
    """The update for each of the patron's messages: the text and the name they gave go;
    that the patron spoke then (and so the message count) stays."""
    return {"$set": {"body": "", "from.name": PATRON_NAME}}


def may_be_in_stream(closed_at: str | None, now: datetime, stream_max_age: timedelta) -> bool:
    """Whether the chat stream may still hold a chat's records: they age out of it
    `stream_max_age` after the last one, so an older ended chat need not be purged."""
    if closed_at is None:
        return True
    return datetime.fromisoformat(closed_at) > now - stream_max_age


def patron_filter(req: ErasePatron, scope: str | None) -> dict[str, Any]:
    """The chats of a patron, by guest id or email, of one institution (None: all)."""
    who: list[dict[str, Any]] = []
    if req.guest_id is not None:
        who.append({"patron.guest_id": req.guest_id})
    if req.email is not None:
        who.append({"email_key": email_key(req.email)})
    found: dict[str, Any] = {"$or": who}
    if scope is not None:
        found["institution"] = scope
    return found


def is_ended(state: str) -> bool:
    return state in ENDED
