"""Who answers a queue's chats over a span of days, by hours and calendars alone."""

from typing import Annotated

from fastapi import APIRouter, Query

from services.gateway.api.common import Gw, Staff, ask
from shared import subjects
from shared.schemas.requests import Coverage, CoverageQuery

router = APIRouter()


@router.get("/coverage", response_model=Coverage)
async def coverage(
    gw: Gw,
    claims: Staff,
    queue: Annotated[str, Query(max_length=80)],
    start: Annotated[str, Query(alias="from", max_length=40)],
    end: Annotated[str, Query(alias="to", max_length=40)],
) -> Coverage:
    """Who answers the queue's chats from `from` to `to` (dates are the queue's local
    midnights), by hours and calendars alone."""
    return await ask(
        gw,
        claims,
        subjects.routing(claims.institution, "coverage"),
        CoverageQuery,
        Coverage,
        institution=claims.institution,
        queue=queue,
        start=start,
        end=end,
    )
