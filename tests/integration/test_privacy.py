"""Retention and erasure against a real nats-server and MongoDB, looked at where the data
lives: the documents in MongoDB and the chat stream itself. The transcripts handlers run
with the transcripts service's own NATS user, so its permission to purge is what is used."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio

from deploy.local import nats_auth
from services.transcripts.domain import Members
from services.transcripts.handlers import TranscriptHandlers
from services.transcripts.retention import RetentionJob, RetentionRun
from services.transcripts.store import TranscriptStore
from shared import store, subjects
from shared.bus import Bus
from shared.clock import FixedClock
from shared.configuration import ConfigView
from shared.errors import Refusal
from shared.schemas.privacy import ErasePatron
from shared.schemas.records import Institution, Principal
from shared.schemas.requests import AuditQuery, SearchTranscripts, StatsQuery
from tests.factories import T0
from tests.integration.test_transcript_consumer import caught_up, publish, records
from tests.servers import Servers

INSTITUTION = "privy"
ADMIN = Principal(username="demo-privy-admin", institution=INSTITUTION, role="institution_admin")
EMAIL = "Pat.Doe@Example.org"
PAGE = "https://library.example.org/theses"


def policy(days: int, action: str) -> Institution:
    return Institution.model_validate(
        {
            "name": INSTITUTION,
            "institution": INSTITUTION,
            "display_name": "Privy Library",
            "timezone": "UTC",
            "retention_days": days,
            "retention_action": action,
        }
    )


@dataclass
class Setting:
    handlers: TranscriptHandlers
    store: TranscriptStore
    db: Any
    bus: Bus  # the transcripts service's NATS user

    async def chat(self, admin: Bus, close: bool = True, **start: Any) -> str:
        """A chat recorded by the consumer, as routing would have written it."""
        chat_id = uuid.uuid4().hex
        for record in records(chat_id, INSTITUTION, close=close, **start):
            await publish(admin, chat_id, record.to_json(), INSTITUTION)
        await caught_up(self.handlers)
        return chat_id

    async def in_stream(self, chat_id: str) -> bool:
        return await self.bus.last_chat_record(chat_id, INSTITUTION) is not None


@pytest_asyncio.fixture
async def setting(bus: Bus, servers: Servers) -> AsyncIterator[Setting]:
    user = nats_auth.url_for(servers.nats_url, "transcripts", servers.nats_users["transcripts"])
    own = await Bus.connect(user, "tests-transcripts")
    # The directory makes the config bucket; transcripts only binds to it.
    await bus.key_value(subjects.CONFIG_BUCKET)
    client = store.connect(servers.mongodb_uri, "tests")
    db = client[f"t{uuid.uuid4().hex[:10]}"]
    view = ConfigView(await own.key_value(subjects.CONFIG_BUCKET))
    await view.start()
    transcripts = TranscriptStore(db, lambda: Members({INSTITUTION: "UTC"}, frozenset()))
    await transcripts.ensure_indexes()
    handlers = TranscriptHandlers(own, transcripts, view, "demo", FixedClock(T0), 100, 0.05)
    durable = f"test-{uuid.uuid4().hex[:8]}"
    await handlers.start_consuming(durable, INSTITUTION)
    yield Setting(handlers, transcripts, db, own)
    await handlers.stop()
    await bus.js.delete_consumer(subjects.CHAT_STREAM, durable)
    await view.stop()
    await own.close()
    await client.drop_database(db.name)
    await client.close()


def job(s: Setting, clock: FixedClock, days: int, action: str) -> RetentionJob:
    return RetentionJob(
        s.store,
        lambda: {INSTITUTION: policy(days, action)},
        s.bus.forget_chat,
        clock,
        every=timedelta(hours=1),
        stream_max_age=timedelta(hours=72),
    )


async def figures(s: Setting) -> dict[str, Any]:
    query = StatsQuery(
        institution=INSTITUTION,
        principal=ADMIN,
        start=T0 - timedelta(days=1),
        end=T0 + timedelta(days=5),
    )
    stats = (await s.handlers.stats(query)).model_dump()
    return {k: v for k, v in stats.items() if k not in ("start", "end")}


async def test_retention_anonymises_on_its_schedule_and_statistics_hold(bus: Bus, setting):
    s = setting
    old = await s.chat(bus, email=EMAIL, page=PAGE, question="Is my thesis on Smith overdue?")
    recent = await s.chat(bus, at=T0 + timedelta(days=2), question="Recent question")
    before = await figures(s)
    recent_before = await s.db.chats.find_one({"_id": recent})
    clock = FixedClock(T0 + timedelta(hours=1))
    retention = job(s, clock, days=1, action="anonymise")
    retention.start()
    try:
        await clock.until_sleeping(1)  # the first run: nothing is a day old yet
        chat = await s.db.chats.find_one({"_id": old})
        assert chat["patron"]["email"] == EMAIL and "anonymised" not in chat
        assert chat["patron"]["page"] == PAGE
        clock.advance(24 * 3600)
        await clock.until_sleeping(1)  # the run a day later is done
    finally:
        await retention.stop()

    chat = await s.db.chats.find_one({"_id": old})
    assert chat["patron"] == {"guest_id": "", "name": None, "email": None}
    assert chat["question"] is None and "text" not in chat and "email_key" not in chat
    # (The embedded server hands booleans back as 1 and 0.)
    assert chat["anonymised"] and chat["tags"] == ["maps"] and chat["messages"] == 7
    messages = await s.db.messages.find({"chat_id": old}).sort("seq", 1).to_list()
    patron = [m for m in messages if m["from"]["kind"] == "patron"]
    staff = [m for m in messages if m["from"]["kind"] == "operator"]
    # The question (message 1) and three more.
    assert len(patron) == 4 and all(
        m["body"] == "" and m["from"]["name"] == "patron" for m in patron
    )
    assert [m["body"] for m in staff] == ["message 1", "message 3", "message 5"]
    assert not await s.in_stream(old)  # purged: a redelivery cannot bring the text back
    # The recent chat is as it was, in MongoDB and in the stream.
    assert await s.db.chats.find_one({"_id": recent}) == recent_before
    assert await s.in_stream(recent)
    # Statistics are the same figures; search no longer finds the patron's words.
    assert await figures(s) == before
    search = SearchTranscripts(institution=INSTITUTION, principal=ADMIN, q="thesis Smith")
    assert (await s.handlers.search(search)).chats == []


async def test_retention_deletes_where_the_library_chose_so(bus: Bus, setting):
    s = setting
    old = await s.chat(bus)
    recent = await s.chat(bus, at=T0 + timedelta(days=3))
    # Two days on, the old chat's records may still be in the stream: they are purged.
    run = await job(s, FixedClock(T0 + timedelta(days=2, hours=1)), 2, "delete").run_once()
    assert run == RetentionRun(anonymised=0, deleted=1, purged=len(records(old)))
    for collection in ("chats", "messages", "chat_events"):
        key = "_id" if collection == "chats" else "chat_id"
        assert await s.db[collection].count_documents({key: old}) == 0, collection
        assert await s.db[collection].count_documents({key: recent}) > 0, collection
    assert not await s.in_stream(old) and await s.in_stream(recent)
    # Nothing is left to do: a second run finds nothing and purges nothing.
    assert await job(s, FixedClock(T0 + timedelta(days=2, hours=2)), 2, "delete").run_once() == (
        RetentionRun()
    )


async def test_erasure_by_email_or_guest_id_leaves_no_trace(bus: Bus, setting):
    s = setting
    by_email = await s.chat(bus, email=EMAIL, guest_id="guestA")
    same_address = await s.chat(bus, email=EMAIL.upper(), guest_id="guestB")
    ongoing = await s.chat(bus, guest_id="guestA", close=False)
    someone_else = await s.chat(bus, guest_id="guestC", email="other@example.org")

    erase = ErasePatron(institution=INSTITUTION, principal=ADMIN, email=EMAIL.lower())
    for who in (
        Principal(username="demo-privy-ann", institution=INSTITUTION, role="operator"),
        Principal(username="demo-hill-admin", institution="hill", role="institution_admin"),
    ):
        with pytest.raises(Refusal) as refused:
            await s.handlers.erase(erase.model_copy(update={"principal": who}))
        assert refused.value.code == "forbidden"
    assert await s.db.chats.count_documents({"_id": by_email}) == 1  # refused: untouched

    erased = await s.handlers.erase(erase)
    assert (erased.chats, erased.messages, erased.active_skipped) == (2, 14, 0)
    assert erased.stream_records == 2 * len(records(by_email))
    assert erased.chat_ids == sorted([by_email, same_address])
    assert erased.guest_ids == ["guestA", "guestB"]
    for chat_id in (by_email, same_address):
        assert not await s.in_stream(chat_id)
        for collection in ("chats", "messages", "chat_events"):
            key = "_id" if collection == "chats" else "chat_id"
            assert await s.db[collection].count_documents({key: chat_id}) == 0

    # By guest id: the chat still going on is left for later, and said so.
    by_guest = await s.handlers.erase(
        ErasePatron(institution=INSTITUTION, principal=ADMIN, guest_id="guestA")
    )
    assert (by_guest.chats, by_guest.active_skipped) == (0, 1)
    assert await s.db.chats.count_documents({"_id": ongoing}) == 1 and await s.in_stream(ongoing)
    assert await s.db.chats.count_documents({"_id": someone_else}) == 1
    assert await s.in_stream(someone_else)

    log = await s.handlers.audit(AuditQuery(institution=INSTITUTION, principal=ADMIN, since=T0))
    erasures = [e for e in log.entries if e.action == "erase_patron"]
    assert sorted((e.who, e.detail) for e in erasures) == [
        ("demo-privy-admin", "chats erased at a patron's request: 0"),
        ("demo-privy-admin", "chats erased at a patron's request: 2"),
    ]
    assert all(EMAIL.lower() not in str(e) and "guestA" not in str(e) for e in log.entries)
