"""Transcripts' bindings: the durable stream consumer, and the transcript request endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from services.transcripts import domain, metrics, privacy
from services.transcripts.rollup_store import RollupsDeferred
from services.transcripts.store import TranscriptStore
from shared import subjects, telemetry
from shared.bus import Bus, Endpoint, describe_validation
from shared.clock import Clock, iso
from shared.configuration import ConfigView
from shared.errors import Refusal
from shared.schemas.chat import Chat
from shared.schemas.events import ChatEvent, parse_record_events
from shared.schemas.privacy import ErasePatron, TranscriptsErased
from shared.schemas.records import Principal
from shared.schemas.requests import (
    ANNOUNCEMENTS,
    AuditAction,
    AuditEntry,
    AuditLog,
    AuditQuery,
    AuditReads,
    DeadLetter,
    Done,
    GetTranscript,
    GuestChats,
    GuestChatsQuery,
    InternalHistory,
    InternalMessage,
    InternalMessages,
    MissedChats,
    MissedQuery,
    SearchTranscripts,
    Stats,
    StatsQuery,
    Transcript,
    TranscriptPage,
)
from shared.tasks import cancel_and_wait
from shared.telemetry import extract_context

log = logging.getLogger(__name__)
tracer = trace.get_tracer("refdesk.transcripts")


class TranscriptHandlers:
    def __init__(
        self,
        bus: Bus,
        store: TranscriptStore,
        view: ConfigView,
        consortium: str,
        clock: Clock,
        batch: int,
        linger_s: float,
    ) -> None:
        self.bus = bus
        self.clock = clock
        self.gaps = domain.GapWatch()
        self.consortium = consortium
        self.store = store
        self.view = view
        self.batch = batch
        self.linger_s = linger_s
        self._task: asyncio.Task[None] | None = None
        self._sub: JetStreamContext.PullSubscription | None = None

    def endpoints(self) -> list[Endpoint[Any]]:
        return [
            Endpoint.of("get", subjects.transcripts_endpoint("get"), self.get),
            Endpoint.of(
                "internal_save", subjects.transcripts_endpoint("internal_save"), self.save_internal
            ),
            Endpoint.of("stats", subjects.transcripts_endpoint("stats"), self.stats),
            Endpoint.of("missed", subjects.transcripts_endpoint("missed"), self.missed),
            Endpoint.of("search", subjects.transcripts_endpoint("search"), self.search),
            Endpoint.of("audit", subjects.transcripts_endpoint("audit"), self.audit),
            Endpoint.of(
                "audit_reads", subjects.transcripts_endpoint("audit_reads"), self.audit_reads
            ),
            Endpoint.of("erase", subjects.transcripts_endpoint("erase"), self.erase),
            Endpoint.of(
                "guest_chats", subjects.transcripts_endpoint("guest_chats"), self.guest_chats
            ),
            Endpoint.of(
                "internal_list", subjects.transcripts_endpoint("internal_list"), self.internal_list
            ),
        ]

    async def save_internal(self, req: InternalMessage) -> Done:
        await self.store.save_internal(req)
        return Done()

    async def internal_list(self, req: InternalHistory) -> InternalMessages:
        # The consortium's announcements are every institution's to read.
        owner = self.consortium if req.conversation == ANNOUNCEMENTS else req.institution
        messages = await self.store.internal_conversation(owner, req.conversation, req.limit)
        return InternalMessages(messages=messages)

    async def _audit_chats(
        self, principal: Principal, action: AuditAction, chats: list[Chat], detail: str | None
    ) -> None:
        """Record, in each library's audit log, the chats of its patrons that `principal`
        reads from outside it (domain.audited_read), before the reader gets them."""
        at = iso(self.clock.now())
        by_home: dict[str, list[AuditEntry]] = {}
        for chat in chats:
            if domain.audited_read(principal, chat.institution, domain.shared_with(chat)):
                entry = AuditEntry(
                    at=at, who=principal.username, action=action, chat_id=chat.id, detail=detail
                )
                by_home.setdefault(chat.institution, []).append(entry)
        for home, entries in sorted(by_home.items()):
            await self.store.record_audits(home, entries)

    async def audit_reads(self, req: AuditReads) -> Done:
        """Tickets of `req.institution` that the gateway served: recorded as the audit
        rule says (the same rule as for the chats this service serves)."""
        if domain.audited_read(req.principal, req.institution):
            at = iso(self.clock.now())
            entries = [
                AuditEntry(
                    at=at,
                    who=req.principal.username,
                    action=req.action,
                    ticket_id=ticket_id,
                    detail=req.detail,
                )
                for ticket_id in req.ids
            ]
            await self.store.record_audits(req.institution, entries)
        return Done()

    async def missed(self, req: MissedQuery) -> MissedChats:
        chats = await self.store.missed(req)
        await self._audit_chats(req.principal, "read_chat", chats, "missed chats")
        return MissedChats(chats=chats)

    def _scope(self, institution: str, principal: Principal) -> str | None:
        """The consortium's own name means every institution (None), for its admin."""
        if institution != self.consortium:
            return institution
        if principal.role != "consortium_admin":
            raise Refusal("forbidden", "only a consortium admin sees the whole consortium")
        return None

    async def stats(self, req: StatsQuery) -> Stats:
        return await self.store.stats(req, self._scope(req.institution, req.principal))

    async def search(self, req: SearchTranscripts) -> TranscriptPage:
        page = await self.store.search(req, self._scope(req.institution, req.principal))
        await self._audit_chats(req.principal, "read_chat", page.chats, "transcript search")
        return page

    async def guest_chats(self, req: GuestChatsQuery) -> GuestChats:
        """The libraries whose guests an institution may look up: its own, its partners'
        (they answer each other's queues), and every library's for a backup service or a
        consortium admin (they answer for everyone)."""
        inst = req.institution
        libraries = frozenset(self.view.institutions)
        if req.principal.role == "consortium_admin" or inst in self.view.backups():
            homes = libraries
        else:
            homes = frozenset({inst}) | self.view.partners_of(inst)
        chats = await self.store.guest_chats(req, homes)
        await self._audit_chats(req.principal, "read_chat", chats, "a patron's chats")
        return GuestChats(chats=chats)

    async def get(self, req: GetTranscript) -> Transcript:
        transcript = await self.store.transcript(req.institution, req.chat_id)
        if transcript is None:
            raise Refusal("not_found", f"no transcript for chat {req.chat_id}")
        # Read from outside the library (the coordinator, say): the library sees each time.
        await self._audit_chats(req.principal, "read_transcript", [transcript.chat], None)
        return transcript

    async def erase(self, req: ErasePatron) -> TranscriptsErased:
        """Erase a patron's ended chats in the asker's scope: from the stream first (so
        nothing can record them again), then every document; each library whose patron
        it was finds the erasure, counted, in its audit log. Repeating it is harmless."""
        scope = req.scope(self.consortium)
        found = await self.store.patron_chats(req, scope)
        ended = [c for c in found if privacy.is_ended(c["state"])]
        purged = 0
        for chat in ended:
            purged += await self.bus.forget_chat(chat["institution"], chat["_id"])
        ids = sorted(c["_id"] for c in ended)
        erased = await self.store.delete(ids) if ids else TranscriptsErased()
        metrics.ERASED.inc(erased.chats)
        homes = {c["institution"] for c in ended} | ({scope} if scope else set())
        for home in sorted(homes):
            mine = sum(1 for c in ended if c["institution"] == home)
            entry = AuditEntry(
                at=iso(self.clock.now()),
                who=req.principal.username,
                action="erase_patron",
                detail=f"chats erased at a patron's request: {mine}",
            )
            await self.store.record_audit(home, entry)
        guests = {c["patron"]["guest_id"] for c in ended} | {req.guest_id}
        return erased.model_copy(
            update={
                "stream_records": purged,
                "active_skipped": len(found) - len(ended),
                "chat_ids": ids,
                "guest_ids": sorted(g for g in guests if g),
            }
        )

    async def audit(self, req: AuditQuery) -> AuditLog:
        if not req.principal.may_manage(req.institution):
            raise Refusal("forbidden", "only the institution's admins read its audit log")
        return AuditLog(entries=await self.store.audit_log(req))

    async def start_consuming(
        self, durable: str = subjects.TRANSCRIPTS_CONSUMER, institution: str | None = None
    ) -> None:
        """A durable pull consumer: what is not acknowledged is delivered again, so an
        outage of this service loses nothing. (Tests name their own consumer, of one
        institution's chats.)"""
        self._sub = sub = await self.bus.js.pull_subscribe(
            subjects.chat_events_all(institution),
            durable=durable,
            stream=subjects.CHAT_STREAM,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                # Short, so that events a crashed replica had fetched come back quickly;
                # writes are idempotent, so an early redelivery costs nothing.
                ack_wait=5,
                max_ack_pending=10_000,
            ),
        )

        async def consume() -> None:
            while True:
                try:
                    msgs = await sub.fetch(self.batch, timeout=1.0)
                except NatsTimeout:
                    continue
                except Exception:
                    log.exception("fetch failed")
                    await asyncio.sleep(0.5)
                    continue
                await self._record(msgs)
                if msgs:
                    metrics.CONSUMER_PENDING.set(msgs[-1].metadata.num_pending)
                if len(msgs) < self.batch:
                    # Caught up: let events gather so the next write is one larger batch.
                    await asyncio.sleep(self.linger_s)

        self._task = asyncio.create_task(consume())

    async def _record(self, msgs: list[Msg]) -> None:
        """Record one fetched batch, with a span per record in the trace of whatever
        caused it, ended once the batch is stored."""
        spans = (
            [
                tracer.start_span(
                    "transcribe", context=extract_context(msg.headers), kind=SpanKind.CONSUMER
                )
                for msg in msgs
            ]
            if telemetry.recording()
            else []
        )
        try:
            await self._store(msgs)
        finally:
            for span in spans:
                span.end()

    async def _store(self, msgs: list[Msg]) -> None:
        """Acknowledge only what is stored, so a failure or a crash before the acks means
        redelivery, never loss."""
        readable: list[tuple[Msg, list[ChatEvent]]] = []
        for msg in msgs:
            try:
                record = parse_record_events(msg.data)
            except ValidationError as error:
                await self._set_aside(msg, error)
                continue
            readable.append((msg, record.events))
            missing = self.gaps.observe(
                record.events[0].chat.id, record.first_n, record.events[-1].n
            )
            if missing:
                log.warning("chat record on %s follows %d missing events", msg.subject, missing)
                metrics.GAPS.inc(missing)
        if not readable:
            return
        events = [event for _, batch in readable for event in batch]
        try:
            fresh = await self.store.apply(events)
        except RollupsDeferred as deferred:
            # Stored, but another writer holds some chats' statistics: the whole batch
            # comes again (its writes are idempotent), and counts them then.
            log.warning("%s; the batch will be redelivered", deferred)
            metrics.ROLLUPS_DEFERRED.inc(len(deferred.chat_ids))
            for msg, _ in readable:
                await msg.nak(delay=1.0)
            return
        except Exception:
            log.exception("recording %d events failed; they will be redelivered", len(events))
            for msg, _ in readable:
                await msg.nak(delay=1.0)
            metrics.EVENTS_APPLIED.labels("batch", "error").inc(len(events))
            return
        for msg, _ in readable:
            await msg.ack()
        metrics.EVENTS_APPLIED.labels("batch", "new").inc(fresh)
        metrics.EVENTS_APPLIED.labels("batch", "replay").inc(len(events) - fresh)

    async def _set_aside(self, msg: Msg, error: ValidationError) -> None:
        """An unreadable record goes to the dead-letter subject, counted, and is never
        delivered again: one bad record must not stop every transcript behind it."""
        log.error("unreadable chat record on %s set aside", msg.subject)
        metrics.DEAD_LETTERS.inc()
        metrics.EVENTS_APPLIED.labels("unknown", "invalid").inc()
        letter = DeadLetter(
            consumer=subjects.TRANSCRIPTS_CONSUMER,
            subject=msg.subject,
            stream_seq=msg.metadata.sequence.stream,
            error=describe_validation(error)[:500],
            data=msg.data.decode(errors="replace")[:65536],
        )
        await self.bus.publish(subjects.dead_letters(subjects.TRANSCRIPTS_CONSUMER), letter)
        await msg.term()

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self._sub is not None:
            # A pending fetch would otherwise hold the connection's drain open.
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
