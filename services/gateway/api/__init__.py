"""The gateway's REST API under /api, as docs/protocol.md ("REST") and the OpenAPI document
at /openapi.json describe it: one router per resource, each route a thin edge that reads
the caller's claims, applies the gateway's rules (domain/: who may ask what) and asks the
service that owns the answer (`common.ask`) or reads this replica's view of the
configuration.

Staff: `auth` (sign in and out, `me`), `sessions`, `announcements`, `institutions`,
`users`, the configuration records `queues`, `widgets`, `snippets` and `partnerships`
(one shape, `records.collection`), `coverage`, `transcripts` (search, one transcript,
missed chats, a guest's chats, the audit log, erasures), `stats`, `transfer_targets`,
`guests`, `internal` conversations and `tickets`. Public, for a library's pages:
`widget_pages` (a widget's status and page views, for the loader) and `widgets` (the
offline form's message).
"""

from fastapi import APIRouter

from services.gateway.api import (
    announcements,
    auth,
    coverage,
    guests,
    institutions,
    internal,
    partnerships,
    queues,
    sessions,
    snippets,
    stats,
    tickets,
    transcripts,
    transfer_targets,
    users,
    widget_pages,
    widgets,
)

RESOURCES = (
    auth,
    sessions,
    announcements,
    institutions,
    users,
    queues,
    widgets,
    widget_pages,
    snippets,
    partnerships,
    coverage,
    transcripts,
    stats,
    transfer_targets,
    guests,
    internal,
    tickets,
)


def build_router() -> APIRouter:
    """Every resource's routes under /api."""
    router = APIRouter(prefix="/api")
    for resource in RESOURCES:
        router.include_router(resource.router)
    return router
