"""Partnerships between libraries: the consortium admin's, read by their members."""

from services.gateway import domain
from services.gateway.api.records import collection
from shared.schemas.directory import DeletePartnership, SavePartnership
from shared.schemas.records import Partnership

router = collection(
    "/partnerships",
    Partnership,
    "name",
    lambda view: view.partnerships,
    lambda partnership, claims, _: domain.may_read_partnership(claims, partnership),
    ("save_partnership", "delete_partnership"),
    (SavePartnership, DeletePartnership),
)
