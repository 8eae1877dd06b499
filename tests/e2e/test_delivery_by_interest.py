"""Two gateways: each receives only the chats and queues its own sockets watch, and a patron
on one and an operator on the other still hear each other."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest

from deploy.local.system import LocalSystem
from tests.client import ProtocolClient, operator, patron


@pytest.fixture(scope="module")
def second_gateway(system: LocalSystem) -> Iterator[str]:
    """Another gateway replica beside the session system's, on its own port."""
    system.start_service("gateway", 1)
    try:
        system.wait_ready("gateway-1")
        yield system.public_url("gateway-1")
    finally:
        system.services.pop("gateway-1").stop()


def delivery(ops_url: str) -> tuple[float, float]:
    """A gateway's chats followed now, and chat records it has received in all."""
    with urllib.request.urlopen(f"{ops_url}/metrics", timeout=5) as response:
        lines = response.read().decode().splitlines()
    followed = sum(
        float(line.split()[-1]) for line in lines if line.startswith("refdesk_gateway_followed_")
    )
    records = sum(
        float(line.split()[-1])
        for line in lines
        if line.startswith("refdesk_gateway_chat_records_total{")
    )
    return followed, records


async def converse(pat: ProtocolClient, ann: ProtocolClient, rounds: int) -> str:
    ack = await pat.ok({"type": "chat.start", "question": "Interlibrary loan?", "name": "Pat"})
    chat_id: str = ack["chat_id"]
    await ann.expect(lambda f: f["type"] == "queue.chat_added" and f["chat"]["id"] == chat_id)
    await ann.ok({"type": "chat.claim", "chat_id": chat_id})
    assert (await pat.expect("chat.claimed"))["operator"] == "Ann"
    for i in range(rounds):
        await pat.ok({"type": "message", "chat_id": chat_id, "body": f"question {i}"})
        heard = await ann.expect("message")
        assert heard["body"] == f"question {i}" and heard["chat_id"] == chat_id
        await ann.ok({"type": "message", "chat_id": chat_id, "body": f"answer {i}"})
        assert (await pat.expect("message"))["body"] == f"answer {i}"
    await ann.ok({"type": "chat.close", "chat_id": chat_id})
    await pat.expect("chat.closed")
    return chat_id


async def test_a_gateway_without_sockets_on_a_chat_receives_none_of_it(
    system: LocalSystem, second_gateway: str
):
    idle_before = delivery(system.ops_url("gateway-1"))
    busy_before = delivery(system.ops_url("gateway"))
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    pat = await patron(system.gateway_url, "hill")
    try:
        await converse(pat, ann, rounds=5)
    finally:
        await pat.close()
        await ann.close()
    assert delivery(system.ops_url("gateway-1")) == idle_before  # not one record, nothing followed
    followed, records = delivery(system.ops_url("gateway"))
    # The chat's records (start, claim, ten messages, close) reached the busy gateway.
    assert records - busy_before[1] >= 13
    assert followed == busy_before[0]  # and it stopped following the chat once it ended


async def test_a_patron_and_an_operator_on_different_gateways_hear_each_other(
    system: LocalSystem, second_gateway: str
):
    ann = await operator(second_gateway, "demo-hill-ann", ["demo-hill"])
    pat = await patron(system.gateway_url, "hill")
    try:
        await converse(pat, ann, rounds=3)
    finally:
        await pat.close()
        await ann.close()
