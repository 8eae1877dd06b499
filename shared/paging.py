"""Pages newest first, continued by an opaque cursor bound to the query that made it.

Lists are ordered by (`created_ms`, `_id`) descending, which orders every document
fully, so a page never skips or repeats one while documents are added. A cursor carries
the last position and a digest of the query (without its position and size): used with
another query, or made up, it is `invalid` naming `cursor`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from shared.errors import Refusal

NEWEST_FIRST = (("created_ms", -1), ("_id", -1))
_NOT_THE_QUERY = ("cursor", "limit", "principal")


def _query_key(query: BaseModel) -> str:
    asked = query.model_dump(mode="json", exclude=set(_NOT_THE_QUERY))
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()[:16]


def encode_cursor(query: BaseModel, last: Mapping[str, Any]) -> str:
    """The cursor of the page after the one ending with document `last`."""
    raw = json.dumps([_query_key(query), last["created_ms"], last["_id"]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def after_cursor(query: BaseModel, cursor: str | None) -> dict[str, Any] | None:
    """The filter condition of the page `cursor` continues (None: the first page)."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key, created_ms, last_id = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError, binascii.Error):
        raise Refusal("invalid", "cursor: not a cursor this list gave") from None
    if key != _query_key(query) or not isinstance(created_ms, int) or not isinstance(last_id, str):
        raise Refusal("invalid", "cursor: it belongs to another query; start from the first page")
    return {
        "$or": [
            {"created_ms": {"$lt": created_ms}},
            {"created_ms": created_ms, "_id": {"$lt": last_id}},
        ]
    }
