"""Erasing a patron on request through the real services: a chat with an email, its
ticket and the guest's sighting are gone from MongoDB and the chat stream; another
library's scope erases nothing and learns nothing; only its admins may ask."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from deploy.local.system import LocalSystem
from shared import store
from shared.bus import Bus
from tests.client import about, clients, eventually, operator, patron, signed_in
from tests.conftest import E2E_DB

NOTHING = {
    "chats": 0,
    "messages": 0,
    "events": 0,
    "stream_records": 0,
    "tickets": 0,
    "guests": 0,
    "active_skipped": 0,
}


async def counts(system: LocalSystem, chat_id: str, guest_id: str, email: str) -> dict[str, int]:
    """What MongoDB holds of the patron, looked at directly."""
    client = store.connect(system.mongodb_uri or "", "tests")
    try:
        db = store.database(client, E2E_DB)
        return {
            "chats": await db.chats.count_documents({"_id": chat_id}),
            "messages": await db.messages.count_documents({"chat_id": chat_id}),
            "events": await db.chat_events.count_documents({"chat_id": chat_id}),
            "tickets": await db.tickets.count_documents({"email": email}),
            "guests": await db.guests.count_documents({"guest_id": guest_id}),
        }
    finally:
        await client.close()


async def test_an_admin_erases_a_patron_everywhere(system: LocalSystem, bus: Bus):
    email = f"pat-{uuid.uuid4().hex[:8]}@example.org"
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    pat = await patron(system.gateway_url, "hill")
    guest_id = next(f for f in pat.frames if f["type"] == "welcome")["guest_id"]
    async with clients(ann, pat):
        started = await pat.ok(
            {"type": "chat.start", "question": "My fines?", "name": "Pat", "email": email}
        )
        chat_id: str = started["chat_id"]
        await ann.expect(about(chat_id, "queue.chat_added"))
        await ann.ok({"type": "chat.claim", "chat_id": chat_id})
        await ann.ok({"type": "message", "chat_id": chat_id, "body": "Let me look."})
        await ann.ok({"type": "chat.close", "chat_id": chat_id, "tags": ["fines"]})
    async with await signed_in(system.gateway_url, "demo-hill-ann") as http:
        made = await http.post(
            "/api/tickets",
            json={"chat_id": chat_id, "email": email, "subject": "Fines", "body": "Follow up"},
        )
        assert made.status_code == 201, made.text
        ticket_id = made.json()["id"]

        async def recorded() -> bool | None:
            held = await counts(system, chat_id, guest_id, email)
            return True if held["chats"] and held["messages"] == 2 else None

        await eventually(recorded, "the transcript written")
        # Operators do not erase; nor does a request that names nobody, or a bad address.
        assert (await http.post("/api/erasures", json={"email": email})).status_code == 403
    assert await bus.last_chat_record(chat_id, "hill") is not None
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()

    async with await signed_in(system.gateway_url, "demo-admin") as coordinator:
        # Erasing in River's name touches nothing of Hill's, and says nothing of it.
        body = {"email": email, "guest_id": guest_id, "institution": "river"}
        nothing = await coordinator.post("/api/erasures", json=body)
        assert nothing.status_code == 200 and nothing.json() == NOTHING
    assert (await counts(system, chat_id, guest_id, email))["chats"] == 1

    async with await signed_in(system.gateway_url, "demo-hill-admin") as hill:
        for elsewhere in ("river", "demo"):  # another library, or the whole consortium
            body = {"email": email, "institution": elsewhere}
            assert (await hill.post("/api/erasures", json=body)).status_code == 403
        for body, name in (
            ({}, "guest_id or email"),
            ({"email": "not an address"}, "email"),
            ({"guest_id": "a.b"}, "guest_id"),
            ({"email": email, "extra": 1}, "extra"),
        ):
            bad = await hill.post("/api/erasures", json=body)
            assert bad.status_code == 422 and name in bad.text, (body, bad.text)
        erased = await hill.post("/api/erasures", json={"email": email.upper()})
        assert erased.status_code == 200, erased.text
        report: dict[str, Any] = erased.json()
        assert report["chats"] == 1 and report["messages"] == 2 and report["tickets"] == 1
        assert report["guests"] == 1 and report["events"] >= 2 and report["stream_records"] >= 4
        assert await counts(system, chat_id, guest_id, email) == {
            "chats": 0,
            "messages": 0,
            "events": 0,
            "tickets": 0,
            "guests": 0,
        }
        assert await bus.last_chat_record(chat_id, "hill") is None
        assert (await hill.get(f"/api/transcripts/{chat_id}")).status_code == 404
        assert (await hill.get(f"/api/tickets/{ticket_id}")).status_code == 404
        again = await hill.post("/api/erasures", json={"email": email})
        assert again.json() == NOTHING
        log = (await hill.get("/api/audit", params={"since": since})).json()["entries"]
        mine = [e for e in log if e["action"] == "erase_patron" and e["who"] == "demo-hill-admin"]
        assert [e["detail"] for e in mine] == [
            "chats erased at a patron's request: 0",
            "chats erased at a patron's request: 1",
        ]
        assert email not in str(log)
