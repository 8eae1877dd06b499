"""MongoDB access on PyMongo's async API, with the tenant filter applied in exactly one place.

Services never touch a collection of tenant data directly: they get a `TenantCollection`,
whose every method takes the institution and adds it to the filter, so a query cannot
forget it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import Histogram
from pymongo import AsyncMongoClient, UpdateOne, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
from pymongo.results import UpdateResult

Document = dict[str, Any]
DUPLICATE_KEY = 11000


def _only_duplicates(error: BulkWriteError) -> bool:
    return all(e.get("code") == DUPLICATE_KEY for e in error.details.get("writeErrors", []))


MONGODB_SECONDS = Histogram(
    "refdesk_mongodb_command_seconds",
    "Time MongoDB took to answer a command, as the driver saw it, by command and outcome",
    ["command", "outcome"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0),
)
# Commands refdesk sends; anything else (handshakes, monitoring) is `other`, so the label
# stays bounded.
COMMANDS = frozenset(
    {"find", "insert", "update", "delete", "aggregate", "count", "findAndModify",
     "createIndexes", "getMore", "distinct"}
)  # fmt: skip


class CommandTimer(monitoring.CommandListener):
    """Feeds MONGODB_SECONDS from the driver's own command monitoring."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        name = event.command_name if event.command_name in COMMANDS else "other"
        MONGODB_SECONDS.labels(name, "ok").observe(event.duration_micros / 1e6)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        name = event.command_name if event.command_name in COMMANDS else "other"
        MONGODB_SECONDS.labels(name, "error").observe(event.duration_micros / 1e6)


def connect(uri: str, app_name: str) -> AsyncMongoClient[Document]:
    """A client whose writes are acknowledged by a majority of a replica set (a standalone
    server: by itself), so that nothing acknowledged is lost when a member fails over.

    Journaling is left to the deployment: a replica set journals majority-acknowledged
    writes by default (`writeConcernMajorityJournalDefault`), and a standalone server's
    operator who wants each write on disk before it is acknowledged adds `journal=true` to
    the URI. Asking for it here made the embedded local server sync its file once per
    document (a disk flush per transcript message)."""
    return AsyncMongoClient(
        uri,
        appname=f"refdesk-{app_name}",
        serverSelectionTimeoutMS=5000,
        tz_aware=True,
        w="majority",
        event_listeners=[CommandTimer()],
    )


async def ping(client: AsyncMongoClient[Document]) -> bool:
    try:
        await client.admin.command("ping")
    except PyMongoError:
        return False
    return True


class TenantCollection:
    """A collection whose documents each carry `institution`; every call is scoped by it."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.raw = collection

    @staticmethod
    def scoped(institution: str, query: Mapping[str, Any] | None = None) -> Document:
        if not institution:
            raise ValueError("a tenant query needs an institution")
        return {**(query or {}), "institution": institution}

    @staticmethod
    def shared(institution: str, query: Mapping[str, Any] | None = None) -> Document:
        """Documents of the institution, and those another institution shares with it
        (listed in their `shared_with`: a library's chat that a backup service answered)."""
        if not institution:
            raise ValueError("a tenant query needs an institution")
        return {
            **(query or {}),
            "$or": [{"institution": institution}, {"shared_with": institution}],
        }

    async def find_one_shared(self, institution: str, query: Mapping[str, Any]) -> Document | None:
        return await self.raw.find_one(self.shared(institution, query))

    async def count(self, institution: str, query: Mapping[str, Any] | None = None) -> int:
        return await self.raw.count_documents(self.scoped(institution, query))

    async def find_one(
        self,
        institution: str,
        query: Mapping[str, Any],
        projection: Mapping[str, Any] | None = None,
    ) -> Document | None:
        return await self.raw.find_one(self.scoped(institution, query), projection)

    async def find(
        self,
        institution: str,
        query: Mapping[str, Any] | None = None,
        *,
        sort: Sequence[tuple[str, int]] | None = None,
        limit: int = 0,
        projection: Mapping[str, Any] | None = None,
    ) -> list[Document]:
        cursor = self.raw.find(self.scoped(institution, query), projection)
        if sort:
            cursor = cursor.sort(list(sort))
        if limit:
            cursor = cursor.limit(limit)
        return await cursor.to_list()

    async def insert_once(self, institution: str, document: Mapping[str, Any]) -> bool:
        """Insert keyed by `_id`; False when that id is already stored (idempotent replay)."""
        try:
            await self.raw.insert_one(self.scoped(institution, document))
        except DuplicateKeyError:
            return False
        return True

    async def insert_many_once(
        self, institution: str, documents: Sequence[Mapping[str, Any]]
    ) -> int:
        """Insert many keyed by `_id` in one round trip; ids already stored are skipped.
        Returns how many were new."""
        if not documents:
            return 0
        try:
            result = await self.raw.insert_many(
                [self.scoped(institution, d) for d in documents], ordered=False
            )
        except BulkWriteError as error:
            if not _only_duplicates(error):
                raise
            return int(error.details.get("nInserted", 0))
        return len(result.inserted_ids)

    async def upsert_newer(
        self, institution: str, documents: Sequence[Mapping[str, Any]], version: str
    ) -> None:
        """Write each document unless the stored one has a `version` at least as high, in
        one round trip. A stored newer version makes the upsert collide on `_id`: that
        collision is the "already newer" answer, not an error."""
        if not documents:
            return
        ops = [
            UpdateOne(
                self.scoped(institution, {"_id": d["_id"], version: {"$lt": d[version]}}),
                {"$set": dict(d)},
                upsert=True,
            )
            for d in documents
        ]
        try:
            await self.raw.bulk_write(ops, ordered=False)
        except BulkWriteError as error:
            if not _only_duplicates(error):
                raise

    async def update_one(
        self,
        institution: str,
        query: Mapping[str, Any],
        update: Mapping[str, Any],
        *,
        upsert: bool = False,
    ) -> UpdateResult:
        return await self.raw.update_one(self.scoped(institution, query), update, upsert=upsert)


def database(client: AsyncMongoClient[Document], name: str) -> AsyncDatabase[Document]:
    return client[name]
