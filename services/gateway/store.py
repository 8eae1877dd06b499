"""Configuration the gateway serves and checks: institutions, users, queues and widgets.

Widgets and queues are read on every patron connection, so they are cached for a few
seconds; a change made through the admin API is visible everywhere within that time.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from pymongo.asynchronous.database import AsyncDatabase

from shared.schemas.records import Institution, Queue, User, Widget
from shared.store import Document

T = TypeVar("T", bound=BaseModel)


class ConfigStore:
    def __init__(self, db: AsyncDatabase[Document], cache_s: float) -> None:
        self.db = db
        self.cache_s = cache_s
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}

    async def saw_guest(self, institution: str, guest_id: str, widget: str, now: datetime) -> None:
        """Remember that a guest is on a widget, so staff may start a chat with them."""
        await self.db.guests.update_one(
            {"institution": institution, "guest_id": guest_id},
            {"$set": {"widget": widget, "last_seen": now}},
            upsert=True,
        )

    async def guest_widget(self, institution: str, guest_id: str, since: datetime) -> str | None:
        """The widget a guest was last seen on, if that was on or after `since`."""
        doc = await self.db.guests.find_one(
            {"institution": institution, "guest_id": guest_id, "last_seen": {"$gte": since}}
        )
        return None if doc is None else str(doc["widget"])

    async def ensure_indexes(self) -> None:
        await self.db.guests.create_index([("institution", 1), ("guest_id", 1)], unique=True)
        await self.db.users.create_index("username", unique=True)
        await self.db.widgets.create_index("id", unique=True)
        await self.db.queues.create_index("name", unique=True)
        await self.db.institutions.create_index("name", unique=True)

    async def _cached(self, kind: str, key: str, model: type[T], query: dict[str, str]) -> T | None:
        hit = self._cache.get((kind, key))
        now = time.monotonic()
        if hit and now - hit[0] < self.cache_s:
            return hit[1]
        doc = await self.db[kind].find_one(query, {"_id": 0})
        value = None if doc is None else model.model_validate(doc)
        self._cache[(kind, key)] = (now, value)
        return value

    async def user(self, username: str) -> User | None:
        # Not cached: a changed password or role takes effect at the next sign-in.
        doc = await self.db.users.find_one({"username": username}, {"_id": 0})
        return None if doc is None else User.model_validate(doc)

    async def widget(self, widget_id: str) -> Widget | None:
        return await self._cached("widgets", widget_id, Widget, {"id": widget_id})

    async def queue(self, name: str) -> Queue | None:
        return await self._cached("queues", name, Queue, {"name": name})

    async def institution(self, name: str) -> Institution | None:
        return await self._cached("institutions", name, Institution, {"name": name})

    async def _save(self, kind: str, key_field: str, doc: Document, create: bool) -> bool:
        """Store a configuration document; False when creating a key that exists or
        replacing one that does not. The change is visible to this replica at once."""
        key = doc[key_field]
        if create:
            result = await self.db[kind].update_one(
                {key_field: key}, {"$setOnInsert": doc}, upsert=True
            )
            saved = result.upserted_id is not None
        else:
            replaced = await self.db[kind].replace_one({key_field: key}, doc)
            saved = replaced.matched_count == 1
        self._cache.pop((kind, key), None)
        return saved

    async def _delete(self, kind: str, key_field: str, key: str) -> None:
        await self.db[kind].delete_one({key_field: key})
        self._cache.pop((kind, key), None)

    async def save_queue(self, queue: Queue, create: bool) -> bool:
        return await self._save("queues", "name", queue.model_dump(mode="json"), create)

    async def delete_queue(self, name: str) -> None:
        await self._delete("queues", "name", name)

    async def save_widget(self, widget: Widget, create: bool) -> bool:
        return await self._save("widgets", "id", widget.model_dump(mode="json"), create)

    async def delete_widget(self, widget_id: str) -> None:
        await self._delete("widgets", "id", widget_id)

    async def widgets_of(self, institution: str | None) -> list[Widget]:
        """Widgets of one institution, or of every institution when None."""
        query = {} if institution is None else {"institution": institution}
        docs = await self.db.widgets.find(query, {"_id": 0}).sort("id", 1).to_list()
        return [Widget.model_validate(d) for d in docs]

    async def widgets_on(self, queue: str) -> list[str]:
        return [d["id"] for d in await self.db.widgets.find({"queue": queue}, {"id": 1}).to_list()]

    async def queues_of(self, institution: str | None) -> list[Queue]:
        """Queues of one institution, or of every institution when None."""
        query = {} if institution is None else {"institution": institution}
        docs = await self.db.queues.find(query, {"_id": 0}).sort("name", 1).to_list()
        return [Queue.model_validate(d) for d in docs]
