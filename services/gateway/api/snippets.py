"""Snippets: canned answers of a library, and the consortium's for everyone."""

from services.gateway import domain
from services.gateway.api.records import collection
from shared.schemas.directory import DeleteSnippet, SaveSnippet
from shared.schemas.records import Snippet

router = collection(
    "/snippets",
    Snippet,
    "name",
    lambda view: view.snippets,
    lambda snippet, claims, consortium: domain.may_read_snippet(claims, snippet, consortium),
    ("save_snippet", "delete_snippet"),
    (SaveSnippet, DeleteSnippet),
)
