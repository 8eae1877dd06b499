"""Transcripts' MongoDB collections: chats, messages and the raw event log, and the
statistics rollups kept from them (rollup_store.py)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from pymongo import IndexModel, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from services.transcripts import domain, privacy, queries
from services.transcripts.rollup_store import RollupStore
from shared import indexes, paging
from shared.clock import Clock, SystemClock, iso
from shared.schemas.chat import Chat
from shared.schemas.events import ChatEvent
from shared.schemas.privacy import ErasePatron, TranscriptsErased
from shared.schemas.requests import (
    AuditEntry,
    AuditQuery,
    GuestChatsQuery,
    InternalMessage,
    MissedQuery,
    SearchTranscripts,
    Stats,
    StatsQuery,
    Transcript,
    TranscriptPage,
)
from shared.store import Document, TenantCollection

TEXT_INDEX = "search_text"
# What every transcripts replica makes the database hold at start (shared/indexes.py).
INDEXES = {
    "messages": [
        IndexModel([("institution", 1), ("chat_id", 1), ("seq", 1)]),
        IndexModel([("chat_id", 1), ("seq", 1)]),
    ],
    "chat_events": [IndexModel([("institution", 1), ("chat_id", 1), ("n", 1)])],
    "chats": [
        IndexModel([("institution", 1), ("created_ms", -1)]),
        IndexModel([("shared_with", 1), ("created_ms", -1)]),
        IndexModel([("answered_institution", 1), ("created_ms", -1)]),
        IndexModel([("created_ms", -1)]),
        IndexModel([("patron.guest_id", 1), ("created_ms", -1)]),
        IndexModel([("email_key", 1)], sparse=True),
        IndexModel([("institution", 1), ("state", 1), ("closed_at", -1)]),
        IndexModel(
            [("question", "text"), ("text", "text")], name=TEXT_INDEX, default_language="english"
        ),
    ],
    "internal_messages": [IndexModel([("institution", 1), ("conversation", 1), ("ts", 1)])],
    "audit": [IndexModel([("institution", 1), ("at", -1)])],
}
# Not `{"$ne": True}`: the embedded server does not match a missing field with it.
NOT_ANONYMISED = {"$in": [None, False]}


class TranscriptStore:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        members: Callable[[], domain.Members],
        clock: Clock | None = None,
    ) -> None:
        self.chats = TenantCollection(db.chats)
        self.messages = TenantCollection(db.messages)
        self.events = TenantCollection(db.chat_events)
        self.internal = TenantCollection(db.internal_messages)
        self.audit = TenantCollection(db.audit)
        self.members = members
        self.rollups = RollupStore(db, members, clock or SystemClock())

    async def ensure_indexes(self) -> None:
        await indexes.reconcile(self.chats.raw.database, INDEXES)

    # --- reading ---------------------------------------------------------------------------

    async def search(self, req: SearchTranscripts, scope: str | None) -> TranscriptPage:
        """A page of chats newest first, and the cursor of the next page (None: the last).
        `scope`: the institution whose readable chats these are; None for all."""
        cursor = self.chats.raw.find(queries.search_filter(req, scope))
        docs = await cursor.sort(list(paging.NEWEST_FIRST)).limit(req.limit + 1).to_list()
        more = len(docs) > req.limit
        docs = docs[: req.limit]
        return TranscriptPage(
            chats=[domain.chat_from_document(d) for d in docs],
            next_cursor=paging.encode_cursor(req, docs[-1]) if more and docs else None,
        )

    async def guest_chats(self, req: GuestChatsQuery, homes: frozenset[str]) -> list[Chat]:
        """A guest's chats since `since`, newest first: those of `homes` (libraries whose
        guests the asker may look up) and those the asker's institution answered."""
        found = {
            "patron.guest_id": req.guest_id,
            "created_ms": {"$gte": domain.epoch_ms(req.since)},
            "$or": [{"institution": {"$in": sorted(homes)}}, {"shared_with": req.institution}],
        }
        cursor = self.chats.raw.find(found).sort(list(paging.NEWEST_FIRST)).limit(req.limit)
        return [domain.chat_from_document(d) for d in await cursor.to_list()]

    async def record_audit(self, institution: str, entry: AuditEntry) -> None:
        await self.record_audits(institution, [entry])

    async def record_audits(self, institution: str, entries: list[AuditEntry]) -> None:
        if entries:
            await self.audit.raw.insert_many(
                [self.audit.scoped(institution, e.model_dump()) for e in entries]
            )

    async def audit_log(self, query: AuditQuery) -> list[AuditEntry]:
        docs = await self.audit.find(
            query.institution,
            {"at": {"$gte": iso(query.since)}},
            sort=[("at", -1)],
            limit=query.limit,
            projection={"_id": 0, "institution": 0},
        )
        return [AuditEntry.model_validate(d) for d in docs]

    async def stats(self, query: StatsQuery, inst: str | None) -> Stats:
        """The span's figures for an institution (None: the consortium, with a breakdown
        by institution), grouped if asked: from the rollups, never the chats."""
        return await self.rollups.stats(query, inst)

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
        """Record a batch of events, then count the chats that ended (or changed after
        ending) in the statistics rollups. Raises RollupsDeferred when another writer holds
        some chat's count: the batch is to come again."""
        fresh = await self._record(events)
        ended = await self._index_text(events)
        await self.rollups.record(ended)
        return fresh

    async def _index_text(self, events: list[ChatEvent]) -> set[str]:
        """Give ended chats their messages' text for search. Chats that end in this batch,
        and ended chats a late (redelivered) message reached, are rebuilt from the stored
        messages, so the result is the same in whatever order events came. Returns those
        chats."""
        ended = {e.chat.id for e in events if e.type != "message" and e.chat.state in domain.ENDED}
        touched = {e.chat.id for e in events if e.type == "message"} - ended
        if touched:
            late = self.chats.raw.find(
                {"_id": {"$in": sorted(touched)}, "state": {"$in": list(domain.ENDED)}},
                {"_id": 1},
            )
            ended |= {d["_id"] for d in await late.to_list()}
        if not ended:
            return ended
        by_chat: dict[str, list[dict[str, Any]]] = defaultdict(list)
        found = self.messages.raw.find(
            {"chat_id": {"$in": sorted(ended)}}, {"chat_id": 1, "seq": 1, "body": 1}
        )
        for message in await found.to_list():
            by_chat[message["chat_id"]].append(message)
        updates = [
            UpdateOne(
                {"_id": chat_id, "anonymised": NOT_ANONYMISED},
                {"$set": domain.searchable_text(by_chat[chat_id])},
            )
            for chat_id in sorted(ended)
        ]
        await self.chats.raw.bulk_write(updates, ordered=False)
        return ended

    async def _record(self, events: list[ChatEvent]) -> int:
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
            members = self.members()
            await self.chats.upsert_newer(
                institution, [domain.chat_document(e, members) for e in latest.values()], "n"
            )
        return fresh

    # --- privacy ---------------------------------------------------------------------------

    async def due(
        self, institution: str, cutoff: datetime, anonymised_too: bool, limit: int
    ) -> list[Document]:
        """Ended chats of the institution created before `cutoff` that retention has not
        dealt with yet (anonymised ones too when they are to be deleted)."""
        found: Document = {
            "institution": institution,
            "created_ms": {"$lt": domain.epoch_ms(cutoff)},
            "state": {"$in": list(domain.ENDED)},
        }
        if not anonymised_too:
            found["anonymised"] = NOT_ANONYMISED
        cursor = self.chats.raw.find(found, {"_id": 1, "closed_at": 1}).limit(limit)
        return await cursor.to_list()

    async def anonymise(self, chat_ids: list[str]) -> int:
        """Strip chats of their patron; the chat documents last, so that a run cut short
        finds them again. Returns how many chats."""
        await self.messages.raw.update_many(
            {"chat_id": {"$in": chat_ids}, "from.kind": "patron"},
            privacy.anonymised_patron_message(),
        )
        done = await self.chats.raw.update_many(
            {"_id": {"$in": chat_ids}}, privacy.anonymised_chat()
        )
        return done.modified_count

    async def delete(self, chat_ids: list[str]) -> TranscriptsErased:
        """Delete chats with their messages and events; the chat documents last, so that a
        run cut short finds them again."""
        within = {"chat_id": {"$in": chat_ids}}
        messages = await self.messages.raw.delete_many(within)
        events = await self.events.raw.delete_many(within)
        chats = await self.chats.raw.delete_many({"_id": {"$in": chat_ids}})
        return TranscriptsErased(
            chats=chats.deleted_count,
            messages=messages.deleted_count,
            events=events.deleted_count,
        )

    async def patron_chats(self, req: ErasePatron, scope: str | None) -> list[Document]:
        """A patron's chats (by guest id or email) in `scope` (None: every institution)."""
        cursor = self.chats.raw.find(
            privacy.patron_filter(req, scope),
            {"_id": 1, "institution": 1, "state": 1, "patron": 1},
        )
        return await cursor.to_list()

    # --- export --------------------------------------------------------------------------

    async def count_since(self, institution: str, since: datetime) -> int:
        return await self.chats.count(institution, {"created_ms": {"$gte": domain.epoch_ms(since)}})

    async def export(
        self, institution: str, since: datetime, batch: int = 200
    ) -> AsyncIterator[list[Transcript]]:
        """The institution's transcripts from `since` on, oldest first, a batch at a time:
        three queries a batch, whatever its size."""
        after = domain.epoch_ms(since) - 1
        last_id = ""
        while True:
            # (created_ms, _id) orders chats fully, so a page never skips or repeats one.
            page = await self.chats.find(
                institution,
                {
                    "$or": [
                        {"created_ms": {"$gt": after}},
                        {"created_ms": after, "_id": {"$gt": last_id}},
                    ]
                },
                sort=[("created_ms", 1), ("_id", 1)],
                limit=batch,
            )
            if not page:
                return
            ids = [d["_id"] for d in page]
            messages: dict[str, list[Document]] = defaultdict(list)
            for m in await self.messages.find(institution, {"chat_id": {"$in": ids}}):
                messages[m["chat_id"]].append(m)
            events: dict[str, list[Document]] = defaultdict(list)
            for e in await self.events.find(institution, {"chat_id": {"$in": ids}}):
                events[e["chat_id"]].append(e)
            yield [
                Transcript(
                    chat=domain.chat_from_document(d),
                    messages=[
                        domain.message_from_document(m)
                        for m in sorted(messages[d["_id"]], key=lambda m: m["seq"])
                    ],
                    routing=domain.routing_from_events(events[d["_id"]]),
                )
                for d in page
            ]
            after, last_id = page[-1]["created_ms"], page[-1]["_id"]

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
