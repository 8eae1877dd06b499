"""Signing in and out, and who the caller is."""

import logging
from collections.abc import Iterable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import Field

from services.gateway import domain, metrics
from services.gateway.api.common import Gw, Staff
from services.gateway.api.sessions import end_session
from services.gateway.auth import StaffClaims
from services.gateway.core import Gateway
from services.gateway.throttle import counter_key as throttle_key
from shared import subjects
from shared.errors import Refusal
from shared.schemas.base import Model
from shared.schemas.directory import SignIn
from shared.schemas.records import Account

log = logging.getLogger(__name__)
router = APIRouter()

SIGN_IN_TIMEOUT_S = 10.0


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


async def forgive(gw: Gateway, keys: Iterable[str]) -> None:
    """Take back an attempt counted in advance. Should that fail, the count stays one
    too high for a minute: on the safe side, and no reason to refuse the caller."""
    for key in keys:
        try:
            await gw.counters.add(key, -1)
        except Exception:
            log.warning("could not take back a counted sign-in attempt", exc_info=True)


@router.post("/auth/login", response_model=LoginResponse)
async def login(gw: Gw, body: LoginRequest, request: Request) -> LoginResponse:
    # Only failures spend the allowances: they stop guessing, never a colleague who
    # signs in correctly many times. They are counted in the shared bucket, so every
    # replica refuses alike and no flood of other keys can clear them.
    address = request.client.host if request.client else "?"
    counted = (
        throttle_key("pair", f"{address}|{body.username}"),
        throttle_key("address", address),
        throttle_key("name", body.username),
    )
    counters = gw.counters
    settings = gw.settings
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
        await forgive(gw, counted)
        metrics.LOGINS.labels("throttled").inc()
        raise Refusal("rate_limited", "too many failed sign-ins; wait a minute")
    try:
        # argon2 runs a few at a time in the directory: a burst of sign-ins queues
        # there, so this waits longer than other requests do.
        user = await gw.bus.request(
            subjects.directory(gw.settings.consortium, "sign_in"),
            SignIn(username=body.username, password=body.password),
            Account,
            timeout=SIGN_IN_TIMEOUT_S,
        )
    except Refusal as refusal:
        if refusal.code == "unauthorized":
            metrics.LOGINS.labels("refused").inc()
        else:
            await forgive(gw, counted)  # not a guess that failed: the directory did not say
        raise
    await forgive(gw, counted)
    metrics.LOGINS.labels("ok").inc()
    claims = StaffClaims(
        user.username,
        user.institution,
        user.role,
        user.display_name,
        generation=user.token_generation,
    )
    token = gw.tokens.issue_staff(claims, gw.clock.now())
    view = UserView(
        username=user.username,
        role=user.role,
        institution=user.institution,
        display_name=user.display_name,
    )
    return LoginResponse(token=token, user=view)


@router.post("/auth/logout", status_code=204)
async def logout(gw: Gw, claims: Staff) -> Response:
    """Sign out everywhere this token reaches: it stops working on every gateway, and
    the operator's session (if any) ends with `signed_out`."""
    if claims.token_id is not None:
        await gw.revoked.revoke(claims.token_id)
    await end_session(gw, claims.username, claims.institution, "signed_out", claims)
    return Response(status_code=204)


@router.get("/me", response_model=UserView)
async def me(claims: Staff) -> UserView:
    return UserView(
        username=claims.username,
        role=claims.role,
        institution=claims.institution,
        display_name=claims.name,
    )
