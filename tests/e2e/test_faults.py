"""Processes killed with SIGKILL while a patron and an operator talk: routing at each step of
a write, transcripts, and one of two gateways. Afterwards every acknowledged message has
been delivered once, in order, and is in the transcript with a gapless `seq`; no chat is
left half-changed. Supervision restarts what was killed, as `make run` does."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.local.system import LocalSystem
from tests.client import ProtocolClient, login, operator, patron, transcript
from tests.conftest import start_system
from tests.servers import Servers

MARKER = "fault-pause"
FRAME_WAIT_S = 1.0
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def faulty(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    """A system of its own (nats-server included, so that killing its services disturbs no
    other test), with a second gateway."""
    system = start_system(
        servers,
        Path(tmp_path_factory.mktemp("faults")),
        db="refdesk_faults",
        env={"REFDESK_MAX_FRAME_WAIT_S": str(FRAME_WAIT_S)},
        own_nats=True,
    )
    try:
        system.start_service("gateway", 1)
        system.wait_ready("gateway-1")
        yield system
    finally:
        system.stop()


async def kill_and_recover(system: LocalSystem, key: str, env: dict[str, str] | None = None):
    """SIGKILL a service; supervision brings it back (with `env` changed, if given)."""
    system.services[key].kill()
    if env is not None:
        system.extra_env.update(env)
        for name, value in env.items():
            if not value:
                system.extra_env.pop(name)
    said = await asyncio.to_thread(system.recover, key)
    assert any(f"{key} exited" in line for line in said), said
    assert any(f"{key} restarted" in line for line in said), said


def with_fault_hook(system: LocalSystem, marker: str | None) -> dict[str, str]:
    """Routing's next start goes through the fault tests' entry point, holding writes
    marked `marker`; None: through its own again. Returns the environment to set."""
    if marker is None:
        system.entry_points.pop("routing", None)
        return {"FAULT_PAUSE_MARKER": ""}
    system.entry_points["routing"] = "tests.fault_routing"
    return {"FAULT_PAUSE_MARKER": marker}


class Talk:
    """A chat in which every message is sent with a client id and resent with the same id
    until it is acknowledged, as the web client and the widget do."""

    def __init__(self, pat: ProtocolClient, ann: ProtocolClient, chat_id: str) -> None:
        self.pat, self.ann, self.chat_id = pat, ann, chat_id
        self.acked: list[tuple[str, int]] = []  # (body, seq) in acknowledgement order

    async def send(self, by: ProtocolClient, body: str, client_id: str | None = None) -> Any:
        frame = {
            "type": "message",
            "chat_id": self.chat_id,
            "body": body,
            "client_id": client_id or f"c{next(_ids)}",
        }
        return await by.request(frame, timeout=8)

    async def exchange(self, by: ProtocolClient, to: ProtocolClient, body: str) -> None:
        reply = await self.send(by, body)
        assert reply["type"] == "ack", reply
        self.acked.append((body, reply["seq"]))
        heard = await to.expect(lambda f: f["type"] == "message" and f["body"] == body)
        assert heard["seq"] == reply["seq"]


async def open_talk(system: LocalSystem, patron_url: str, operator_url: str) -> Talk:
    ann = await operator(operator_url, "demo-hill-ann", ["demo-hill"])
    pat = await patron(patron_url, "hill")
    ack = await pat.ok({"type": "chat.start", "question": "Fault tolerance?", "name": "Pat"})
    chat_id = ack["chat_id"]
    await ann.expect(lambda f: f["type"] == "queue.chat_added" and f["chat"]["id"] == chat_id)
    await ann.ok({"type": "chat.claim", "chat_id": chat_id})
    await pat.expect("chat.claimed")
    return Talk(pat, ann, chat_id)


def messages_of(client: ProtocolClient, chat_id: str) -> list[tuple[str, int]]:
    return [
        (f["body"], f["seq"])
        for f in client.frames
        if f["type"] == "message" and f.get("chat_id") == chat_id
    ]


async def finish(system: LocalSystem, talk: Talk, expected: int) -> dict[str, Any]:
    """Close the chat; the transcript holds every message once, `seq` 1..n."""
    await talk.ann.ok({"type": "chat.close", "chat_id": talk.chat_id})
    token = await login(system.gateway_url, "demo-hill-ann")
    body = await transcript(system, token, talk.chat_id, expected)
    seqs = [m["seq"] for m in body["messages"]]
    assert seqs == list(range(1, expected + 1))
    bodies = [m["body"] for m in body["messages"]]
    assert len(set(bodies)) == len(bodies)
    await talk.pat.close()
    await talk.ann.close()
    return body


@pytest.mark.parametrize("step", ["before", "after"])
async def test_routing_killed_at_either_side_of_its_write_loses_and_doubles_nothing(
    faulty: LocalSystem, step: str
):
    # Routing runs with the fault hook, so that it can be caught at that step of a write.
    await kill_and_recover(faulty, "routing", with_fault_hook(faulty, MARKER))
    talk = await open_talk(faulty, faulty.gateway_url, faulty.gateway_url)
    await talk.exchange(talk.pat, talk.ann, "first")
    await talk.exchange(talk.ann, talk.pat, "second")

    body, client_id = f"{MARKER}:{step} is the library open?", "held-message"
    refused = await talk.send(talk.pat, body, client_id)
    assert refused["type"] == "error" and refused["code"] == "unavailable", refused
    if step == "after":
        # The record is in the stream: the operator hears it although no ack came.
        heard = await talk.ann.expect(lambda f: f["type"] == "message" and f["body"] == body)
        assert heard["seq"] == 4
    # SIGKILL the paused replica; it comes back without the hook.
    await kill_and_recover(faulty, "routing", with_fault_hook(faulty, None))

    resent = await talk.send(talk.pat, body, client_id)
    assert resent["type"] == "ack" and resent["seq"] == 4
    assert resent.get("repeated", False) == (step == "after")
    if step == "before":
        await talk.ann.expect(lambda f: f["type"] == "message" and f["body"] == body)
    await talk.exchange(talk.ann, talk.pat, "yes, until nine")
    done = await finish(faulty, talk, expected=5)
    assert [m["body"] for m in done["messages"]][3] == body
    # The operator heard each patron message once, in order.
    assert messages_of(talk.ann, talk.chat_id) == [
        ("first", 2),
        (body, 4),
    ]


async def test_transcripts_killed_mid_chat_misses_nothing(faulty: LocalSystem):
    talk = await open_talk(faulty, faulty.gateway_url, faulty.gateway_url)
    for i in range(3):
        await talk.exchange(talk.pat, talk.ann, f"before {i}")
    faulty.services["transcripts"].kill()
    for i in range(3):  # delivery does not wait on transcripts, nor on MongoDB
        await talk.exchange(talk.ann, talk.pat, f"while down {i}")
    said = await asyncio.to_thread(faulty.recover, "transcripts")
    assert any("transcripts restarted" in line for line in said)
    await talk.exchange(talk.pat, talk.ann, "after")
    await finish(faulty, talk, expected=8)


async def test_a_gateway_killed_mid_chat_its_patron_resumes_on_the_other(faulty: LocalSystem):
    other = faulty.public_url("gateway-1")
    talk = await open_talk(faulty, faulty.gateway_url, other)
    welcome = next(f for f in talk.pat.frames if f["type"] == "welcome")
    await talk.exchange(talk.pat, talk.ann, "one")
    await talk.exchange(talk.ann, talk.pat, "two")
    faulty.services["gateway"].kill()
    # While the patron's gateway is down the operator goes on writing.
    reply = await talk.send(talk.ann, "three, while you were away")
    assert reply["type"] == "ack" and reply["seq"] == 4
    # The patron's widget reconnects to the other gateway with its guest token.
    talk.pat = await patron(other, "hill", welcome["token"])
    resumed = await talk.pat.expect("chat.resumed")
    assert [m["body"] for m in resumed["messages"]] == [
        "Fault tolerance?",
        "one",
        "two",
        "three, while you were away",
    ]
    await talk.exchange(talk.pat, talk.ann, "four")
    await talk.exchange(talk.ann, talk.pat, "five")
    said = await asyncio.to_thread(faulty.recover, "gateway")
    assert any("gateway restarted" in line for line in said)
    await finish(faulty, talk, expected=6)


async def test_frames_stuck_behind_a_held_one_are_refused_busy_not_queued(faulty: LocalSystem):
    await kill_and_recover(faulty, "routing", with_fault_hook(faulty, MARKER))
    talk = await open_talk(faulty, faulty.gateway_url, faulty.gateway_url)
    held = f"{MARKER}:before stuck"
    frames = [
        {"type": "message", "chat_id": talk.chat_id, "body": held, "ref": "held"},
        *({"type": "typing", "chat_id": talk.chat_id, "ref": f"t{i}"} for i in range(3)),
    ]
    for frame in frames:  # sent at once, as a client that does not wait would
        await talk.pat.send_raw(json.dumps(frame))
    answer = await talk.pat.expect(lambda f: f.get("ref") == "held", timeout=8)
    assert answer["code"] == "unavailable"  # routing held it past the request timeout
    for i in range(3):
        # Each waited behind it longer than FRAME_WAIT_S: refused at once, unhandled.
        refused = await talk.pat.expect(lambda f, i=i: f.get("ref") == f"t{i}")
        assert refused["code"] == "busy" and refused["retry_after_ms"] > 0
    await kill_and_recover(faulty, "routing", with_fault_hook(faulty, None))
    # The socket is open and the chat goes on.
    await talk.exchange(talk.pat, talk.ann, "still there?")
    await finish(faulty, talk, expected=2)
