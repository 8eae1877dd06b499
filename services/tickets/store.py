"""Tickets in MongoDB, scoped by institution."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from shared.schemas.requests import Ticket
from shared.store import Document, TenantCollection


class TicketStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tickets = TenantCollection(db.tickets)

    async def add(self, ticket: Ticket) -> None:
        doc = ticket.model_dump(mode="json")
        doc["_id"] = ticket.id
        await self.tickets.insert_once(ticket.institution, doc)

    async def get(self, institution: str, ticket_id: str) -> Ticket | None:
        doc = await self.tickets.find_one(institution, {"_id": ticket_id}, {"_id": 0})
        return None if doc is None else Ticket.model_validate(doc)
