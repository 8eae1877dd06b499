"""What every REST module shares: the gateway and the signed-in caller as FastAPI
dependencies, the one way to ask a service as the caller, and the checks many routes make
of what they are asked.

No `from __future__ import annotations` in the route modules: FastAPI reads their
dependency annotations when the routes are defined.
"""

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request

from services.gateway import domain
from services.gateway.auth import StaffClaims
from services.gateway.core import Gateway
from shared import subjects
from shared.errors import Refusal
from shared.schemas.base import Model
from shared.schemas.directory import Principal, Saved
from shared.subjects import DirectoryAction

Answer = TypeVar("Answer", bound=Model)


def gateway(request: Request) -> Gateway:
    """The process's Gateway, which the application's lifespan puts on its state."""
    gw: Gateway = request.app.state.gateway
    return gw


Gw = Annotated[Gateway, Depends(gateway)]


def staff(gw: Gw, authorization: Annotated[str | None, Header()] = None) -> StaffClaims:
    """The caller's claims, honoured only while their account is as it was signed: a
    disabled or changed account loses access as soon as this replica hears of it."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Refusal("unauthorized", "send Authorization: Bearer <token>")
    claims = gw.tokens.staff(authorization.split(" ", 1)[1].strip())
    domain.current_account(gw.view.account(claims.username), claims)
    return claims


Staff = Annotated[StaffClaims, Depends(staff)]


def principal(claims: StaffClaims) -> Principal:
    return Principal(username=claims.username, institution=claims.institution, role=claims.role)


async def ask(
    gw: Gateway,
    claims: StaffClaims,
    subject: str,
    request: Callable[..., Model],
    answer: type[Answer],
    /,
    *,
    timeout: float | None = None,
    **fields: Any,
) -> Answer:
    """Ask the service behind `subject` on the caller's behalf: the request is built from
    `fields` and the caller's principal (the service checks their scope again), and its
    typed answer returned; a refusal is raised as the service gave it."""
    asked = request(principal=principal(claims), **fields)
    return await gw.bus.request(subject, asked, answer, timeout)


async def change(
    gw: Gateway,
    claims: StaffClaims,
    action: DirectoryAction,
    request: Callable[..., Model],
    /,
    **fields: Any,
) -> None:
    """Ask the directory for a change, and answer once this replica's view has it, so
    the caller reads their own write here (other replicas have it within moments)."""
    subject = subjects.directory(claims.institution, action)
    saved = await ask(gw, claims, subject, request, Saved, **fields)
    if not await gw.view.until(saved.revision):
        raise Refusal("unavailable", "saved, but not yet in force here; read it again shortly")


def known(request: Request, *allowed: str) -> None:
    """A query parameter this route does not know is refused, not ignored: a typo in
    a filter must not quietly widen a search."""
    for name in request.query_params:
        if name not in allowed:
            raise Refusal("invalid", f"{name}: not a parameter of this request")


def same_key(field: str, in_path: str, in_body: str, what: str) -> None:
    """A replace keeps the record's key: renaming means creating a new one."""
    if in_path != in_body:
        raise Refusal("invalid", f"{field}: a {what} cannot be renamed; create a new one")


async def throttle(gw: Gateway, key: str) -> None:
    """At most the sign-in allowance of requests a window for `key`, across replicas."""
    if await gw.counters.add(key) > gw.settings.login_attempts_per_minute:
        raise Refusal("rate_limited", "too many requests; wait a minute")
