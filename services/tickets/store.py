"""Tickets in MongoDB, scoped by institution."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from shared.schemas.privacy import ErasePatron, email_key
from shared.schemas.requests import Ticket
from shared.store import Document, TenantCollection


class TicketStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tickets = TenantCollection(db.tickets)

    async def add(self, ticket: Ticket) -> None:
        doc = ticket.model_dump(mode="json")
        doc["_id"] = ticket.id
        doc["email_key"] = email_key(ticket.email)
        await self.tickets.insert_once(ticket.institution, doc)

    async def get(self, institution: str, ticket_id: str) -> Ticket | None:
        doc = await self.tickets.find_one(
            institution, {"_id": ticket_id}, {"_id": 0, "email_key": 0}
        )
        return None if doc is None else Ticket.model_validate(doc)

    async def erase(self, req: ErasePatron, scope: str | None) -> int:
        """Delete a patron's tickets: by their email, and those made from their chats.
        `scope`: one institution's, or None for every institution's."""
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
        return (await self.tickets.raw.delete_many(found)).deleted_count
