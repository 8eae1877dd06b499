"""Transcripts' MongoDB collections: chats, messages and the raw event log."""

from __future__ import annotations

from collections import defaultdict

from pymongo.asynchronous.database import AsyncDatabase

from services.transcripts import domain
from shared.clock import iso
from shared.schemas.chat import Chat
from shared.schemas.events import ChatEvent
from shared.schemas.requests import (
    InternalMessage,
    MissedQuery,
    Stats,
    StatsQuery,
    Transcript,
)
from shared.store import Document, TenantCollection


class TranscriptStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.chats = TenantCollection(db.chats)
        self.messages = TenantCollection(db.messages)
        self.events = TenantCollection(db.chat_events)
        self.internal = TenantCollection(db.internal_messages)

    async def ensure_indexes(self) -> None:
        await self.messages.raw.create_index([("institution", 1), ("chat_id", 1), ("seq", 1)])
        await self.events.raw.create_index([("institution", 1), ("chat_id", 1), ("n", 1)])
        await self.chats.raw.create_index([("institution", 1), ("created_at", -1)])
        await self.internal.raw.create_index([("institution", 1), ("conversation", 1), ("ts", 1)])

    async def stats(self, query: StatsQuery) -> Stats:
        """The institution's patrons' chats created in the span, split by who answered."""
        inst = query.institution
        span = {"created_at": {"$gte": iso(query.start), "$lt": iso(query.end)}}
        answered = {**span, "answered_institution": {"$ne": None}}
        chats = await self.chats.count(inst, span)
        at_home = await self.chats.count(inst, {**span, "answered_institution": inst})
        by_backup = await self.chats.count(inst, answered) - at_home
        missed = await self.chats.count(inst, {**span, "state": "missed"})
        return Stats(
            institution=inst,
            start=iso(query.start),
            end=iso(query.end),
            chats=chats,
            answered_at_home=at_home,
            answered_by_backup=by_backup,
            missed=missed,
            unanswered=chats - at_home - by_backup,
            answered_for_others=await self.chats.count_shared_with(inst, span),
        )

    async def missed(self, query: MissedQuery) -> list[Chat]:
        docs = await self.chats.find(
            query.institution,
            {"state": "missed", "closed_at": {"$gte": iso(query.since)}},
            sort=[("closed_at", -1)],
            limit=query.limit,
        )
        return [domain.chat_from_document(d) for d in docs]

    async def save_internal(self, message: InternalMessage) -> None:
        """Idempotent: a retried save of the same message id stores it once."""
        doc = message.model_dump(mode="json", by_alias=True)
        doc["_id"] = message.id
        await self.internal.insert_many_once(message.institution, [doc])

    async def internal_conversation(
        self, institution: str, conversation: str, limit: int
    ) -> list[InternalMessage]:
        docs = await self.internal.find(
            institution, {"conversation": conversation}, sort=[("ts", -1)], limit=limit
        )
        docs.reverse()
        return [
            InternalMessage.model_validate({k: v for k, v in d.items() if k != "_id"}) for d in docs
        ]

    async def apply(self, events: list[ChatEvent]) -> int:
        """Record a batch of events in a few round trips; returns how many were new.

        Safe to repeat and to run in any order: messages and lifecycle events are keyed by
        id, and a chat document only moves to a higher event number. A message event is
        stored only as its message: it changes nothing else about the chat, and messages
        are most of the traffic.
        """
        by_institution: dict[str, list[ChatEvent]] = defaultdict(list)
        for event in events:
            by_institution[event.chat.institution].append(event)
        fresh = 0
        for institution, batch in by_institution.items():
            messages = [e for e in batch if e.type == "message"]
            lifecycle = [e for e in batch if e.type != "message"]
            fresh += await self.messages.insert_many_once(
                institution,
                [domain.message_document(e.message, institution) for e in messages],
            )
            fresh += await self.events.insert_many_once(
                institution, [domain.event_document(e) for e in lifecycle]
            )
            latest: dict[str, ChatEvent] = {}
            for event in lifecycle:
                known = latest.get(event.chat.id)
                if known is None or known.n < event.n:
                    latest[event.chat.id] = event
            await self.chats.upsert_newer(
                institution, [domain.chat_document(e) for e in latest.values()], "n"
            )
        return fresh

    async def transcript(self, institution: str, chat_id: str) -> Transcript | None:
        """A chat of the institution's patrons, or one it answered for another library."""
        chat = await self.chats.find_one_shared(institution, {"_id": chat_id})
        if chat is None:
            return None
        home = str(chat["institution"])
        messages = await self.messages.find(home, {"chat_id": chat_id}, sort=[("seq", 1)])
        events = await self.events.find(home, {"chat_id": chat_id}, sort=[("n", 1)])
        return Transcript(
            chat=domain.chat_from_document(chat),
            messages=[domain.message_from_document(m) for m in messages],
            routing=domain.routing_from_events(events),
        )
