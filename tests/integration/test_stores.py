"""MongoDB access through the real driver against a real wire-protocol server."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
from pymongo.asynchronous.database import AsyncDatabase

from services.routing import domain
from services.transcripts.domain import Members
from services.transcripts.store import TranscriptStore
from shared import store
from tests.factories import ANN, PATRON, T0, started
from tests.servers import Servers


@pytest_asyncio.fixture
async def db(servers: Servers) -> AsyncIterator[AsyncDatabase[store.Document]]:
    client = store.connect(servers.mongodb_uri, "tests")
    yield client[f"t{uuid.uuid4().hex[:10]}"]
    await client.close()


async def test_tenant_collection_never_crosses_institutions(db):
    docs = store.TenantCollection(db.things)
    assert await docs.insert_once("hill", {"_id": "a", "name": "one"})
    assert not await docs.insert_once("hill", {"_id": "a", "name": "again"})
    assert await docs.find_one("hill", {"_id": "a"}) is not None
    assert await docs.find_one("river", {"_id": "a"}) is None
    assert await docs.find("river") == []
    result = await docs.update_one("river", {"_id": "a"}, {"$set": {"name": "stolen"}})
    assert result.matched_count == 0
    assert (await docs.find_one("hill", {"_id": "a"}))["name"] == "one"


def chat_events(chat_id: str):
    t = started(chat_id, question="Q?")
    events = list(t.events)
    t = domain.claim(t.state, "demo-hill-ann", "Ann", ["demo-hill"], T0)
    events += t.events
    state = t.state
    for i in range(5):
        t = domain.post_message(state, ANN if i % 2 else PATRON, f"m{i}", T0)
        events += t.events
        state = t.state
    events += domain.close(state, ANN, ["theses"], T0).events
    return events


async def test_transcript_is_the_same_whatever_the_replay_order(db):
    transcripts = TranscriptStore(db, lambda: Members({"hill": "UTC"}, frozenset()))
    await transcripts.ensure_indexes()
    chat_id = uuid.uuid4().hex
    events = chat_events(chat_id)
    shuffled = events * 2
    random.Random(7).shuffle(shuffled)
    for start in range(0, len(shuffled), 5):  # batches, as the consumer fetches them
        await transcripts.apply(shuffled[start : start + 5])
    assert await transcripts.apply(events) == 0  # a full replay adds nothing
    transcript = await transcripts.transcript("hill", chat_id)
    assert transcript is not None
    assert [m.seq for m in transcript.messages] == [1, 2, 3, 4, 5, 6]
    assert transcript.messages[0].body == "Q?"
    assert transcript.chat.state == "closed" and transcript.chat.tags == ["theses"]
    assert [r.reason for r in transcript.routing] == ["staffed"]
    assert await transcripts.transcript("river", chat_id) is None
    stored = await db.chats.find_one({"_id": chat_id})
    assert stored["text"] == "Q?\nm0\nm1\nm2\nm3\nm4" and stored["messages"] == 6
    lifecycle = [e for e in events if e.type != "message"]
    assert await db.chat_events.count_documents({"chat_id": chat_id}) == len(lifecycle)
