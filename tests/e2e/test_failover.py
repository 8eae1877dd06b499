"""Failover on one machine, as production runs it: two gateways and two routing replicas.
Killing the gateway both sides of a chat are on sends both to the other, where the chat
goes on with nothing lost; killing a routing replica loses no deadline and no transition.
With spans written to files, one patron message is one trace from the gateway through
routing to the delivering gateway and transcripts."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.local.system import LocalSystem
from tests.client import ProtocolClient, about, eventually, login, operator, patron, transcript
from tests.conftest import OFFER_TIMEOUT_S, start_system
from tests.servers import Servers


@pytest.fixture(scope="module")
def pair(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    """A system of its own with a second gateway and a second routing replica, writing its
    spans to files."""
    data = Path(tmp_path_factory.mktemp("failover"))
    system = start_system(
        servers,
        data,
        db="refdesk_failover",
        env={"REFDESK_OTEL_SPAN_DIR": str(data / "spans")},
        own_nats=True,
    )
    try:
        for name in ("gateway", "routing"):
            system.start_service(name, 1)
            system.wait_ready(f"{name}-1")
        yield system
    finally:
        system.stop()


async def desk(base: str, token: str) -> ProtocolClient:
    """Ann's operator socket on a gateway, signed in with a token she already has."""
    client = await ProtocolClient.connect(base.replace("http", "ws") + "/ws/operator")
    await client.ok({"type": "auth", "token": token})
    await client.expect("session")
    return client


async def say(by: ProtocolClient, to: ProtocolClient, chat_id: str, body: str) -> int:
    message = {"type": "message", "chat_id": chat_id, "body": body, "client_id": uuid.uuid4().hex}
    reply = await by.ok(message)
    heard = await to.expect(lambda f: f["type"] == "message" and f["body"] == body)
    assert heard["seq"] == reply["seq"]
    seq: int = reply["seq"]
    return seq


async def test_a_gateway_killed_both_sides_carry_on_at_the_other(pair: LocalSystem):
    first, second = pair.gateway_url, pair.public_url("gateway-1")
    token = await login(first, "demo-hill-ann")
    ann = await desk(first, token)
    await ann.ok({"type": "status.set", "status": "online"})
    await ann.ok({"type": "monitor.set", "queues": ["demo-hill"]})
    pat = await patron(first, "hill")
    guest = next(f for f in pat.frames if f["type"] == "welcome")["token"]
    chat_id = (await pat.ok({"type": "chat.start", "question": "Are you there?"}))["chat_id"]
    await ann.expect(about(chat_id, "queue.chat_added"))
    await ann.ok({"type": "chat.claim", "chat_id": chat_id})
    await say(pat, ann, chat_id, "one")
    await say(ann, pat, chat_id, "two")

    pair.services["gateway"].kill()  # both were on it
    ann = await desk(second, token)
    pat = await patron(second, "hill", guest)
    for side in (ann, pat):
        resumed = await side.expect(about(chat_id, "chat.resumed"))
        assert [m["body"] for m in resumed["messages"]] == ["Are you there?", "one", "two"]
    assert await say(pat, ann, chat_id, "three") == 4
    assert await say(ann, pat, chat_id, "four") == 5
    await ann.ok({"type": "chat.close", "chat_id": chat_id})
    said = await asyncio.to_thread(pair.recover, "gateway")
    assert any("gateway restarted" in line for line in said)
    body = await transcript(pair, token, chat_id, 5)
    assert [m["seq"] for m in body["messages"]] == [1, 2, 3, 4, 5]
    await ann.close()
    await pat.close()


