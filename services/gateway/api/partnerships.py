"""Partnerships between libraries: the consortium admin's, read by their members."""

from services.gateway.api.records import collection
from services.gateway.auth import StaffClaims
from shared.schemas.directory import DeletePartnership, SavePartnership
from shared.schemas.records import Partnership


def member(partnership: Partnership, claims: StaffClaims, consortium: str) -> bool:
    return claims.role == "consortium_admin" or claims.institution in partnership.institutions


router = collection(
    "/partnerships",
    Partnership,
    "name",
    lambda view: view.partnerships,
    member,
    ("save_partnership", "delete_partnership"),
    (SavePartnership, DeletePartnership),
)
