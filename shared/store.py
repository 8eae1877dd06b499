"""MongoDB access on PyMongo's async API, with the tenant filter applied in exactly one place.

Services never touch a collection of tenant data directly: they get a `TenantCollection`,
whose every method takes the institution and adds it to the filter, so a query cannot
forget it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError
from pymongo.results import UpdateResult

Document = dict[str, Any]


def connect(uri: str, app_name: str) -> AsyncMongoClient[Document]:
    return AsyncMongoClient(
        uri,
        appname=f"refdesk-{app_name}",
        serverSelectionTimeoutMS=5000,
        tz_aware=True,
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
