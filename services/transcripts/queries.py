"""Search filters and page cursors over stored chats: pure, so that what a query asks
MongoDB for is tested without one. (Statistics read rollups instead: rollups.py.)"""

from __future__ import annotations

from typing import Any

from services.transcripts.domain import epoch_ms
from shared.paging import after_cursor
from shared.schemas.chat import normal_tag
from shared.schemas.requests import SearchTranscripts

Document = dict[str, Any]


def readable_by(institution: str) -> Document:
    """Chats an institution may read: its patrons', and those it answered for others."""
    return {"$or": [{"institution": institution}, {"shared_with": institution}]}


def search_filter(req: SearchTranscripts, scope: str | None) -> Document:
    """The MongoDB filter of a search page: what `scope` may read (None: everything),
    the text, the filters, the position."""
    conditions: list[Document] = []
    if scope is not None:
        conditions.append(readable_by(scope))
    if req.tag is not None:
        conditions.append({"tags": normal_tag(req.tag)})
    if req.queue is not None:
        conditions.append(
            {
                "$or": [
                    {"queue": req.queue},
                    {"home_queue": req.queue},
                    {"answered_queue": req.queue},
                ]
            }
        )
    if req.operator is not None:
        conditions.append({"operators": req.operator})
    if req.state is not None:
        conditions.append({"state": req.state})
    if req.home is not None:
        conditions.append({"institution": req.home})
    if req.answered is not None:
        conditions.append({"answered_institution": req.answered})
    span: Document = {}
    if req.start is not None:
        span["$gte"] = epoch_ms(req.start)
    if req.end is not None:
        span["$lt"] = epoch_ms(req.end)
    if span:
        conditions.append({"created_ms": span})
    after = after_cursor(req, req.cursor)
    if after is not None:
        conditions.append(after)
    found: Document = {"$and": conditions} if conditions else {}
    if req.q is not None:
        found["$text"] = {"$search": req.q}
    return found
