"""Staff accounts: read in the caller's scope, changed through the directory (which alone
holds passwords)."""

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import Field

from services.gateway import domain
from services.gateway.api.common import Gw, Staff, change, same_key
from services.gateway.auth import StaffClaims
from services.gateway.core import Gateway
from shared.schemas.base import Model
from shared.schemas.directory import SaveUser, SetPassword
from shared.schemas.records import Account

router = APIRouter()


class UserBody(Account):
    """An account as an admin sends it: a new one needs a password."""

    password: str | None = Field(default=None, max_length=256)


class PasswordBody(Model):
    password: str = Field(max_length=256)


@router.get("/users", response_model=list[Account])
async def list_users(gw: Gw, claims: Staff) -> list[Account]:
    return domain.in_scope(gw.view.accounts.values(), claims, lambda a: a.username)


@router.get("/users/{username}", response_model=Account)
async def read_user(gw: Gw, username: str, claims: Staff) -> Account:
    return domain.visible(gw.view.account(username), f"user {username}", claims)


async def save_user(gw: Gateway, body: UserBody, claims: StaffClaims, create: bool) -> Account:
    account = Account.model_validate(body.model_dump(exclude={"password"}))
    await change(
        gw,
        claims,
        "save_user",
        SaveUser,
        institution=claims.institution,
        record=account,
        password=body.password,
        create=create,
    )
    # As saved: the directory sets the token generation, whatever the body said.
    return gw.view.account(account.username) or account


@router.post("/users", response_model=Account, status_code=201)
async def create_user(gw: Gw, body: UserBody, claims: Staff) -> Account:
    return await save_user(gw, body, claims, create=True)


@router.put("/users/{username}", response_model=Account)
async def replace_user(gw: Gw, username: str, body: UserBody, claims: Staff) -> Account:
    domain.visible(gw.view.account(username), f"user {username}", claims)
    same_key("username", username, body.username, "user")
    return await save_user(gw, body, claims, create=False)


@router.put("/users/{username}/password", status_code=204)
async def set_password(gw: Gw, username: str, body: PasswordBody, claims: Staff) -> Response:
    domain.visible(gw.view.account(username), f"user {username}", claims)
    await change(
        gw,
        claims,
        "set_password",
        SetPassword,
        institution=claims.institution,
        username=username,
        password=body.password,
    )
    return Response(status_code=204)
