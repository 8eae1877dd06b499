"""The directory's persistence: configuration documents in MongoDB (the durable copy) and
their projection into the config bucket that every replica follows.

A change is written to MongoDB first and then projected: the bucket entry is replaced by
what MongoDB now holds, conditional on the entry's revision, until the two agree. Two
directory replicas saving the same record at once therefore always leave the bucket with
MongoDB's final document, and a replica that died between the two steps is repaired by
`sync` at the next start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue
from pydantic import BaseModel
from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from shared import indexes, subjects
from shared.bus import delete_if_last
from shared.errors import StaleRevision
from shared.retries import until_written
from shared.schemas.records import Institution, Partnership, Queue, Snippet, User, Widget
from shared.store import Document

PROJECT_ATTEMPTS = 16


@dataclass(frozen=True)
class Kind:
    name: subjects.ConfigKind
    collection: str
    key: str
    model: type[BaseModel]


INSTITUTION = Kind("institution", "institutions", "name", Institution)
QUEUE = Kind("queue", "queues", "name", Queue)
WIDGET = Kind("widget", "widgets", "id", Widget)
USER = Kind("user", "users", "username", User)
PARTNERSHIP = Kind("partnership", "partnerships", "name", Partnership)
SNIPPET = Kind("snippet", "snippets", "name", Snippet)
KINDS = (INSTITUTION, QUEUE, WIDGET, USER, PARTNERSHIP, SNIPPET)
# What every directory replica makes the database hold at start (shared/indexes.py).
INDEXES = {kind.collection: [IndexModel([(kind.key, 1)], unique=True)] for kind in KINDS}


def published(kind: Kind, doc: Document | None) -> bytes | None:
    """What the bucket holds for a stored document: an account without its password hash."""
    if doc is None:
        return None
    record = kind.model.model_validate(doc)
    if isinstance(record, User):
        return record.account().to_json()
    assert isinstance(record, Institution | Queue | Widget | Partnership | Snippet)
    return record.to_json()


class ConfigStore:
    def __init__(self, db: AsyncDatabase[Document], kv: KeyValue) -> None:
        self.db = db
        self.kv = kv

    async def ensure_indexes(self) -> None:
        await indexes.reconcile(self.db, INDEXES)

    async def get(self, kind: Kind, name: str) -> Any:
        doc = await self.db[kind.collection].find_one({kind.key: name}, {"_id": 0})
        return None if doc is None else kind.model.model_validate(doc)

    async def all(self, kind: Kind) -> list[Any]:
        docs = await self.db[kind.collection].find({}, {"_id": 0}).to_list()
        return [kind.model.model_validate(d) for d in docs]

    async def save(self, kind: Kind, record: BaseModel, create: bool) -> bool:
        """Store a document; False when creating a key that exists or replacing one that
        does not (nothing is written then)."""
        doc = record.model_dump(mode="json")
        key = doc[kind.key]
        collection = self.db[kind.collection]
        if create:
            result = await collection.update_one(
                {kind.key: key}, {"$setOnInsert": doc}, upsert=True
            )
            return result.upserted_id is not None
        replaced = await collection.replace_one({kind.key: key}, doc)
        return replaced.matched_count == 1

    async def set_fields(self, kind: Kind, name: str, fields: dict[str, object]) -> bool:
        result = await self.db[kind.collection].update_one({kind.key: name}, {"$set": fields})
        return result.matched_count == 1

    async def delete(self, kind: Kind, name: str) -> None:
        await self.db[kind.collection].delete_one({kind.key: name})

    async def project(self, kind: Kind, name: str) -> int:
        """Make the bucket entry of one record say what MongoDB holds; returns the entry's
        revision."""
        key = subjects.config_key(kind.name, name)

        async def attempt(_: int) -> int:
            try:
                entry = await self.kv.get(key)
                current, revision = entry.value or None, entry.revision or 0
            except KeyNotFoundError:
                current, revision = None, 0
            doc = await self.db[kind.collection].find_one({kind.key: name}, {"_id": 0})
            wanted = published(kind, doc)
            if wanted == current:
                return revision
            try:
                if wanted is None:
                    await delete_if_last(self.kv, key, revision)
                    # The marker's own revision is not returned: the bucket's newest is at
                    # least as new, which is all a reader waiting for it needs.
                    return int((await self.kv.status()).stream_info.state.last_seq)
                if revision == 0:
                    return await self.kv.create(key, wanted)
                return await self.kv.update(key, wanted, last=revision)
            except KeyWrongLastSequenceError as exc:
                raise StaleRevision(key) from exc

        return await until_written(attempt, PROJECT_ATTEMPTS, "configuration is changing too fast")

    async def sync(self) -> int:
        """Project every stored record, and remove entries MongoDB no longer has; returns
        the newest revision."""
        newest = 0
        for kind in KINDS:
            names = {
                str(d[kind.key])
                async for d in self.db[kind.collection].find({}, {kind.key: 1, "_id": 0})
            }
            for name in sorted(names | await self._bucket_names(kind)):
                newest = max(newest, await self.project(kind, name))
        return newest

    async def _bucket_names(self, kind: Kind) -> set[str]:
        try:
            keys = await self.kv.keys()
        except NoKeysError:
            return set()
        found = set()
        for key in keys:
            entry_kind, name = subjects.config_kind(key)
            if entry_kind == kind.name:
                found.add(name)
        return found
