"""Operator sessions from the outside: an admin ends one, an operator signs out (the token
stops working), a second sign-in may ask before ending the first, and the desk (status and
monitored queues) is kept from one sign-in to the next."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt

from deploy.local.system import LocalSystem
from tests.client import ProtocolClient, login, operator, signed_in


async def socket_of(base: str, token: str, **auth: str) -> tuple[ProtocolClient, dict]:
    client = await ProtocolClient.connect(base.replace("http", "ws") + "/ws/operator")
    return client, await client.request({"type": "auth", "token": token, **auth})


async def test_admins_end_sessions_in_their_scope(system: LocalSystem):
    base = system.gateway_url
    bob = await operator(base, "demo-hill-bob", [])
    cat = await operator(base, "demo-river-cat", [])
    try:
        async with await signed_in(base, "demo-hill-ann") as colleague:
            assert (await colleague.delete("/api/sessions/demo-hill-bob")).status_code == 403
        async with await signed_in(base, "demo-hill-admin") as admin:
            # River's operator does not exist for Hill's admin, signed in or not.
            assert (await admin.delete("/api/sessions/demo-river-cat")).status_code == 404
            assert (await admin.delete("/api/sessions/demo-hill-bob")).status_code == 204
            ended = await bob.expect("session.ended")
            assert ended["reason"] == "ended_by_admin"
            again = await admin.delete("/api/sessions/demo-hill-bob")
            assert again.status_code == 404 and "not signed in" in again.text
        async with await signed_in(base, "demo-admin") as coordinator:
            assert (await coordinator.delete("/api/sessions/demo-river-cat")).status_code == 204
            assert (await cat.expect("session.ended"))["reason"] == "ended_by_admin"
    finally:
        await bob.close()
        await cat.close()


async def test_signing_out_ends_the_session_and_the_token(system: LocalSystem):
    base = system.gateway_url
    token = await login(base, "demo-hill-eve")
    eve, ack = await socket_of(base, token)
    try:
        assert ack["type"] == "ack", ack
        bearer = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, headers=bearer) as http:
            assert (await http.post("/api/auth/logout")).status_code == 204
            assert (await eve.expect("session.ended"))["reason"] == "signed_out"
            refused = await http.get("/api/me")
            assert refused.status_code == 401 and "signed out" in refused.text
        again, refused_auth = await socket_of(base, token)
        await again.close()
        assert refused_auth["type"] == "error" and refused_auth["code"] == "unauthorized"
        await login(base, "demo-hill-eve")  # a new sign-in works
    finally:
        await eve.close()


async def test_a_second_sign_in_may_ask_before_ending_the_first(system: LocalSystem):
    base = system.gateway_url
    first = await operator(base, "demo-hill-bob", [], status="away")
    second = None
    try:
        second, asked = await socket_of(base, await login(base, "demo-hill-bob"), elsewhere="ask")
        assert asked["type"] == "error" and asked["code"] == "conflict", asked
        assert "signed in elsewhere since" in asked["message"]
        # Asking changed nothing: the first session is still the current one.
        assert (await first.ok({"type": "status.set", "status": "away"}))["status"] == "away"
        taken = await second.ok(
            {"type": "auth", "token": await login(base, "demo-hill-bob"), "elsewhere": "end"}
        )
        assert taken["session_id"]
        assert (await first.expect("session.ended"))["reason"] == "signed_in_elsewhere"
    finally:
        await first.close()
        if second is not None:
            await second.close()


async def test_an_operator_keeps_their_desk_from_one_sign_in_to_the_next(system: LocalSystem):
    base = system.gateway_url
    eve = await operator(base, "demo-hill-eve", ["demo-hill"], status="away")
    await eve.close()
    back, ack = await socket_of(base, await login(base, "demo-hill-eve"))
    try:
        assert ack["type"] == "ack", ack
        session = await back.expect("session")
        assert (session["status"], session["monitoring"]) == ("away", ["demo-hill"])
        await back.expect("queue.snapshot")
    finally:
        # Leave Eve's desk as the demo has it, for the tests that follow.
        await back.ok({"type": "monitor.set", "queues": []})
        await back.ok({"type": "status.set", "status": "offline"})
        await back.close()


def staff_token(system: LocalSystem, username: str, role: str, inst: str, ttl_s: float) -> str:
    """A token as the gateway signs them, with the lifetime a test needs."""
    secret = (system.data / "jwt-secret").read_text().strip()
    now = datetime.now(UTC)
    claims = {"sub": username, "inst": inst, "role": role, "name": "Eve", "kind": "staff"}
    claims |= {"jti": uuid.uuid4().hex, "iat": now, "exp": now + timedelta(seconds=ttl_s)}
    return jwt.encode(claims, secret, algorithm="HS256")


async def test_an_operator_socket_ends_when_its_token_does(system: LocalSystem):
    token = staff_token(system, "demo-hill-eve", "operator", "hill", ttl_s=2)
    eve, ack = await socket_of(system.gateway_url, token)
    try:
        assert ack["type"] == "ack", ack
        ended = await eve.expect("session.ended", timeout=10)
        assert ended["reason"] == "token_expired"
    finally:
        await eve.close()


async def test_a_well_signed_token_for_an_account_that_is_not_there_opens_nothing(
    system: LocalSystem,
):
    ghost = staff_token(system, "demo-hill-ghost", "consortium_admin", "demo", ttl_s=600)
    headers = {"Authorization": f"Bearer {ghost}"}
    async with httpx.AsyncClient(base_url=system.gateway_url, headers=headers) as http:
        for path in ("/api/me", "/api/stats?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z"):
            assert (await http.get(path)).status_code == 401, path
    sock, refused = await socket_of(system.gateway_url, ghost)
    await sock.close()
    assert (refused["type"], refused["code"]) == ("error", "unauthorized")
