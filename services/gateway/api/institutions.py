"""The consortium's institutions: read in the caller's scope, changed through the directory."""

from fastapi import APIRouter

from services.gateway import domain
from services.gateway.api.common import Gw, Staff, change, same_key
from services.gateway.auth import StaffClaims
from services.gateway.core import Gateway
from shared.schemas.directory import SaveInstitution
from shared.schemas.records import Institution

router = APIRouter()


@router.get("/institutions", response_model=list[Institution])
async def list_institutions(gw: Gw, claims: Staff) -> list[Institution]:
    return domain.in_scope(gw.view.institutions.values(), claims, lambda i: i.name)


@router.get("/institutions/{name}", response_model=Institution)
async def read_institution(gw: Gw, name: str, claims: Staff) -> Institution:
    return domain.visible(gw.view.institutions.get(name), f"institution {name}", claims)


async def save_institution(
    gw: Gateway, claims: StaffClaims, body: Institution, create: bool
) -> Institution:
    await change(
        gw,
        claims,
        "save_institution",
        SaveInstitution,
        institution=claims.institution,
        record=body,
        create=create,
    )
    return body


@router.post("/institutions", response_model=Institution, status_code=201)
async def create_institution(gw: Gw, body: Institution, claims: Staff) -> Institution:
    return await save_institution(gw, claims, body, create=True)


@router.put("/institutions/{name}", response_model=Institution)
async def replace_institution(gw: Gw, name: str, body: Institution, claims: Staff) -> Institution:
    domain.visible(gw.view.institutions.get(name), f"institution {name}", claims)
    same_key("name", name, body.name, "institution")
    return await save_institution(gw, claims, body, create=False)
