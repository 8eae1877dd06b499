"""Operator sessions from the outside: an admin ends one, an operator signs out (the token
stops working), a second sign-in may ask before ending the first, and the desk (status and
monitored queues) is kept from one sign-in to the next."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt

from deploy.local.system import LocalSystem
from tests.client import PASSWORD, ProtocolClient, account, fresh, login, operator, signed_in


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


# --- a new password or a disable ends every earlier token and session, for good ------------

NEW_PASSWORD = "a-longer-phrase-for-the-desk"


async def new_operator(base: str) -> str:
    """A fresh Hill operator (accounts are never deleted, so each test makes its own)."""
    name = fresh("demo-hill-tok")
    async with await signed_in(base, "demo-hill-admin") as admin:
        made = await admin.post("/api/users", json=account(name, "hill"))
        assert made.status_code == 201, made.text
    return name


async def token_refused(base: str, token: str) -> None:
    """The token answers neither REST nor a new socket's `auth`."""
    async with httpx.AsyncClient(base_url=base) as http:
        me = await http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 401, me.text
    sock, refused = await socket_of(base, token)
    await sock.close()
    assert (refused["type"], refused["code"]) == ("error", "unauthorized"), refused


async def test_an_admin_s_new_password_ends_the_operator_s_tokens_and_socket(
    system: LocalSystem,
):
    base = system.gateway_url
    name = await new_operator(base)
    desk = await operator(base, name, [], password=PASSWORD)
    other = await login(base, name, PASSWORD)  # a second client's token
    try:
        async with await signed_in(base, "demo-hill-admin") as admin:
            put = await admin.put(f"/api/users/{name}/password", json={"password": NEW_PASSWORD})
            assert put.status_code == 204, put.text
            assert (await desk.expect("session.ended"))["reason"] == "password_changed"
            await token_refused(base, other)
            # The same through the account form (a replace with a password), on a new token.
            fresh_token = await login(base, name, NEW_PASSWORD)
            record = (await admin.get(f"/api/users/{name}")).json()
            replaced = await admin.put(f"/api/users/{name}", json={**record, "password": PASSWORD})
            assert replaced.status_code == 200, replaced.text
            await token_refused(base, fresh_token)
            # A change that is not the password's leaves tokens be.
            kept = await login(base, name, PASSWORD)
            record = (await admin.get(f"/api/users/{name}")).json()
            renamed = await admin.put(f"/api/users/{name}", json={**record, "display_name": "N"})
            assert renamed.status_code == 200, renamed.text
        async with httpx.AsyncClient(base_url=base) as http:
            me = await http.get("/api/me", headers={"Authorization": f"Bearer {kept}"})
            assert me.status_code == 200, me.text
    finally:
        await desk.close()


async def test_one_s_own_new_password_ends_one_s_own_tokens_too(system: LocalSystem):
    """The caller's own token included: whoever changes their password signs in again
    with it, on every client."""
    base = system.gateway_url
    name = await new_operator(base)
    desk = await operator(base, name, [], password=PASSWORD)
    own = await login(base, name, PASSWORD)
    try:
        bearer = {"Authorization": f"Bearer {own}"}
        async with httpx.AsyncClient(base_url=base, headers=bearer) as http:
            put = await http.put(f"/api/users/{name}/password", json={"password": NEW_PASSWORD})
            assert put.status_code == 204, put.text
            assert (await desk.expect("session.ended"))["reason"] == "password_changed"
        await token_refused(base, own)
        again = await login(base, name, NEW_PASSWORD)
        async with httpx.AsyncClient(base_url=base) as http:
            me = await http.get("/api/me", headers={"Authorization": f"Bearer {again}"})
            assert me.status_code == 200 and me.json()["username"] == name
    finally:
        await desk.close()


async def test_enabling_a_disabled_account_again_brings_none_of_its_tokens_back(
    system: LocalSystem,
):
    base = system.gateway_url
    name = await new_operator(base)
    desk = await operator(base, name, [], password=PASSWORD)
    before = await login(base, name, PASSWORD)
    try:
        async with await signed_in(base, "demo-hill-admin") as admin:
            record = (await admin.get(f"/api/users/{name}")).json()
            off = await admin.put(f"/api/users/{name}", json={**record, "disabled": True})
            assert off.status_code == 200, off.text
            assert (await desk.expect("session.ended"))["reason"] == "account_disabled"
            # Enabled again, even with the generation the account had before (what a client
            # sends of it is ignored).
            on = await admin.put(f"/api/users/{name}", json={**record, "disabled": False})
            assert on.status_code == 200, on.text
            await token_refused(base, before)
            assert on.json()["token_generation"] > record.get("token_generation", 0)
        await login(base, name, PASSWORD)  # a new sign-in works
    finally:
        await desk.close()
