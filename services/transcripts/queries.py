"""Search filters, page cursors and statistics pipelines over stored chats: pure, so that
what a query asks MongoDB for is tested without one.

Statistics run as one aggregation per question over indexed fields (`created_at`, the
institution fields) and the facts each chat document carries (see `domain.chat_document`).
Counts and sums come out of MongoDB; the wait and duration percentiles are taken here from
the values the aggregation collected for each group, since `$percentile` is not on every
server refdesk runs on (MongoDB before 7.0, the embedded one). Percentiles are nearest-rank.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from services.transcripts.domain import epoch_ms
from shared.paging import after_cursor
from shared.schemas.chat import normal_tag
from shared.schemas.requests import SearchTranscripts, StatsFigures, StatsGroup, StatsGrouping

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


# --- statistics ------------------------------------------------------------------------------

GROUP_FIELD: dict[StatsGrouping, str] = {
    "day": "day",
    "hour": "hour",
    "queue": "queue",
    "operator": "operators",
    "tag": "tags",
    "institution": "institution",
}
UNWOUND = ("operators", "tags")


def _all(*conditions: Document | None) -> Document | None:
    present = [c for c in conditions if c is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else {"$and": present}


def _count(condition: Document | None) -> Document:
    return {"$sum": 1 if condition is None else {"$cond": [condition, 1, 0]}}


def _collect(condition: Document | None, field: str) -> Document:
    return {
        "$push": f"${field}" if condition is None else {"$cond": [condition, f"${field}", None]}
    }


def accumulators(institution: str | None) -> Document:
    """Each figure of `StatsFigures`, from the point of view of one institution (its
    patrons' chats, and other libraries' it answered) or of the whole consortium."""
    home = None if institution is None else {"$eq": ["$institution", institution]}

    def answered(by: str) -> Document:
        return {"$eq": ["$answered_by", by]}

    if institution is None:
        for_others: Document = {"$in": ["$answered_by", ["backup", "partner"]]}
    else:
        for_others = {
            "$and": [
                {"$ne": ["$institution", institution]},
                {"$eq": ["$answered_institution", institution]},
            ]
        }
    messages = {"$ifNull": ["$messages", 0]}
    return {
        "chats": _count(home),
        "answered_at_home": _count(_all(home, answered("home"))),
        "answered_by_backup": _count(_all(home, answered("backup"))),
        "answered_by_partners": _count(_all(home, answered("partner"))),
        "answered_for_others": _count(for_others),
        "missed": _count(_all(home, {"$eq": ["$state", "missed"]})),
        "messages": {"$sum": messages if home is None else {"$cond": [home, messages, 0]}},
        "waits": _collect(home, "wait_s"),
        "durations": _collect(home, "duration_s"),
    }


def stats_match(institution: str | None, start: datetime, end: datetime) -> Document:
    span: Document = {"created_ms": {"$gte": epoch_ms(start), "$lt": epoch_ms(end)}}
    if institution is None:
        return span
    return {**span, "$or": [{"institution": institution}, {"answered_institution": institution}]}


def stats_pipeline(
    institution: str | None, start: datetime, end: datetime, group_by: StatsGrouping | None
) -> list[Document]:
    """One aggregation: the span's chats for the institution, grouped (or one total)."""
    pipeline: list[Document] = [{"$match": stats_match(institution, start, end)}]
    key: str | None = None
    if group_by is not None:
        field = GROUP_FIELD[group_by]
        if field in UNWOUND:
            pipeline.append({"$unwind": f"${field}"})
        key = f"${field}"
    pipeline.append({"$group": {"_id": key, **accumulators(institution)}})
    return pipeline


def answered_for_others_pipeline(start: datetime, end: datetime) -> list[Document]:
    """For the consortium's breakdown: other libraries' chats each institution answered."""
    return [
        {
            "$match": {
                **stats_match(None, start, end),
                "answered_by": {"$in": ["backup", "partner"]},
            }
        },
        {"$group": {"_id": "$answered_institution", "chats": {"$sum": 1}}},
    ]


def partitions(group_by: StatsGrouping) -> bool:
    """Whether every chat falls in exactly one group."""
    return GROUP_FIELD[group_by] not in UNWOUND


def merged(rows: Sequence[Mapping[str, Any]]) -> Document:
    """The rows of a partitioning aggregation added up into the span's total."""
    total: Document = {"waits": [], "durations": []}
    for row in rows:
        for name, value in row.items():
            if name == "_id":
                continue
            if isinstance(value, list):
                total[name] = [*total.get(name, []), *value]
            else:
                total[name] = total.get(name, 0) + value
    return total


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def figures(row: Mapping[str, Any]) -> StatsFigures:
    waits = [w for w in row.get("waits", []) if w is not None]
    durations = [d for d in row.get("durations", []) if d is not None]
    chats = int(row.get("chats", 0))
    missed = int(row.get("missed", 0))
    return StatsFigures(
        chats=chats,
        answered_at_home=int(row.get("answered_at_home", 0)),
        answered_by_backup=int(row.get("answered_by_backup", 0)),
        answered_by_partners=int(row.get("answered_by_partners", 0)),
        answered_for_others=int(row.get("answered_for_others", 0)),
        missed=missed,
        missed_rate=round(missed / chats, 4) if chats else 0.0,
        wait_p50_s=percentile(waits, 50),
        wait_p90_s=percentile(waits, 90),
        duration_p50_s=percentile(durations, 50),
        messages=int(row.get("messages", 0)),
    )


def groups(rows: Sequence[Mapping[str, Any]]) -> list[StatsGroup]:
    made = [
        StatsGroup(key=str(row["_id"]), **figures(row).model_dump())
        for row in rows
        if row.get("_id") is not None
    ]
    return sorted(made, key=lambda g: g.key)
