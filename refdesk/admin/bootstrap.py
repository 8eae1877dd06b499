"""`refdesk-admin bootstrap`: the consortium's first admin.

A consortium is not a record: it is the name every service is given (REFDESK_CONSORTIUM),
the first part of every user and queue name. What it needs on day one is one consortium
admin, who then creates institutions, queues, widgets and staff through the desk or the
REST API. The account is made by the directory service, through its NATS endpoint, so the
directory's own rules apply (the naming convention, a password of 12 characters or more,
not a common one) and the account is published to every gateway at once. The request is
made as the admin being created: no one else exists yet to make it.
"""

from __future__ import annotations

from nats.js.errors import NotFoundError

from shared import names, subjects
from shared.bus import Bus
from shared.configuration import ConfigView
from shared.errors import Refusal
from shared.schemas.directory import Principal, Saved, SaveUser
from shared.schemas.records import Account
from shared.settings import CommonSettings


class Failed(Exception):
    """What went wrong, said for the person running the tool."""


def check_name(consortium: str, username: str) -> None:
    try:
        names.check_part(consortium, "consortium")
        names.check_consortium_admin(username)
    except ValueError as exc:
        raise Failed(str(exc)) from None
    if not username.startswith(f"{consortium}-"):
        raise Failed(f"{username!r} must start with the consortium's name: '{consortium}-...'")


async def admins(bus: Bus) -> dict[str, Account]:
    """The consortium admins the directory has published."""
    try:
        kv = await bus.js.key_value(subjects.CONFIG_BUCKET)
    except NotFoundError:
        raise Failed("no configuration bucket: start the directory service first") from None
    view = ConfigView(kv)
    await view.start()
    try:
        return {n: a for n, a in view.accounts.items() if a.role == "consortium_admin"}
    finally:
        await view.stop()


async def bootstrap(
    settings: CommonSettings, username: str, display_name: str, password: str
) -> str:
    """Make the first consortium admin; returns what happened. Run again, it changes
    nothing (the password included)."""
    consortium = settings.consortium
    check_name(consortium, username)
    bus = await Bus.connect(settings.nats_url, "admin", 10.0, settings.nats_ca_file)
    try:
        existing = await admins(bus)
        if username in existing:
            return f"{username} is already a consortium admin of {consortium}: nothing changed"
        if existing:
            others = ", ".join(sorted(existing))
            raise Failed(
                f"{consortium} already has consortium admins ({others}): sign in as one of "
                "them to add another"
            )
        account = Account(
            role="consortium_admin",
            username=username,
            institution=consortium,
            display_name=display_name,
        )
        me = Principal(username=username, institution=consortium, role="consortium_admin")
        request = SaveUser(
            institution=consortium, principal=me, record=account, password=password, create=True
        )
        try:
            await bus.request(
                subjects.directory(consortium, "save_user"), request, Saved, timeout=10.0
            )
        except Refusal as refused:
            if refused.code == "unavailable":
                raise Failed("no directory service answers: start refdesk first") from None
            if refused.code == "conflict":
                return f"{username} already exists: nothing changed"
            raise Failed(f"the directory refused: {refused.message}") from None
        return f"consortium {consortium}: admin {username} created; sign in as them"
    finally:
        await bus.close()
