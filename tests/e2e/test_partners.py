"""Partner coverage and transfers across libraries, on the session's system: Hill and River
cover for each other once the consortium admin says so. A partner's operator answers a Hill
patron, both libraries read the transcript, and a transfer to the other library needs an
explicit `cross_institution`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from deploy.local.system import LocalSystem
from tests.client import (
    about,
    claimed_chat,
    clients,
    config_everywhere,
    eventually,
    operator,
    patron,
    signed_in,
)


def replicas(system: LocalSystem) -> list[str]:
    """Gateway first (it took the change), then every routing replica running."""
    routing = [k for k, (name, _) in system._started_as.items() if name == "routing"]
    return [
        system.ops_url("gateway"),
        *(system.ops_url(k) for k in routing if k in system.services),
    ]


@pytest_asyncio.fixture
async def hill_and_river(system: LocalSystem) -> AsyncIterator[str]:
    name = f"demo-westside{uuid.uuid4().hex[:6]}"
    async with await signed_in(system.gateway_url, "demo-admin") as coordinator:
        body = {
            "name": name,
            "institution": "demo",
            "display_name": "Westside libraries",
            "institutions": ["hill", "river"],
        }
        made = await coordinator.post("/api/partnerships", json=body)
        assert made.status_code == 201, made.text
        await config_everywhere(replicas(system))
        try:
            yield name
        finally:
            assert (await coordinator.delete(f"/api/partnerships/{name}")).status_code == 204
            await config_everywhere(replicas(system))


async def test_only_a_consortium_admin_sets_up_partners(system: LocalSystem):
    body = {
        "name": "demo-squat",
        "institution": "demo",
        "display_name": "Squat",
        "institutions": ["hill", "river"],
    }
    async with await signed_in(system.gateway_url, "demo-hill-admin") as admin:
        assert (await admin.post("/api/partnerships", json=body)).status_code == 403
    async with await signed_in(system.gateway_url, "demo-admin") as coordinator:
        nowhere = {**body, "institutions": ["hill", "lake"]}
        refused = await coordinator.post("/api/partnerships", json=nowhere)
        assert refused.status_code == 422 and "institutions" in refused.text
        assert (await coordinator.get("/api/partnerships/demo-squat")).status_code == 404


async def test_a_transfer_to_another_library_needs_a_partnership_and_the_flag(
    system: LocalSystem,
):
    base = system.gateway_url
    ann = await operator(base, "demo-hill-ann", ["demo-hill"])
    cat = await operator(base, "demo-river-cat", [])
    async with clients(ann, cat):
        pat, chat_id, _ = await claimed_chat(system, ann)
        async with clients(pat):
            to_cat = {
                "type": "chat.transfer",
                "chat_id": chat_id,
                "to": {"operator": "demo-river-cat"},
            }
            # Not partners: River's operator is not there for Hill's, flag or not.
            for frame in (to_cat, {**to_cat, "cross_institution": True}):
                refused = await ann.request(frame)
                assert (refused["type"], refused["code"]) == ("error", "not_found"), refused
            await ann.ok({"type": "chat.close", "chat_id": chat_id})


async def test_a_partner_answers_and_both_libraries_read_it_and_transfers_need_the_flag(
    system: LocalSystem, hill_and_river: str
):
    base = system.gateway_url
    # Cat, at River, covers Hill's queue under the partnership.
    cat = await operator(base, "demo-river-cat", ["demo-hill"])
    ann = await operator(base, "demo-hill-ann", ["demo-hill"], status="away")
    pat = await patron(base, "hill")
    async with clients(cat, ann, pat):
        chat_id = (await pat.ok({"type": "chat.start", "question": "Do you lend laptops?"}))[
            "chat_id"
        ]
        await cat.expect(about(chat_id, "queue.chat_added"))
        claimed = await cat.ok({"type": "chat.claim", "chat_id": chat_id})
        assert claimed["chat"]["answered_institution"] == "river"
        assert (await pat.expect("chat.claimed"))["operator"] == "Cat"
        await cat.ok({"type": "message", "chat_id": chat_id, "body": "Yes, for a week."})
        assert (await pat.expect("message"))["body"] == "Yes, for a week."

        # Handing it back to Hill is outside Cat's library: only when she says so.
        await ann.ok({"type": "status.set", "status": "online"})
        to_ann = {"type": "chat.transfer", "chat_id": chat_id, "to": {"operator": "demo-hill-ann"}}
        unsaid = await cat.request(to_ann)
        assert (unsaid["type"], unsaid["code"]) == ("error", "forbidden"), unsaid
        assert "cross_institution" in unsaid["message"]
        await cat.ok({**to_ann, "cross_institution": True})
        offer = await ann.expect(about(chat_id, "transfer.offer"))
        assert offer["from"] == "Cat"
        await ann.ok({"type": "transfer.accept", "chat_id": chat_id})
        await ann.ok({"type": "message", "chat_id": chat_id, "body": "Ann here, at Hill."})
        await ann.ok({"type": "chat.close", "chat_id": chat_id})

    async def transcript(username: str) -> httpx.Response:
        async with await signed_in(base, username) as http:
            return await http.get(f"/api/transcripts/{chat_id}")

    for reader in ("demo-hill-admin", "demo-river-cat"):

        async def recorded(reader: str = reader) -> list[str] | None:
            read = await transcript(reader)
            assert read.status_code == 200, (reader, read.text)
            bodies = [m["body"] for m in read.json()["messages"]]
            return bodies if read.json()["chat"]["state"] == "closed" else None

        bodies = await eventually(recorded, f"the closed chat's transcript for {reader}")
        assert bodies[-2:] == ["Yes, for a week.", "Ann here, at Hill."]
