"""A malformed record on a chat's subject of the chat stream, published with routing's own
credentials, through the real services: routing sets it aside on the dead-letter subject
once (counted in its metrics), the chat goes on from its last readable record, and a ticket
can still be made from the chat (it used to be a 500)."""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from nats.aio.msg import Msg

from deploy.local import nats_auth
from deploy.local.system import LocalSystem
from shared import subjects
from shared.bus import Bus, flushed
from shared.schemas.requests import DeadLetter
from tests.client import about, clients, eventually, operator, patron, signed_in
from tests.servers import Servers

MALFORMED = b'{"v": 1, "state": {"chat": "not one"}, "events": "none"}'


def dead_letters_counted(system: LocalSystem) -> float:
    """Routing's count of the chat records it set aside, from its /metrics."""
    with urllib.request.urlopen(f"{system.ops_url('routing')}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("refdesk_routing_dead_letters_total "):
                return float(line.split()[-1])
    return 0.0


@asynccontextmanager
async def dead_letters(bus: Bus, subject: str) -> AsyncIterator[list[DeadLetter]]:
    """Routing's dead letters about one chat subject, as they are published."""
    heard: list[DeadLetter] = []

    async def take(msg: Msg) -> None:
        letter = DeadLetter.model_validate_json(msg.data)
        if letter.subject == subject:
            heard.append(letter)

    sub = await bus.nc.subscribe(subjects.dead_letters("routing"), cb=take)
    await flushed(bus.nc)
    try:
        yield heard
    finally:
        await sub.unsubscribe()


async def test_a_malformed_record_is_set_aside_once_and_the_chat_and_its_ticket_go_on(
    system: LocalSystem, servers: Servers, bus: Bus
):
    email = f"pat-{uuid.uuid4().hex[:6]}@example.org"
    question = "Is the 1923 atlas digitised?"
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    pat = await patron(system.gateway_url, "hill")
    async with clients(ann, pat), await signed_in(system.gateway_url, "demo-hill-ann") as http:
        chat_id = (await pat.ok({"type": "chat.start", "question": question, "email": email}))[
            "chat_id"
        ]
        await ann.expect(about(chat_id, "queue.chat_added"))
        await ann.ok({"type": "chat.claim", "chat_id": chat_id})
        await ann.ok({"type": "message", "chat_id": chat_id, "body": "Looking now."})
        assert (await pat.expect("message"))["body"] == "Looking now."

        subject = subjects.chat_events("hill", chat_id)
        counted = dead_letters_counted(system)
        async with dead_letters(bus, subject) as letters:
            forger = await Bus.connect(
                nats_auth.url_for(servers.nats_url, "routing", servers.nats_users["routing"]),
                "forger",
            )
            try:
                forged = (await forger.js.publish(subject, MALFORMED)).seq
            finally:
                await forger.close()

            async def set_aside() -> list[DeadLetter] | None:
                return letters or None

            await eventually(set_aside, f"routing's dead letter of {subject} #{forged}")
            assert [letter.stream_seq for letter in letters] == [forged]

            # A ticket from the chat, with its messages (the malformed record passed over).
            made = await http.post("/api/tickets", json={"chat_id": chat_id})
            assert made.status_code == 201, made.text
            ticket = made.json()
            assert (ticket["source"], ticket["email"]) == ("chat", email)
            assert ticket["subject"] == question
            assert [line["body"] for line in ticket["transcript"]] == [question, "Looking now."]

            # The chat goes on from its last readable record: Ann writes, the patron hears.
            reply = await ann.ok({"type": "message", "chat_id": chat_id, "body": "Found it."})
            heard = await pat.expect("message")
            assert heard["body"] == "Found it." and heard["seq"] == reply["seq"]
            found = await bus.last_chat_record(chat_id)
            assert found is not None and found[1] > forged
            assert found[0].state.chat.state == "active"
            await ann.ok({"type": "chat.close", "chat_id": chat_id, "tags": ["atlas"]})
        # Read and written past, the record was set aside once.
        assert [letter.stream_seq for letter in letters] == [forged]
        assert dead_letters_counted(system) == counted + 1
