"""Staff-only internal conversations, as history (live, they come over the socket)."""

from typing import Annotated

from fastapi import APIRouter, Query

from services.gateway import domain
from services.gateway.api.common import Gw, Staff, ask
from shared import subjects
from shared.schemas.requests import InternalHistory, InternalMessages

router = APIRouter()


@router.get("/internal/{conversation}", response_model=InternalMessages)
async def internal_conversation(
    gw: Gw, conversation: str, claims: Staff, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> InternalMessages:
    """Staff-only internal messages of one conversation: `dm:<a>:<b>` (its two
    operators and admins), `queue:<name>` or `all` (staff of the institution), or the
    consortium's `announcements` (all staff)."""
    domain.may_read_conversation(claims, conversation)
    return await ask(
        gw,
        claims,
        subjects.transcripts(claims.institution, "internal_list"),
        InternalHistory,
        InternalMessages,
        institution=claims.institution,
        conversation=conversation,
        limit=limit,
    )
