"""MongoDB indexes reconciled at start: each store declares the indexes it wants (PyMongo
`IndexModel`s, by collection), and `reconcile` makes the database hold them, whatever an
earlier release left.

`createIndex` alone does not: MongoDB refuses an index whose name or key exists with other
options (IndexOptionsConflict, IndexKeySpecsConflict), so a release that changed an
option (the guests' TTL follows `proactive_window_s`) would never start. `plan` compares
what is there with what is wanted; a changed TTL is applied in place with `collMod` (the
index stays usable), any other change drops the old index and builds the new one.
Indexes nobody declares are left alone: an operator may have added them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from shared.store import Document

log = logging.getLogger(__name__)
Wanted = Mapping[str, Sequence[IndexModel]]
# The options refdesk sets, and their value when absent.
OPTIONS: dict[str, Any] = {"unique": False, "sparse": False, "expireAfterSeconds": None}


@dataclass(frozen=True)
class Step:
    """One change to one collection's indexes; `describe` says it for a person."""

    collection: str
    action: Literal["create", "set_ttl", "replace"]
    name: str
    wanted: Document
    # The index in the way (`replace`: dropped first), by its name.
    existing: str | None = None

    def describe(self) -> str:
        match self.action:
            case "create":
                return f"{self.collection}: index {self.name} is missing"
            case "set_ttl":
                ttl = self.wanted["expireAfterSeconds"]
                return f"{self.collection}: index {self.name} should expire after {ttl} s"
            case _:
                return (
                    f"{self.collection}: index {self.existing} differs from {self.name} "
                    f"{_options(self.wanted)}"
                )


def _is_text(spec: Mapping[str, Any]) -> bool:
    return any(v == "text" for v in dict(spec["key"]).values()) or "_fts" in dict(spec["key"])


def _options(spec: Mapping[str, Any]) -> dict[str, Any]:
    found = {k: spec.get(k, default) for k, default in OPTIONS.items()}
    if _is_text(spec):
        found["default_language"] = spec.get("default_language", "english")
    return found


def _same_key(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if _is_text(a) or _is_text(b):
        # MongoDB lists a text index's key as {_fts: text, _ftsx: 1}: by name alone.
        return _is_text(a) and _is_text(b)
    return list(dict(a["key"]).items()) == list(dict(b["key"]).items())


def _step(collection: str, wanted: Document, existing: list[Document]) -> Step | None:
    name = str(wanted["name"])
    same = next((e for e in existing if e["name"] == name), None)
    if same is None:
        # Another name on the same key is refused by MongoDB too: replace it.
        same = next((e for e in existing if e["name"] != "_id_" and _same_key(e, wanted)), None)
        if same is None:
            return Step(collection, "create", name, wanted)
        return Step(collection, "replace", name, wanted, existing=str(same["name"]))
    if not _same_key(same, wanted):
        return Step(collection, "replace", name, wanted, existing=name)
    have, want = _options(same), _options(wanted)
    if have == want:
        return None
    ttl_only = {k: v for k, v in have.items() if k != "expireAfterSeconds"} == {
        k: v for k, v in want.items() if k != "expireAfterSeconds"
    }
    if ttl_only and have["expireAfterSeconds"] is not None and want["expireAfterSeconds"]:
        return Step(collection, "set_ttl", name, wanted)
    return Step(collection, "replace", name, wanted, existing=name)


def plan(collection: str, wanted: Sequence[IndexModel], existing: list[Document]) -> list[Step]:
    """What turns `existing` (a `listIndexes` answer) into the `wanted` indexes."""
    steps = [_step(collection, dict(model.document), existing) for model in wanted]
    return [s for s in steps if s is not None]


async def drift(db: AsyncDatabase[Document], wanted: Wanted) -> list[Step]:
    """What `reconcile` would change, without changing it (`refdesk-admin check`)."""
    steps: list[Step] = []
    for collection, models in wanted.items():
        existing = [dict(i) for i in await (await db[collection].list_indexes()).to_list()]
        steps.extend(plan(collection, models, existing))
    return steps


async def reconcile(db: AsyncDatabase[Document], wanted: Wanted) -> list[Step]:
    """Make the database hold the `wanted` indexes; returns what it changed."""
    steps = await drift(db, wanted)
    for step in steps:
        log.warning("reconciling an index from an earlier release: %s", step.describe())
        collection = db[step.collection]
        if step.action == "set_ttl":
            await db.command(
                {
                    "collMod": step.collection,
                    "index": {
                        "name": step.name,
                        "expireAfterSeconds": step.wanted["expireAfterSeconds"],
                    },
                }
            )
            continue
        if step.action == "replace":
            assert step.existing is not None
            await collection.drop_index(step.existing)
        spec = {k: v for k, v in step.wanted.items() if k not in ("key", "name")}
        keys = list(dict(step.wanted["key"]).items())
        await collection.create_index(keys, name=step.name, **spec)
    return steps
