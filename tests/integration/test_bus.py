"""The bus against a real nats-server with JetStream."""

from __future__ import annotations

import asyncio
import time
import uuid

import nats
import pytest
from nats.js.errors import KeyWrongLastSequenceError
from prometheus_client import REGISTRY

from services.routing import domain
from shared import subjects
from shared.bus import BucketFollower, Bus, Endpoint, flushed
from shared.errors import Refusal, StaleRevision
from shared.schemas.events import ChatRecord
from shared.schemas.records import Principal
from shared.schemas.requests import (
    SESSION_EVENT,
    Done,
    SessionChanged,
    SessionEvent,
    StaffingQuery,
)
from shared.schemas.tickets import GetTicket
from tests.factories import T0, started
from tests.servers import Servers


async def test_a_subscription_is_at_the_server_once_flushed(bus: Bus, servers: Servers):
    """Another connection's message right after finds it. (With one round trip of
    nats-py's `flush()` about one try in five lost the race.)"""
    other = await nats.connect(servers.nats_url)
    try:
        for n in range(50):
            subject = f"flushtest.{uuid.uuid4().hex}"
            sub = await bus.nc.subscribe(subject)
            await flushed(bus.nc)
            await other.publish(subject, str(n).encode())
            assert (await sub.next_msg(timeout=2)).data == str(n).encode()
            await sub.unsubscribe()
    finally:
        await other.close()


async def test_typed_request_reply_and_refusals(bus: Bus):
    async def handler(req: StaffingQuery) -> Done:
        if req.queue == "demo-none":
            raise Refusal("not_found", "no queue demo-none")
        return Done()

    service = f"t{uuid.uuid4().hex[:8]}"
    await bus.serve(service, "0.0.1", [Endpoint.of("staffing", f"{service}.*.staffing", handler)])
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
    ann = Principal(username="demo-hill-ann", institution="hill", role="operator")
    with pytest.raises(Refusal) as invalid:
        await bus.request(
            f"{service}.hill.staffing",
            GetTicket(institution="hill", principal=ann, ticket_id="x"),
            Done,
        )
    assert invalid.value.code == "invalid" and "queue" in invalid.value.message


async def test_a_request_for_a_person_stays_in_their_institution(bus: Bus):
    """Whoever sends it, a request made for someone concerns their institution, or any for
    the consortium's admin: the bus refuses it before the handler runs."""
    asked: list[str] = []

    async def answer(req: GetTicket) -> Done:
        asked.append(req.institution)
        return Done()

    service = f"s{uuid.uuid4().hex[:8]}"
    await bus.serve(service, "0.0.1", [Endpoint.of("get", f"{service}.*.get", answer)])
    ann = Principal(username="demo-hill-ann", institution="hill", role="operator")
    chief = Principal(username="demo-admin", institution="demo", role="consortium_admin")
    with pytest.raises(Refusal) as refused:
        await bus.request(
            f"{service}.river.get",
            GetTicket(institution="river", principal=ann, ticket_id="t"),
            Done,
        )
    assert refused.value.code == "forbidden"
    for who in (ann, chief):
        inst = "hill" if who is ann else "river"
        req = GetTicket(institution=inst, principal=who, ticket_id="t")
        assert (await bus.request(f"{service}.{inst}.get", req, Done)).ok
    assert asked == ["hill", "river"]


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


def _record(transition: domain.Transition) -> ChatRecord:
    return ChatRecord(state=transition.state, events=transition.events)


async def test_a_chat_record_is_appended_only_after_the_record_it_was_decided_from(bus: Bus):
    opened = started()
    chat_id = opened.state.chat.id
    first = await bus.append_chat_record(_record(opened), 0)
    with pytest.raises(StaleRevision):  # the chat exists: a second start loses
        await bus.append_chat_record(_record(started(chat_id)), 0)

    # Twenty replicas decide different claims from the same record: one lands.
    claims = [
        domain.claim(opened.state, f"demo-hill-op{i}", f"Op {i}", ["demo-hill"], T0)
        for i in range(20)
    ]

    async def contender(transition: domain.Transition) -> int | None:
        try:
            return await bus.append_chat_record(_record(transition), first)
        except StaleRevision:
            return None

    results = await asyncio.gather(*(contender(t) for t in claims))
    landed = [(t, seq) for t, seq in zip(claims, results, strict=True) if seq is not None]
    assert len(landed) == 1
    winner, seq = landed[0]

    # The last record is the chat's state, found with or without its institution.
    for institution in ("hill", None):
        found = await bus.last_chat_record(chat_id, institution)
        assert found is not None and found[1] == seq
        assert found[0].state == winner.state
    assert await bus.last_chat_record(chat_id, "river") is None
    assert await bus.last_chat_record(uuid.uuid4().hex) is None

    # History is every event of the records that landed, in order, each once.
    history = await bus.chat_history("hill", chat_id)
    assert [e.id for e in history] == [e.id for e in opened.events + winner.events]
    assert [e.n for e in history] == list(range(1, len(history) + 1))
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
    finally:
        await store.stop()


