"""A library's figures over a span, as JSON or a spreadsheet."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.gateway import domain
from services.gateway.api.common import Gw, Staff, ask, known
from shared import subjects
from shared.schemas.requests import Stats, StatsGrouping, StatsQuery

router = APIRouter()


@router.get("/stats", response_model=Stats)
async def stats(
    gw: Gw,
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
    inst = domain.scoped_institution(claims, institution)
    known(request, "from", "to", "institution", "group_by", "format")
    domain.check_span(claims.role, start, end)
    figures = await ask(
        gw,
        claims,
        subjects.transcripts(inst, "stats"),
        StatsQuery,
        Stats,
        institution=inst,
        start=start,
        end=end,
        group_by=group_by,
    )
    if format == "csv":
        return Response(
            domain.stats_csv(figures),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="refdesk-stats.csv"'},
        )
    return figures
