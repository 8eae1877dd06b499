"""Transcripts' MongoDB collections: chats, messages and the raw event log."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from services.transcripts import domain
from shared.schemas.events import ChatEvent
from shared.schemas.requests import Transcript
from shared.store import Document, TenantCollection


class TranscriptStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.chats = TenantCollection(db.chats)
        self.messages = TenantCollection(db.messages)
        self.events = TenantCollection(db.chat_events)

    async def ensure_indexes(self) -> None:
        await self.messages.raw.create_index([("institution", 1), ("chat_id", 1), ("seq", 1)])
        await self.events.raw.create_index([("institution", 1), ("chat_id", 1), ("n", 1)])
        await self.chats.raw.create_index([("institution", 1), ("created_at", -1)])

    async def apply(self, event: ChatEvent) -> bool:
        """Record one event; False when it had been recorded already."""
        institution = event.chat.institution
        fresh = await self.events.insert_once(institution, domain.event_document(event))
        if event.type == "message":
            await self.messages.insert_once(
                institution, domain.message_document(event.message, institution)
            )
        await self._advance_chat(event)
        return fresh

    async def _advance_chat(self, event: ChatEvent) -> None:
        doc = domain.chat_document(event)
        institution = event.chat.institution
        result = await self.chats.update_one(
            institution, {"_id": doc["_id"], "n": {"$lt": event.n}}, {"$set": doc}
        )
        if result.matched_count == 0:
            # Either the chat is new, or it already reflects a later event: insert_once
            # settles which without a race.
            await self.chats.insert_once(institution, doc)

    async def transcript(self, institution: str, chat_id: str) -> Transcript | None:
        chat = await self.chats.find_one(institution, {"_id": chat_id})
        if chat is None:
            return None
        messages = await self.messages.find(institution, {"chat_id": chat_id}, sort=[("seq", 1)])
        events = await self.events.find(institution, {"chat_id": chat_id}, sort=[("n", 1)])
        return Transcript(
            chat=domain.chat_from_document(chat),
            messages=[domain.message_from_document(m) for m in messages],
            routing=domain.routing_from_events(events),
        )