QUERY = StaffingQuery(institution="hill", queue="demo-hill")


async def _serve_staffing(server: Bus, handler) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A throwaway service with one endpoint; returns its name and Hill's subject."""
    service = f"s{uuid.uuid4().hex[:8]}"
    endpoint = Endpoint.of("staffing", f"{service}.*.staffing", handler)
    await server.serve(service, "0.0.1", [endpoint])
    return service, f"{service}.hill.staffing"


async def test_a_replica_at_its_ceiling_says_busy_at_once_and_drops_what_nobody_awaits(
    servers,  # type: ignore[no-untyped-def]
):
    from prometheus_client import REGISTRY

    from shared.bus import DEADLINE_HEADER

    server = await Bus.connect(servers.nats_url, "busy-tests")
    server.max_in_flight = 2
    # Only the ceiling is under test: a loop slowed by the machine's other work must not
    # refuse first (the lag has its own test below).
    server.lag.threshold_s = 5.0
    client = await Bus.connect(servers.nats_url, "busy-client")
    release = asyncio.Event()
    started = 0

    async def slow(_req: StaffingQuery) -> Done:
        nonlocal started
        started += 1
        await release.wait()
        return Done()

    service, subject = await _serve_staffing(server, slow)
    try:
        calls = [
            asyncio.create_task(client.request(subject, QUERY, Done, timeout=5)) for _ in range(5)
        ]
        # The three past the ceiling are refused, each as soon as it arrives (not
        # necessarily in one turn of the loop); the two under it are still running.
        refused: list[BaseException | None] = []
        waiting = set(calls)
        while len(refused) < 3:
            done, waiting = await asyncio.wait(
                waiting, timeout=2, return_when=asyncio.FIRST_COMPLETED
            )
            assert done, f"only {len(refused)} refused within 2 s"
            refused += [c.exception() for c in done]
        assert len(refused) == 3 and started == 2
        for refusal in refused:
            assert isinstance(refusal, Refusal) and refusal.code == "busy"
            assert refusal.retry_after_ms is not None and refusal.retry_after_ms > 0
        release.set()
        assert all(isinstance(r, Done) for r in await asyncio.gather(*calls[:2]))

        # A request whose caller gave up before it was read is dropped, not done.
        def shed() -> float:
            labels = {"service": service, "endpoint": "staffing", "outcome": "expired"}
            return REGISTRY.get_sample_value("refdesk_bus_requests_total", labels) or 0.0

        before = shed()
        past = str(int(time.time() * 1000) - 1000)
        await client.nc.publish(subject, QUERY.to_json(), headers={DEADLINE_HEADER: past})
        await client.request(subject, QUERY, Done)  # served after it, on the same endpoint
        assert shed() == before + 1 and started == 2 + 1
    finally:
        release.set()
        await client.close()
        await server.close()


async def test_a_replica_whose_loop_is_behind_refuses_new_work_as_busy(servers):  # type: ignore[no-untyped-def]
    server = await Bus.connect(servers.nats_url, "lag-tests")
    client = await Bus.connect(servers.nats_url, "lag-client")
    server.lag.threshold_s, server.lag.interval_s = 0.05, 0.01

    async def quick(_req: StaffingQuery) -> Done:
        return Done()

    _, subject = await _serve_staffing(server, quick)
    try:
        assert isinstance(await client.request(subject, QUERY, Done), Done)
        # Work holds the server's loop (this test's) for 0.2 s: overload, as it looks from
        # inside. The lag watcher's wake-up, overdue, runs before the next request arrives.
        busy_until = time.perf_counter() + 0.2
        while time.perf_counter() < busy_until:
            pass
        with pytest.raises(Refusal) as refused:
            await client.request(subject, QUERY, Done)
        assert refused.value.code == "busy" and refused.value.retry_after_ms
        assert server.lag.lag_s >= 0.1
    finally:
        await client.close()
        await server.close()


async def test_a_typed_subscription_hands_on_what_reads_and_counts_what_does_not(bus: Bus):
    """A message that is not its subject's model never reaches the handler, and is not
    dropped silently: the unreadable counter for its subject family goes up."""
    heard: list[SessionEvent] = []
    done = asyncio.Event()

    async def on_event(event: SessionEvent) -> None:
        heard.append(event)
        done.set()

    subject = subjects.presence_events("hill")
    counted = {"family": subjects.family(subject)}
    before = REGISTRY.get_sample_value("refdesk_unreadable_messages_total", counted) or 0.0
    sub = await bus.subscribe_to(subject, SESSION_EVENT.validate_json, on_event)
    await flushed(bus.nc)
    changed = SessionChanged(institution="hill", operator="demo-hill-ann", session_id="s1")
    await bus.nc.publish(subject, b'{"type": "session.what"}')
    await bus.publish(subject, changed)
    await asyncio.wait_for(done.wait(), 5)
    await sub.unsubscribe()
    assert heard == [changed]
    assert REGISTRY.get_sample_value("refdesk_unreadable_messages_total", counted) == before + 1
