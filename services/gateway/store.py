"""What the gateway itself stores: which guest was last seen on which widget, so that staff
may start a chat with a current or recent guest. Configuration is not here: the gateway
reads it from the config bucket (shared.configuration) and changes it through the
directory service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from nats.js.kv import KeyValue
from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from shared import indexes
from shared.bus import BucketFollower
from shared.store import Document


def _instant(value: datetime | str) -> datetime:
    """A stored time as a datetime: the embedded server sometimes hands one back as text."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def wanted_indexes(keep_s: int) -> indexes.Wanted:
    """What every gateway makes the database hold at start (shared/indexes.py): a
    sighting is only needed while a proactive chat may still use it (`keep_s`, the
    proactive window), so its TTL follows that setting."""
    return {
        "guests": [
            IndexModel([("institution", 1), ("guest_id", 1)], unique=True),
            IndexModel([("last_seen", 1)], expireAfterSeconds=keep_s),
        ]
    }


@dataclass(frozen=True)
class Sighting:
    guest_id: str
    widget: str
    last_seen: datetime
    # The page of the library's site, as the loader reported it (never its query).
    page: str | None


class GuestStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db

    async def ensure_indexes(self, keep_s: int) -> None:
        await indexes.reconcile(self.db, wanted_indexes(keep_s))

    async def saw_guest(
        self, institution: str, guest_id: str, widget: str, now: datetime, page: str | None = None
    ) -> None:
        """Remember that a guest is on a widget (and on which page of the library's site,
        when the loader said), so staff may start a chat with them."""
        seen: Document = {"widget": widget, "last_seen": now}
        if page is not None:
            seen["page"] = page
        await self.db.guests.update_one(
            {"institution": institution, "guest_id": guest_id}, {"$set": seen}, upsert=True
        )

    async def guest_widget(self, institution: str, guest_id: str, since: datetime) -> str | None:
        """The widget a guest was last seen on, if that was on or after `since`."""
        doc = await self.db.guests.find_one(
            {"institution": institution, "guest_id": guest_id, "last_seen": {"$gte": since}}
        )
        return None if doc is None else str(doc["widget"])

    async def recent(self, institution: str, since: datetime, limit: int) -> list[Sighting]:
        """Guests seen on the institution's widgets since `since`, the latest first."""
        found = self.db.guests.find(
            {"institution": institution, "last_seen": {"$gte": since}},
            {"_id": 0, "guest_id": 1, "widget": 1, "last_seen": 1, "page": 1},
        )
        docs = await found.sort("last_seen", -1).limit(limit).to_list()
        return [
            Sighting(str(d["guest_id"]), str(d["widget"]), _instant(d["last_seen"]), d.get("page"))
            for d in docs
        ]

    async def forget(self, institution: str | None, guest_ids: list[str]) -> int:
        """Erase guests' sightings (a patron's erasure): of one institution, or of every
        institution when None. Returns how many were erased."""
        found: Document = {"guest_id": {"$in": guest_ids}}
        if institution is not None:
            found["institution"] = institution
        return (await self.db.guests.delete_many(found)).deleted_count


class RevokedTokens:
    """Ids of staff tokens signed out before they expire, shared by every gateway through a
    key-value bucket whose entries age out with the tokens themselves (so the set stays as
    small as the sign-outs of one token lifetime)."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self._ids: set[str] = set()
        self._follower = BucketFollower(kv, self._followed)

    def __contains__(self, token_id: object) -> bool:
        return token_id in self._ids

    async def revoke(self, token_id: str) -> None:
        await self.kv.put(token_id, b"1")
        self._ids.add(token_id)

    def _followed(self, key: str, value: bytes | None, _: int) -> None:
        if value is None:
            self._ids.discard(key)
        else:
            self._ids.add(key)

    async def start(self) -> None:
        await self._follower.start()

    async def stop(self) -> None:
        await self._follower.stop()
