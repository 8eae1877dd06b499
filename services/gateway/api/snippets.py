"""Snippets: canned answers of a library, and the consortium's for everyone."""

from services.gateway.api.records import collection
from services.gateway.auth import StaffClaims
from shared.schemas.directory import DeleteSnippet, SaveSnippet
from shared.schemas.records import Snippet


def libraries_and_consortium(snippet: Snippet, claims: StaffClaims, consortium: str) -> bool:
    own = (claims.institution, consortium)
    return claims.role == "consortium_admin" or snippet.institution in own


router = collection(
    "/snippets",
    Snippet,
    "name",
    lambda view: view.snippets,
    libraries_and_consortium,
    ("save_snippet", "delete_snippet"),
    (SaveSnippet, DeleteSnippet),
)
