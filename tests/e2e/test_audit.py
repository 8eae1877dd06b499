"""The audit rule through every route that serves a library's patron content: a read from
outside the library (here the consortium admin's) is in the library's audit log before
the reader has it, whichever route it came through; the library's own reads never are."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from deploy.local.system import LocalSystem
from tests.client import about, clients, eventually, operator, patron, signed_in

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class HillPatron:
    """A Hill patron's answered chat, their missed one, and a ticket from the first."""

    guest_id: str
    chat_id: str
    missed_id: str
    ticket_id: str
    word: str  # in the ticket's subject only: what a search for it finds
    since: str


@pytest_asyncio.fixture(scope="module")
async def hill(system: LocalSystem) -> HillPatron:
    base = system.gateway_url
    since = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    word = f"atlas{uuid.uuid4().hex[:8]}"
    ann = await operator(base, "demo-hill-ann", ["demo-hill"])
    pat = await patron(base, "hill")
    guest_id = next(f for f in pat.frames if f["type"] == "welcome")["guest_id"]
    async with clients(ann, pat):
        email = f"pat-{uuid.uuid4().hex[:8]}@example.org"
        start = {"type": "chat.start", "question": "Old maps?", "name": "Pat", "email": email}
        chat_id = (await pat.ok(start))["chat_id"]
        await ann.expect(about(chat_id, "queue.chat_added"))
        await ann.ok({"type": "chat.claim", "chat_id": chat_id})
        await ann.ok({"type": "message", "chat_id": chat_id, "body": "In the map room."})
        await ann.ok({"type": "chat.close", "chat_id": chat_id})
        await pat.expect("chat.closed")
        missed_id = (await pat.ok({"type": "chat.start", "question": "Still there?"}))["chat_id"]
        await ann.expect(about(missed_id, "queue.chat_added"))
        await pat.ok({"type": "chat.end", "chat_id": missed_id})
    async with await signed_in(base, "demo-hill-admin") as own:
        made = await own.post(
            "/api/tickets", json={"chat_id": chat_id, "subject": f"Maps {word}", "body": "Later"}
        )
        assert made.status_code == 201, made.text

        async def both_recorded() -> bool | None:
            answered = await own.get(f"/api/transcripts/{chat_id}")
            missed = await own.get("/api/chats/missed", params={"since": since})
            listed = [c["id"] for c in missed.json()["chats"]] if missed.status_code == 200 else []
            done = answered.status_code == 200 and len(answered.json()["messages"]) == 2
            return True if done and missed_id in listed else None

        await eventually(both_recorded, "both chats in Hill's transcripts")
    return HillPatron(guest_id, chat_id, missed_id, made.json()["id"], word, since)


async def audit_log(base: str, since: str) -> list[dict[str, Any]]:
    async with await signed_in(base, "demo-hill-admin") as own:
        answer = await own.get("/api/audit", params={"since": since, "limit": 1000})
        assert answer.status_code == 200, answer.text
        entries: list[dict[str, Any]] = answer.json()["entries"]
        return entries


# Each route that serves a library's patron content, as the consortium admin reads Hill's
# through it: (method, path, query, body) and the entry it must leave in Hill's log,
# (action, which record, detail).
ROUTES = {
    "transcript": (
        ("GET", "/api/transcripts/{chat}", {"institution": "hill"}, None),
        ("read_transcript", "chat", None),
    ),
    "guest_chats": (
        ("GET", "/api/guests/{guest}/chats", {"since": "{since}"}, None),
        ("read_chat", "chat", "a patron's chats"),
    ),
    "search": (
        ("GET", "/api/transcripts", {"institution": "hill", "from": "{since}"}, None),
        ("read_chat", "chat", "transcript search"),
    ),
    "missed": (
        ("GET", "/api/chats/missed", {"institution": "hill", "since": "{since}"}, None),
        ("read_chat", "missed", "missed chats"),
    ),
    "ticket": (
        ("GET", "/api/tickets/{ticket}", {"institution": "hill"}, None),
        ("read_ticket", "ticket", None),
    ),
    "tickets": (
        ("GET", "/api/tickets", {"institution": "hill", "q": "{word}"}, None),
        ("read_ticket", "ticket", "ticket list"),
    ),
    "ticket_change": (
        ("PATCH", "/api/tickets/{ticket}", {"institution": "hill"}, {"status": "pending"}),
        ("read_ticket", "ticket", "ticket changed"),
    ),
    "ticket_note": (
        (
            "POST",
            "/api/tickets/{ticket}/replies",
            {"institution": "hill"},
            {"body": "Coordinator's note.", "internal": True},
        ),
        ("read_ticket", "ticket", "ticket answered"),
    ),
}


def filled(text: str, hill: HillPatron) -> str:
    return text.format(
        chat=hill.chat_id,
        guest=hill.guest_id,
        ticket=hill.ticket_id,
        since=hill.since,
        word=hill.word,
    )


async def read(base: str, who: str, route: str, hill: HillPatron, own: bool = False) -> None:
    (method, path, query, body), _ = ROUTES[route]
    params = {k: filled(v, hill) for k, v in query.items() if not (own and k == "institution")}
    async with await signed_in(base, who) as http:
        answer = await http.request(method, filled(path, hill), params=params, json=body)
        assert answer.status_code in (200, 201), answer.text
        served = (hill.chat_id, hill.missed_id, hill.ticket_id)
        assert any(record in answer.text for record in served), answer.text


@pytest.mark.parametrize("route", ROUTES)
async def test_a_read_from_outside_the_library_is_in_its_audit_log(
    system: LocalSystem, hill: HillPatron, route: str
):
    base = system.gateway_url
    before = datetime.now(UTC).isoformat()
    await read(base, "demo-admin", route, hill)
    # Written before the reader had the content: no waiting.
    entries = [e for e in await audit_log(base, before) if e["who"] == "demo-admin"]
    action, record, detail = ROUTES[route][1]
    wanted = {"chat": hill.chat_id, "missed": hill.missed_id, "ticket": hill.ticket_id}[record]
    key = "ticket_id" if record == "ticket" else "chat_id"
    found = [(e["action"], e["detail"]) for e in entries if e[key] == wanted]
    assert (action, detail) in found, entries


async def test_the_library_s_own_reads_are_not_audited(system: LocalSystem, hill: HillPatron):
    base = system.gateway_url
    before = datetime.now(UTC).isoformat()
    for route in ROUTES:
        await read(base, "demo-hill-admin", route, hill, own=True)
    # Only the library's own reader's entries: the coordinator's reads of the tests before
    # may still be landing in the same window.
    own = [e for e in await audit_log(base, before) if e["who"] == "demo-hill-admin"]
    assert own == []
