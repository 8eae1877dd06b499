"""The bus against a real nats-server with JetStream."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from nats.js.errors import KeyWrongLastSequenceError

from shared import subjects
from shared.bus import BucketFollower, Bus, Endpoint
from shared.errors import Refusal
from shared.schemas.requests import Done, GetTicket, StaffingQuery
from tests.factories import started


async def test_typed_request_reply_and_refusals(bus: Bus):
    async def handler(req: StaffingQuery) -> Done:
        if req.queue == "demo-none":
            raise Refusal("not_found", "no queue demo-none")
        return Done()

    service = f"t{uuid.uuid4().hex[:8]}"
    await bus.serve(
        service, "0.0.1", [Endpoint("staffing", f"{service}.*.staffing", StaffingQuery, handler)]
    )
    ok = await bus.request(
        f"{service}.hill.staffing", StaffingQuery(institution="hill", queue="demo-hill"), Done
    )
    assert ok.ok is True
    with pytest.raises(Refusal) as missing:
        await bus.request(
            f"{service}.hill.staffing", StaffingQuery(institution="hill", queue="demo-none"), Done
        )
    assert missing.value.code == "not_found"
    # A payload naming another institution than its subject is refused: subjects fence tenants.
    with pytest.raises(Refusal) as fenced:
        await bus.request(
            f"{service}.river.staffing", StaffingQuery(institution="hill", queue="demo-hill"), Done
        )
    assert fenced.value.code == "forbidden"
    # A payload of the wrong shape is refused as invalid, naming the field.
    with pytest.raises(Refusal) as invalid:
        await bus.request(
            f"{service}.hill.staffing", GetTicket(institution="hill", ticket_id="x"), Done
        )
    assert invalid.value.code == "invalid" and "queue" in invalid.value.message


async def test_request_without_responder_is_unavailable(bus: Bus):
    with pytest.raises(Refusal) as refused:
        await bus.request("nobody.hill.here", Done(), Done, timeout=0.5)
    assert refused.value.code == "unavailable"


async def test_key_value_compare_and_set_has_one_winner(bus: Bus):
    kv = await bus.key_value(f"race{uuid.uuid4().hex[:8]}")
    revision = await kv.create("hill.chat", b"queued")

    async def contender(name: str) -> str | None:
        try:
            await kv.update("hill.chat", name.encode(), last=revision)
        except KeyWrongLastSequenceError:
            return None
        return name

    results = await asyncio.gather(*(contender(f"op{i}") for i in range(20)))
    winners = [r for r in results if r]
    assert len(winners) == 1
    assert (await kv.get("hill.chat")).value == winners[0].encode()


async def test_events_are_deduplicated_and_read_back_in_order(bus: Bus):
    chat_id = uuid.uuid4().hex
    transition = started(chat_id)
    for event in transition.events:
        await bus.publish_event(event)
    await bus.publish_event(transition.events[0])  # a retried publish
    history = await bus.chat_history("hill", chat_id)
    assert [e.id for e in history] == [e.id for e in transition.events]
    assert await bus.chat_history("hill", uuid.uuid4().hex) == []
    info = await bus.js.stream_info(subjects.CHAT_STREAM)
    assert info.config.subjects == [subjects.chat_events_all()]


async def test_expiring_bucket_tells_followers_when_an_entry_ages_out(bus: Bus):
    kv = await bus.key_value(f"ttl{uuid.uuid4().hex[:8]}", ttl=1.0)
    seen: list[tuple[str, bytes | None]] = []
    expired = asyncio.Event()

    def on_entry(key: str, value: bytes | None, _revision: int) -> None:
        seen.append((key, value))
        if value is None:
            expired.set()

    follower = BucketFollower(kv, on_entry)
    await follower.start()
    try:
        await kv.put("hill.demo-hill-ann", b"online")
        await asyncio.wait_for(expired.wait(), timeout=6)
        assert seen == [("hill.demo-hill-ann", b"online"), ("hill.demo-hill-ann", None)]
    finally:
        await follower.stop()


async def test_presence_view_never_goes_back_to_an_older_revision(bus: Bus):
    """The bucket watcher may deliver an entry after this replica has written a newer one
    (status then monitoring set in quick succession): the newer one must stay."""
    from services.presence.store import SessionStore
    from shared.schemas.requests import Session

    kv = await bus.key_value(f"presence{uuid.uuid4().hex[:8]}")
    store = SessionStore(kv)
    await store.start_watching()
    try:
        first = Session(
            institution="hill",
            operator="demo-hill-ann",
            name="Ann",
            session_id="s1",
            started_at="2026-11-24T15:00:00.000Z",
        )
        await store.write(first, 0)
        _, revision = await store.get("hill", "demo-hill-ann")
        online = first.model_copy(update={"status": "online", "monitoring": ["demo-hill"]})
        await store.write(online, revision)
        # What the watcher delivers late: the first revision, after the second was written.
        store._followed("hill.demo-hill-ann", first.to_json(), revision)
        assert store.live() == [online]
        for _ in range(50):  # and the watcher's own deliveries settle on the newest
            await asyncio.sleep(0.02)
        assert store.live() == [online]
    finally:
        await store.stop()
