"""Operators' sessions, ended from outside the desk: by an admin, or by signing out."""

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import Response

from services.gateway import domain
from services.gateway.api.common import Gw, Staff, ask
from services.gateway.auth import StaffClaims
from services.gateway.core import Gateway
from shared import subjects
from shared.errors import Refusal
from shared.schemas.requests import Done, EndSession

router = APIRouter()


async def end_session(
    gw: Gateway,
    operator: str,
    institution: str,
    reason: Literal["ended_by_admin", "signed_out"],
    claims: StaffClaims,
) -> bool:
    """False when the operator was not signed in."""
    try:
        await ask(
            gw,
            claims,
            subjects.presence(institution, "end"),
            EndSession,
            Done,
            institution=institution,
            operator=operator,
            reason=reason,
        )
    except Refusal as refusal:
        if refusal.code == "not_found":
            return False
        raise
    return True


@router.delete("/sessions/{operator}", status_code=204)
async def end_operator_session(gw: Gw, operator: str, claims: Staff) -> Response:
    """An admin ends an operator's session: their client hears `session.ended`
    (`ended_by_admin`), and their chats are held for the owner grace period."""
    account = domain.may_end_session(claims, gw.view.account(operator), operator)
    if not await end_session(gw, operator, account.institution, "ended_by_admin", claims):
        raise Refusal("not_found", f"{operator} is not signed in")
    return Response(status_code=204)
