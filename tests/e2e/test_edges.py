"""The gateway's edges under bad input: bodies past the limit are refused unread, and a
refusal never sends the input back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from deploy.local.system import LocalSystem
from tests.client import operator, patron
from tests.e2e.test_lifecycle import claimed_chat, clients

pytestmark = pytest.mark.e2e

LIMIT = 64 * 1024


async def test_a_body_past_64_kib_is_refused_unread(system: LocalSystem):
    async with httpx.AsyncClient(base_url=system.gateway_url) as http:
        declared = await http.post(
            "/api/auth/login",
            content=b"{" + b" " * (LIMIT + 10) + b"}",
            headers={"content-type": "application/json"},
        )
        assert declared.status_code == 413 and declared.json()["code"] == "too_large"

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(40):  # 320 KiB with no length said
                yield b" " * 8192

        chunked = await http.post(
            "/api/auth/login", content=chunks(), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413
        # Under the limit, a request is read as usual.
        fine = await http.post("/api/auth/login", json={"username": "demo-x-y", "password": "z"})
        assert fine.status_code == 401


async def test_a_refusal_names_the_field_without_sending_the_input_back(system: LocalSystem):
    marker = "do-not-echo-" + "x" * 300
    async with httpx.AsyncClient(base_url=system.gateway_url) as http:
        refused = await http.post(
            "/api/auth/login", json={"username": marker, "password": "also-" + marker}
        )
    assert refused.status_code == 422
    body = refused.json()
    assert body["code"] == "invalid" and set(body["fields"]) == {"username", "password"}
    assert "do-not-echo" not in refused.text


async def test_a_patron_sees_the_chat_and_who_answers_never_staff_fields(system: LocalSystem):
    base = system.gateway_url
    ann = await operator(base, "demo-hill-ann", ["demo-hill"])
    pat, chat_id, token = await claimed_chat(system, ann)
    async with clients(ann, pat):
        await ann.ok({"type": "chat.tag", "chat_id": chat_id, "tags": ["abusive patron"]})
        await ann.ok({"type": "message", "chat_id": chat_id, "body": "How can I help?"})
        live = await pat.expect("message")
        assert live["from"]["name"] == "Ann" and live["from"].get("id") is None
        pat.crash()
        back = await patron(base, "hill", token)
        async with clients(back):
            resumed = await back.expect("chat.resumed")
            assert resumed["chat"]["operator"] == "Ann"
            assert {"owner", "tags", "patron", "institution"}.isdisjoint(resumed["chat"])
            staff = [m for m in resumed["messages"] if m["from"]["kind"] == "operator"]
            assert staff and all(m["from"].get("id") is None for m in staff)
            seen = json.dumps(pat.frames + back.frames)
            assert "demo-hill-ann" not in seen and "abusive" not in seen
            await ann.ok({"type": "chat.close", "chat_id": chat_id})
