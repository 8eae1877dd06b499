"""The transcripts consumer against a real nats-server and MongoDB: the stream republished
with duplicates and out of order leaves every transcript as it was; an unreadable record is
set aside on the dead-letter subject and consumption goes on; a gap is counted; a
consortium admin's reading is in the library's audit log."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest_asyncio
from prometheus_client import REGISTRY

from services.routing import domain as routing
from services.transcripts.domain import Members
from services.transcripts.handlers import TranscriptHandlers
from services.transcripts.store import TranscriptStore
from shared import store, subjects
from shared.bus import Bus
from shared.clock import SystemClock
from shared.configuration import ConfigView
from shared.schemas.events import ChatRecord
from shared.schemas.records import Principal
from shared.schemas.requests import AuditQuery, DeadLetter, GetTranscript, Transcript
from tests.client import eventually
from tests.factories import ANN, PATRON, T0, started
from tests.servers import Servers

INSTITUTION = "replay"
COORDINATOR = Principal(username="demo-admin", institution="demo", role="consortium_admin")


def records(
    chat_id: str, institution: str = INSTITUTION, *, close: bool = True, **start: Any
) -> list[ChatRecord]:
    """A chat's records as routing writes them: start, claim, six messages, close (or not)."""
    start.setdefault("question", "Where are the maps?")
    at = start.setdefault("at", T0)
    t = started(chat_id, institution=institution, **start)
    made = [ChatRecord(state=t.state, events=t.events)]
    t = routing.claim(t.state, "demo-hill-ann", "Ann", [f"demo-{institution}"], at)
    made.append(ChatRecord(state=t.state, events=t.events))
    patron = PATRON.model_copy(update={"id": start.get("guest_id", PATRON.id)})
    for i in range(6):
        t = routing.post_message(t.state, ANN if i % 2 else patron, f"message {i}", at)
        made.append(ChatRecord(state=t.state, events=t.events))
    if close:
        t = routing.close(t.state, ANN, ["maps"], at)
        made.append(ChatRecord(state=t.state, events=t.events))
    return made


async def publish(bus: Bus, chat_id: str, data: bytes, institution: str = INSTITUTION) -> None:
    subject = subjects.chat_events(institution, chat_id)
    await bus.js.publish(subject, data, headers={"Nats-Msg-Id": uuid.uuid4().hex})


@pytest_asyncio.fixture
async def consumer(bus: Bus, servers: Servers) -> AsyncIterator[tuple[TranscriptHandlers, Any]]:
    client = store.connect(servers.mongodb_uri, "tests")
    db = client[f"t{uuid.uuid4().hex[:10]}"]
    view = ConfigView(await bus.key_value(subjects.CONFIG_BUCKET))
    await view.start()
    transcripts = TranscriptStore(db, lambda: Members({}, frozenset()))
    await transcripts.ensure_indexes()
    handlers = TranscriptHandlers(bus, transcripts, view, "demo", SystemClock(), 100, 0.05)
    durable = f"test-{uuid.uuid4().hex[:8]}"
    await handlers.start_consuming(durable, INSTITUTION)
    yield handlers, db
    await handlers.stop()
    await bus.js.delete_consumer(subjects.CHAT_STREAM, durable)
    await view.stop()
    await client.drop_database(db.name)
    await client.close()


async def stored(db: Any, chat_id: str) -> dict[str, Any]:
    """Everything transcripts keeps of one chat, in a stable order."""
    return {
        "chat": await db.chats.find_one({"_id": chat_id}),
        "messages": await db.messages.find({"chat_id": chat_id}).sort("_id", 1).to_list(),
        "events": await db.chat_events.find({"chat_id": chat_id}).sort("_id", 1).to_list(),
    }


async def caught_up(handlers: TranscriptHandlers) -> None:
    async def idle() -> bool | None:
        assert handlers._sub is not None
        info = await handlers._sub.consumer_info()
        return True if info.num_pending == 0 and info.num_ack_pending == 0 else None

    await eventually(idle, "the consumer has recorded everything")


async def test_a_republished_stream_leaves_every_transcript_unchanged(bus: Bus, consumer):
    handlers, db = consumer
    chats = [uuid.uuid4().hex for _ in range(3)]
    written = {chat_id: records(chat_id) for chat_id in chats}
    for chat_id, made in written.items():
        for record in made:
            await publish(bus, chat_id, record.to_json())
    await caught_up(handlers)
    before = {chat_id: await stored(db, chat_id) for chat_id in chats}
    assert all(b["chat"]["state"] == "closed" and len(b["messages"]) == 7 for b in before.values())
    assert before[chats[0]]["chat"]["text"].startswith("Where are the maps?\nmessage 0")

    again = [(c, r) for c, made in written.items() for r in made] * 2
    random.Random(3).shuffle(again)
    for chat_id, record in again:
        await publish(bus, chat_id, record.to_json())
    await caught_up(handlers)
    assert {chat_id: await stored(db, chat_id) for chat_id in chats} == before