async def test_a_routing_replica_killed_loses_no_deadline_and_no_transition(pair: LocalSystem):
    base = pair.gateway_url
    ann = await operator(base, "demo-hill-ann", ["demo-hill"])
    bob = await operator(base, "demo-hill-bob", ["demo-hill"])
    pat = await patron(base, "hill")
    chat_id = (await pat.ok({"type": "chat.start", "question": "Deadlines?"}))["chat_id"]
    await ann.expect(about(chat_id, "queue.chat_added"))
    await ann.ok({"type": "chat.claim", "chat_id": chat_id})
    seq = await say(pat, ann, chat_id, "before")
    # Each round: an offer whose only end is its timeout, then one replica is killed at
    # once. Every replica keeps every open chat's deadline, so the survivor expires it,
    # whichever of the two took the offer.
    for replica in ("routing", "routing-1"):
        offer = {"type": "chat.transfer", "chat_id": chat_id, "to": {"operator": "demo-hill-bob"}}
        await ann.ok(offer)
        await bob.expect(about(chat_id, "transfer.offer"))
        pair.services[replica].kill()
        expired = await ann.expect(about(chat_id, "transfer.expired"), OFFER_TIMEOUT_S + 5)
        assert expired["reason"] == "timeout"
        seq_now = await say(pat, ann, chat_id, f"while {replica} is down")
        assert seq_now == seq + 1
        seq = seq_now
        said = await asyncio.to_thread(pair.recover, replica)
        assert any(f"{replica} restarted" in line for line in said)
    await ann.ok({"type": "chat.close", "chat_id": chat_id})
    token = await login(base, "demo-hill-ann")
    body = await transcript(pair, token, chat_id, seq)
    assert [m["seq"] for m in body["messages"]] == list(range(1, seq + 1))
    for client in (ann, bob, pat):
        await client.close()


def spans(folder: Path) -> list[dict[str, Any]]:
    """Every span written so far, each with the file (one per process) it came from."""
    found = []
    for path in folder.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            if line.strip():
                found.append({**json.loads(line), "process": path.stem})
    return found


async def test_one_patron_message_is_one_trace_across_the_services(pair: LocalSystem):
    """The patron on one gateway, the operator on the other: the message's trace has the
    frame (patron's gateway), the request (routing), the delivery (operator's gateway)
    and the transcript."""
    ann = await operator(pair.public_url("gateway-1"), "demo-hill-ann", ["demo-hill"])
    pat = await patron(pair.gateway_url, "hill")
    chat_id = (await pat.ok({"type": "chat.start", "question": "Trace me"}))["chat_id"]
    await ann.expect(about(chat_id, "queue.chat_added"))
    await ann.ok({"type": "chat.claim", "chat_id": chat_id})
    await say(pat, ann, chat_id, "traced message")
    await ann.ok({"type": "chat.close", "chat_id": chat_id})
    folder = pair.data / "spans"

    def service_of(span: dict[str, Any]) -> str:
        return str(span["resource"]["attributes"]["service.name"])

    wanted = {
        ("refdesk-gateway", "frame message"),
        ("refdesk-routing", "message"),
        ("refdesk-gateway", "deliver"),
        ("refdesk-transcripts", "transcribe"),
    }

    async def whole_trace() -> list[dict[str, Any]] | None:
        found = spans(folder)
        ours = (
            s
            for s in found
            if s["name"] == "frame message" and s["attributes"].get("refdesk.chat_id") == chat_id
        )
        for frame in ours:
            trace_id = frame["context"]["trace_id"]
            members = [s for s in found if s["context"]["trace_id"] == trace_id]
            if wanted <= {(service_of(s), s["name"]) for s in members}:
                return members
        return None

    members = await eventually(whole_trace, "one trace across gateway, routing and transcripts")
    [frame] = [s for s in members if s["name"] == "frame message"]
    delivered = {s["process"] for s in members if s["name"] == "deliver"}
    # The operator's gateway, another process than the patron's, delivered it.
    assert delivered - {frame["process"]}, (frame["process"], delivered)
    # Each span is a child of one in the same trace, but the frame, which began it.
    ids = {s["context"]["span_id"] for s in members}
    assert frame["parent_id"] is None
    assert all(s["parent_id"] in ids for s in members if s is not frame)
    await ann.close()
    await pat.close()
