"""Tickets and their outgoing mail in MongoDB, scoped by institution.

A ticket is written whole, conditionally on the version it was read at (shared.retries
runs the read-decide-write loop). Mail waits in `mail_outbox` until sent: a restart
loses none, and every replica's sender may pick up what is due (claiming a mail is one
conditional update, so two never send the same one at once).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from shared import indexes, paging
from shared.errors import StaleRevision
from shared.schemas.privacy import ErasePatron, email_key
from shared.schemas.tickets import ListTickets, Ticket
from shared.store import Document, TenantCollection

TEXT_INDEX = "ticket_text"
# What every tickets replica makes the database hold at start (shared/indexes.py).
INDEXES = {
    "tickets": [
        IndexModel([("institution", 1), ("created_ms", -1)]),
        IndexModel([("institution", 1), ("status", 1), ("created_ms", -1)]),
        IndexModel([("institution", 1), ("ref", 1)]),
        IndexModel([("email_key", 1)]),
        IndexModel([("subject", "text"), ("question", "text")], name=TEXT_INDEX),
    ],
    "mail_outbox": [IndexModel([("state", 1), ("next_ms", 1)])],
}


def _epoch_ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


class TicketStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tickets = TenantCollection(db.tickets)
        self.outbox = TenantCollection(db.mail_outbox)

    async def ensure_indexes(self) -> None:
        await indexes.reconcile(self.tickets.raw.database, INDEXES)

    @staticmethod
    def _document(ticket: Ticket, created: datetime | None = None) -> Document:
        doc = ticket.model_dump(mode="json", by_alias=True)
        doc["_id"] = ticket.id
        doc["email_key"] = email_key(ticket.email)
        created = created or datetime.fromisoformat(ticket.created_at)
        doc["created_ms"] = _epoch_ms(created)
        return doc

    @staticmethod
    def _ticket(doc: Document) -> Ticket:
        return Ticket.model_validate(
            {k: v for k, v in doc.items() if k not in ("_id", "email_key", "created_ms")}
        )

    async def add(self, ticket: Ticket) -> None:
        await self.tickets.insert_once(ticket.institution, self._document(ticket))

    async def get(self, institution: str | None, ticket_id: str) -> Ticket | None:
        """A ticket of the institution (None: of any, for a consortium admin)."""
        query: Document = {"_id": ticket_id}
        found = (
            await self.tickets.raw.find_one(query)
            if institution is None
            else await self.tickets.find_one(institution, query)
        )
        return None if found is None else self._ticket(found)

    async def by_ref(self, ref: str) -> Ticket | None:
        found = await self.tickets.raw.find_one({"ref": ref})
        return None if found is None else self._ticket(found)

    async def replace(self, ticket: Ticket) -> Ticket:
        """Write a changed ticket if nobody changed it since it was read (its version);
        `StaleRevision` otherwise, so that the caller reads and decides again."""
        read_at = ticket.version
        written = ticket.model_copy(update={"version": read_at + 1})
        doc = self._document(written)
        done = await self.tickets.raw.replace_one({"_id": ticket.id, "version": read_at}, doc)
        if done.matched_count == 0:
            raise StaleRevision(ticket.id)
        return written

    async def page(self, req: ListTickets, username: str) -> tuple[list[Ticket], str | None]:
        """Newest first; `assignee` `me` is `username`, `none` unassigned."""
        conditions: list[Document] = [{"institution": req.institution}]
        if req.status is not None:
            conditions.append({"status": req.status})
        if req.assignee == "none":
            # Not `{"assignee": None}`: inside `$and` the embedded server matches only a
            # missing field with it, not a null one.
            conditions.append({"assignee": {"$in": [None]}})
        elif req.assignee is not None:
            conditions.append({"assignee": username if req.assignee == "me" else req.assignee})
        after = paging.after_cursor(req, req.cursor)
        if after is not None:
            conditions.append(after)
        found: Document = {"$and": conditions}
        if req.q is not None:
            found["$text"] = {"$search": req.q}
        cursor = self.tickets.raw.find(found).sort(list(paging.NEWEST_FIRST))
        docs = await cursor.limit(req.limit + 1).to_list()
        more = len(docs) > req.limit
        docs = docs[: req.limit]
        next_cursor = paging.encode_cursor(req, docs[-1]) if more and docs else None
        return [self._ticket(d) for d in docs], next_cursor

    async def erase(self, req: ErasePatron, scope: str | None) -> int:
        """Delete a patron's tickets and their unsent mail: by their email, and those made
        from their chats. `scope`: one institution's, or None for every institution's."""
        who: list[Document] = []
        if req.email is not None:
            who.append({"email_key": email_key(req.email)})
        if req.chat_ids:
            who.append({"chat_id": {"$in": req.chat_ids}})
        if not who:
            return 0
        found: Document = {"$or": who}
        if scope is not None:
            found["institution"] = scope
        ids = [d["_id"] for d in await self.tickets.raw.find(found, {"_id": 1}).to_list()]
        return await self.delete(ids)

    async def closed_before(self, institution: str, cutoff: datetime, limit: int) -> list[str]:
        """Ids of the institution's closed tickets created before `cutoff` (retention).
        Open and pending ones stay, however old: someone is still working them."""
        found = await self.tickets.find(
            institution,
            {"status": "closed", "created_ms": {"$lt": _epoch_ms(cutoff)}},
            limit=limit,
            projection={"_id": 1},
        )
        return [d["_id"] for d in found]

    async def delete(self, ids: list[str]) -> int:
        """Delete tickets and whatever of their mail is still queued."""
        if not ids:
            return 0
        await self.outbox.raw.delete_many({"ticket_id": {"$in": ids}})
        return (await self.tickets.raw.delete_many({"_id": {"$in": ids}})).deleted_count

    # --- the mail outbox -------------------------------------------------------------------

    async def enqueue(self, mail: Document) -> None:
        """A mail to send (its `_id` makes a retried enqueue a no-op)."""
        await self.outbox.insert_once(mail["institution"], mail)

    async def claim_due(self, now: datetime, lease_ms: int) -> Document | None:
        """The next mail due, leased for `lease_ms` (so that another sender, or this one
        after a crash, takes it up only once the lease runs out)."""
        now_ms = _epoch_ms(now)
        found = await self.outbox.raw.find_one_and_update(
            {"state": {"$in": ["queued", "retrying"]}, "next_ms": {"$lte": now_ms}},
            {"$set": {"next_ms": now_ms + lease_ms}},
            sort=[("next_ms", 1)],
            return_document=ReturnDocument.AFTER,
        )
        return found

    async def next_due_ms(self) -> int | None:
        found = await self.outbox.raw.find_one(
            {"state": {"$in": ["queued", "retrying"]}}, sort=[("next_ms", 1)]
        )
        return None if found is None else int(found["next_ms"])

    async def mail_done(self, mail_id: str, fields: dict[str, Any]) -> None:
        await self.outbox.raw.update_one({"_id": mail_id}, {"$set": fields})

    async def waiting_mail(self) -> int:
        return await self.outbox.raw.count_documents({"state": {"$in": ["queued", "retrying"]}})