async def test_an_unreadable_record_is_set_aside_and_consumption_goes_on(bus: Bus, consumer):
    handlers, db = consumer
    letters: asyncio.Queue[DeadLetter] = asyncio.Queue()

    async def heard(msg: Any) -> None:
        await letters.put(DeadLetter.model_validate_json(msg.data))

    sub = await bus.nc.subscribe(subjects.dead_letters(subjects.TRANSCRIPTS_CONSUMER), cb=heard)
    dead_before = REGISTRY.get_sample_value("refdesk_transcript_dead_letters_total") or 0.0
    chat_id = uuid.uuid4().hex
    made = records(chat_id)
    await publish(bus, chat_id, made[0].to_json())
    await publish(bus, chat_id, b'{"v": 1, "events": [{"type": "nonsense"}]}')
    for record in made[1:]:
        await publish(bus, chat_id, record.to_json())
    letter = await asyncio.wait_for(letters.get(), 10)
    assert (
        letter.subject == subjects.chat_events(INSTITUTION, chat_id) and "nonsense" in letter.data
    )
    await caught_up(handlers)
    assert (await stored(db, chat_id))["chat"]["state"] == "closed"  # the rest went on
    assert REGISTRY.get_sample_value("refdesk_transcript_dead_letters_total") == dead_before + 1
    await sub.unsubscribe()


async def test_a_gap_in_a_chat_s_events_is_counted(bus: Bus, consumer):
    handlers, _ = consumer
    gaps_before = REGISTRY.get_sample_value("refdesk_transcript_event_gaps_total") or 0.0
    chat_id = uuid.uuid4().hex
    made = records(chat_id)
    await publish(bus, chat_id, made[0].to_json())  # events 1-3
    await publish(bus, chat_id, made[3].to_json())  # event 6: 4 and 5 never came
    await caught_up(handlers)
    assert REGISTRY.get_sample_value("refdesk_transcript_event_gaps_total") == gaps_before + 2


async def test_a_coordinator_s_reading_is_in_the_library_s_audit_log(bus: Bus, consumer):
    handlers, _ = consumer
    chat_id = uuid.uuid4().hex
    for record in records(chat_id):
        await publish(bus, chat_id, record.to_json())
    await caught_up(handlers)
    read = GetTranscript(institution=INSTITUTION, principal=COORDINATOR, chat_id=chat_id)
    assert (await handlers.get(read)).chat.id == chat_id
    own = Principal(username="demo-replay-admin", institution=INSTITUTION, role="institution_admin")
    await handlers.get(read.model_copy(update={"principal": own}))  # its own admin: not logged
    log = await handlers.audit(AuditQuery(institution=INSTITUTION, principal=own, since=T0))
    mine = [e for e in log.entries if e.chat_id == chat_id]
    assert [(e.who, e.action) for e in mine] == [("demo-admin", "read_transcript")]


async def test_export_writes_a_library_s_transcripts_as_json_lines(
    bus: Bus, consumer, servers: Servers, tmp_path: Path
):
    handlers, db = consumer
    # Days no other test's chats (all at T0) fall on: the consumer reads the whole stream.
    days = [T0 + timedelta(days=d) for d in (7, 10, 11)]
    chats = [uuid.uuid4().hex for _ in days]
    for chat_id, at in zip(chats, days, strict=True):
        for record in records(chat_id, at=at):
            await publish(bus, chat_id, record.to_json())
    await caught_up(handlers)
    env = {**os.environ, "REFDESK_MONGODB_URI": servers.mongodb_uri, "REFDESK_MONGODB_DB": db.name}
    out = tmp_path / "replay.jsonl"
    command = [sys.executable, "-m", "refdesk.export", "transcripts", "--institution", INSTITUTION]
    done = await asyncio.to_thread(
        subprocess.run,
        [*command, "--since", days[1].date().isoformat(), "--output", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = [Transcript.model_validate_json(line) for line in out.read_text().splitlines()]
    # From the day given on, oldest first, each with its messages in order.
    assert [t.chat.id for t in lines] == chats[1:]
    assert [m.seq for m in lines[0].messages] == list(range(1, 8))
    assert lines[0].routing[0].queue == f"demo-{INSTITUTION}"
    assert "2/2" in done.stderr and "2 transcripts of replay" in done.stderr  # the progress bar
    for bad, name in (
        (["--since", "yesterday"], "since"),
        (["--since", "2026-11-01T10:00"], "offset"),
    ):
        refused = await asyncio.to_thread(
            subprocess.run, [*command, *bad], env=env, capture_output=True, text=True, timeout=60
        )
        assert refused.returncode == 2 and name in refused.stderr, refused.stderr
