"""One shape for each kind of configuration record an admin keeps (queues, widgets,
snippets, partnerships): list, read, create, replace and delete.

No `from __future__ import annotations`: the routes' body annotation is the record's model,
a local name FastAPI must see as a class when it defines them.
"""

from collections.abc import Callable, Mapping
from typing import TypeVar

from fastapi import APIRouter
from fastapi.responses import Response

from services.gateway.api.common import Gw, Staff, change, same_key
from services.gateway.auth import StaffClaims
from services.gateway.core import Gateway
from shared.configuration import ConfigView
from shared.errors import Refusal
from shared.schemas.base import Model
from shared.schemas.records import Partnership, Queue, Snippet, Widget
from shared.subjects import DirectoryAction

Keyed = TypeVar("Keyed", Queue, Widget, Snippet, Partnership)
# Whether the caller may read a record; the last argument is the consortium's name.
MayRead = Callable[[Keyed, StaffClaims, str], bool]


def collection(
    path: str,
    model: type[Keyed],
    key: str,
    records: Callable[[ConfigView], Mapping[str, Keyed]],
    may_read: MayRead[Keyed],
    actions: tuple[DirectoryAction, DirectoryAction],
    requests: tuple[Callable[..., Model], Callable[..., Model]],
) -> APIRouter:
    """The routes of one kind of configuration record. Reads come from this replica's
    view, scoped by `may_read` (anything else does not exist for the caller); changes go
    to the directory, which checks scope and rules again. A refusal anywhere stores
    nothing."""
    router = APIRouter()
    kind = path.strip("/").removesuffix("s")
    save_action, delete_action = actions
    save_request, delete_request = requests

    def readable(gw: Gateway, name: str, claims: StaffClaims) -> Keyed:
        found = records(gw.view).get(name)
        if found is None or not may_read(found, claims, gw.settings.consortium):
            raise Refusal("not_found", f"no {kind} {name}")
        return found

    async def save(gw: Gateway, body: Keyed, claims: StaffClaims, create: bool) -> Keyed:
        await change(
            gw,
            claims,
            save_action,
            save_request,
            institution=claims.institution,
            record=body,
            create=create,
        )
        return body

    async def list_all(gw: Gw, claims: Staff) -> list[Keyed]:
        consortium = gw.settings.consortium
        found = [r for r in records(gw.view).values() if may_read(r, claims, consortium)]
        return sorted(found, key=lambda r: str(getattr(r, key)))

    async def read(gw: Gw, name: str, claims: Staff) -> Keyed:
        return readable(gw, name, claims)

    async def create(gw: Gw, body: model, claims: Staff) -> Keyed:  # type: ignore[valid-type]
        return await save(gw, body, claims, create=True)

    async def replace(gw: Gw, name: str, body: model, claims: Staff) -> Keyed:  # type: ignore[valid-type]
        readable(gw, name, claims)
        same_key(key, name, getattr(body, key), kind)
        return await save(gw, body, claims, create=False)

    async def delete(gw: Gw, name: str, claims: Staff) -> Response:
        readable(gw, name, claims)
        fields = {"institution": claims.institution, key: name}
        await change(gw, claims, delete_action, delete_request, **fields)
        return Response(status_code=204)

    one = f"{path}/{{name}}"
    listing = list[model]  # type: ignore[valid-type]
    router.add_api_route(path, list_all, methods=["GET"], response_model=listing)
    router.add_api_route(one, read, methods=["GET"], response_model=model)
    router.add_api_route(path, create, methods=["POST"], response_model=model, status_code=201)
    router.add_api_route(one, replace, methods=["PUT"], response_model=model)
    router.add_api_route(one, delete, methods=["DELETE"], status_code=204)
    return router
