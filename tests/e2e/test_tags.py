"""Tags over the real services: during the chat, after close, by the previous owner after a
transfer, and an institution's tag list and "every chat must be tagged" rule."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from deploy.local.system import LocalSystem
from tests.client import about, claimed_chat, clients, eventually, operator, signed_in


async def test_the_previous_owner_tags_after_a_transfer_and_after_close(system: LocalSystem):
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    bob = await operator(system.gateway_url, "demo-hill-bob", [])
    eve = await operator(system.gateway_url, "demo-hill-eve", [])
    pat, chat_id, _ = await claimed_chat(system, ann, "Need a citation for APA")
    async with clients(ann, bob, eve, pat):
        ack = await ann.ok({"type": "chat.tag", "chat_id": chat_id, "tags": ["  Citation  Help"]})
        assert ack["chat"]["tags"] == ["citation help"]
        await ann.ok(
            {"type": "chat.transfer", "chat_id": chat_id, "to": {"operator": "demo-hill-bob"}}
        )
        await bob.expect(about(chat_id, "transfer.offer"))
        await bob.ok({"type": "transfer.accept", "chat_id": chat_id})
        # Ann answered it before the transfer: she may still tag it, Eve never held it.
        ack = await ann.ok({"type": "chat.tag", "chat_id": chat_id, "tags": ["APA"]})
        assert ack["chat"]["tags"] == ["citation help", "apa"]
        refused = await eve.request({"type": "chat.tag", "chat_id": chat_id, "tags": ["x"]})
        assert refused["type"] == "error" and refused["code"] == "forbidden"
        await bob.ok({"type": "chat.close", "chat_id": chat_id})
        ack = await ann.ok(
            {"type": "chat.tag", "chat_id": chat_id, "tags": ["mla"], "remove": ["apa"]}
        )
        assert ack["chat"]["state"] == "closed"
        assert ack["chat"]["tags"] == ["citation help", "mla"]
        for bad in (["<b>"], ["x" * 41], [f"t{i}" for i in range(21)]):
            refused = await ann.request({"type": "chat.tag", "chat_id": chat_id, "tags": bad})
            assert refused["type"] == "error" and refused["code"] == "invalid", refused
            assert "tags" in refused["message"]
    async with await signed_in(system.gateway_url, "demo-hill-admin") as http:

        async def retagged() -> dict[str, Any] | None:
            found = await http.get(f"/api/transcripts/{chat_id}")
            chat: dict[str, Any] = found.json()["chat"] if found.status_code == 200 else {}
            return chat if chat.get("tags") == ["citation help", "mla"] else None

        # Tags set after close reach the transcript too.
        chat = await eventually(retagged, "the transcript has the tags set after close")
        assert chat["operators"] == ["demo-hill-ann", "demo-hill-bob"]


@asynccontextmanager
async def hill_rules(system: LocalSystem, **rules: Any) -> AsyncIterator[None]:
    """Hill's tag rules changed through the admin API for one test, then put back."""
    async with await signed_in(system.gateway_url, "demo-hill-admin") as http:
        before = (await http.get("/api/institutions/hill")).json()
        saved = await http.put("/api/institutions/hill", json={**before, **rules})
        assert saved.status_code == 200, saved.text
        try:
            yield
        finally:
            restored = await http.put("/api/institutions/hill", json=before)
            assert restored.status_code == 200, restored.text


async def test_a_library_that_requires_tags_from_its_list(system: LocalSystem):
    rules = {"tags": ["Reference", "directions"], "require_tag": True}
    async with hill_rules(system, **rules):
        ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
        pat, chat_id, _ = await claimed_chat(system, ann)
        async with clients(ann, pat):
            refused = await ann.request({"type": "chat.close", "chat_id": chat_id})
            assert refused["type"] == "error" and refused["code"] == "invalid"
            assert refused["message"].startswith("tags:")
            refused = await ann.request({"type": "chat.tag", "chat_id": chat_id, "tags": ["misc"]})
            assert refused["code"] == "invalid" and "'misc' is not in" in refused["message"]
            ack = await ann.ok({"type": "chat.close", "chat_id": chat_id, "tags": ["REFERENCE"]})
            assert ack["chat"]["state"] == "closed" and ack["chat"]["tags"] == ["reference"]
