"""One real chat through all five services, as processes, over real WebSockets."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from deploy.local.system import LocalSystem
from tests.client import (
    ProtocolClient,
    login,
    operator,
    patron,
    transcript,
    wrong_passwords_at_once,
)


async def start_chat(
    system: LocalSystem, question: str = "Where are the theses?", widget: str = "hill"
) -> tuple[ProtocolClient, str]:
    client = await patron(system.gateway_url, widget)
    ack = await client.ok({"type": "chat.start", "question": question, "name": "Pat"})
    return client, ack["chat_id"]


async def test_chat_is_claimed_answered_closed_and_transcribed(system: LocalSystem):
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    pat = await patron(system.gateway_url, "hill")
    try:
        ack = await pat.ok(
            {
                "type": "chat.start",
                "question": "Where are the theses?",
                "name": "Pat",
                "email": "pat@example.org",
            }
        )
        chat_id = ack["chat_id"]
        queued = await pat.expect("chat.queued")
        assert queued["chat_id"] == chat_id and queued["queue"] == "demo-hill"
        assert queued["position"] >= 1
        added = await ann.expect(
            lambda f: f["type"] == "queue.chat_added" and f["chat"]["id"] == chat_id
        )
        assert added["chat"]["state"] == "queued" and added["question"] == "Where are the theses?"

        claim = await ann.ok({"type": "chat.claim", "chat_id": chat_id})
        assert claim["chat"]["owner"] == "demo-hill-ann" and claim["chat"]["state"] == "active"
        assert [m["body"] for m in claim["messages"]] == ["Where are the theses?"]
        assert (await pat.expect("chat.claimed"))["operator"] == "Ann"
        await ann.ok({"type": "typing", "chat_id": chat_id})
        typing = await pat.expect("typing")
        assert typing["from"]["name"] == "Ann" and typing["chat_id"] == chat_id
        await pat.ok({"type": "typing", "chat_id": chat_id})
        assert (await ann.expect("typing"))["from"]["kind"] == "patron"

        seqs = []
        for i in range(3):
            sent = await pat.ok({"type": "message", "chat_id": chat_id, "body": f"patron {i}"})
            got = await ann.expect("message")
            assert got["body"] == f"patron {i}" and got["seq"] == sent["seq"]
            assert got["from"]["kind"] == "patron" and got["from"]["name"] == "Pat"
            reply = await ann.ok({"type": "message", "chat_id": chat_id, "body": f"ann {i}"})
            heard = await pat.expect("message")
            assert heard["body"] == f"ann {i}" and heard["seq"] == reply["seq"]
            seqs += [sent["seq"], reply["seq"]]
        assert seqs == list(range(2, 8))

        closed = await ann.ok(
            {"type": "chat.close", "chat_id": chat_id, "tags": ["Theses", "directions"]}
        )
        assert closed["chat"]["state"] == "closed"
        assert (await pat.expect("chat.closed"))["state"] == "closed"

        token = await login(system.gateway_url, "demo-hill-ann")
        body = await transcript(system, token, chat_id, messages=7)
        assert [m["seq"] for m in body["messages"]] == list(range(1, 8))
        assert body["chat"]["tags"] == ["theses", "directions"]
        assert body["chat"]["owner"] == "demo-hill-ann"
        assert body["chat"]["patron"]["email"] == "pat@example.org"
        assert body["routing"] == [
            {
                "at": body["routing"][0]["at"],
                "trigger": "start",
                "queue": "demo-hill",
                "reason": "hours",
                "skipped": [],
            }
        ]
    finally:
        await pat.close()
        await ann.close()


async def test_bad_frames_get_errors_keep_socket_and_change_nothing(system: LocalSystem):
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    bob = await operator(system.gateway_url, "demo-hill-bob", ["demo-hill"])
    pat, chat_id = await start_chat(system)
    try:
        await ann.ok({"type": "chat.claim", "chat_id": chat_id})

        await ann.send_raw("{not json")
        assert (await ann.expect("error"))["code"] == "invalid"
        assert (await ann.request({"type": "chat.explode", "chat_id": chat_id}))[
            "code"
        ] == "invalid"
        missing = await ann.request({"type": "message", "chat_id": chat_id})
        assert missing["code"] == "invalid" and "body" in missing["message"]
        extra = await ann.request({"type": "message", "chat_id": chat_id, "body": "x", "evil": 1})
        assert extra["code"] == "invalid"
        big = await ann.request({"type": "message", "chat_id": chat_id, "body": "x" * 5000})
        assert big["code"] == "too_large"
        huge = await ann.request({"type": "message", "chat_id": chat_id, "body": "x" * 20000})
        assert huge["code"] == "too_large"
        # Someone else's chat: a colleague is forbidden, another institution cannot see it.
        assert (await bob.request({"type": "typing", "chat_id": chat_id}))["code"] == "forbidden"
        theft = await bob.request({"type": "message", "chat_id": chat_id, "body": "mine now"})
        assert theft["code"] == "forbidden"
        assert (await bob.request({"type": "chat.close", "chat_id": chat_id}))[
            "code"
        ] == "forbidden"
        cat = await operator(system.gateway_url, "demo-river-cat", [])
        try:
            foreign = await cat.request({"type": "message", "chat_id": chat_id, "body": "hi"})
            assert foreign["code"] == "not_found"
            watch = await cat.request({"type": "monitor.set", "queues": ["demo-hill"]})
            assert watch["code"] == "forbidden"
        finally:
            await cat.close()
        late = await bob.request({"type": "chat.claim", "chat_id": chat_id})
        assert late["code"] == "conflict" and late["owner"] == "demo-hill-ann"
        # The patron cannot write into a chat that is not theirs either.
        other = await pat.request({"type": "message", "chat_id": "f" * 32, "body": "hi"})
        assert other["code"] == "forbidden"

        # The sockets still work, and none of that reached the chat.
        ok = await ann.ok({"type": "message", "chat_id": chat_id, "body": "still here"})
        assert ok["seq"] == 2
        await ann.ok({"type": "chat.close", "chat_id": chat_id})
        token = await login(system.gateway_url, "demo-hill-ann")
        body = await transcript(system, token, chat_id, messages=2)
        assert [m["body"] for m in body["messages"]] == ["Where are the theses?", "still here"]
    finally:
        for client in (pat, ann, bob):
            await client.close()


async def test_frames_before_hello_or_auth_are_refused(system: LocalSystem):
    ws = system.gateway_url.replace("http", "ws")
    anon = await ProtocolClient.connect(ws + "/ws/operator")
    try:
        refused = await anon.request({"type": "status.set", "status": "online"})
        assert refused["code"] == "invalid"  # only `auth` is understood before signing in
        bad = await anon.request({"type": "auth", "token": "forged"})
        assert bad["code"] == "unauthorized"
    finally:
        await anon.close()
    guest = await ProtocolClient.connect(ws + "/ws/patron?widget=hill")
    try:
        early = await guest.request({"type": "chat.start", "question": "hi"})
        assert early["code"] == "invalid"
    finally:
        await guest.close()
    nowhere = await ProtocolClient.connect(ws + "/ws/patron?widget=nope")
    try:
        assert (await nowhere.expect("error"))["code"] == "not_found"
    finally:
        await nowhere.close()


async def test_rate_limit_refuses_floods_without_closing(system: LocalSystem):
    pat = await patron(system.gateway_url, "hill")
    try:
        for i in range(60):
            await pat.send_raw(json.dumps({"type": "typing", "chat_id": "a" * 32, "ref": f"f{i}"}))
        answers = [await pat.expect(lambda f: f["type"] in ("ack", "error")) for _ in range(60)]
        limited = [a for a in answers if a.get("code") == "rate_limited"]
        assert limited
        # The limit comes before parsing: a refused frame is not read, not even its ref.
        assert all("ref" not in a or a["ref"] is None for a in limited)
        # Refused, not cut off: the socket is open and answers the next frame (the
        # bucket's refill is the pure TokenBucket's unit test).
        await pat.send_raw(json.dumps({"type": "hello"}))
        assert (await pat.expect("error"))["code"] in ("invalid", "rate_limited")
    finally:
        await pat.close()


async def test_a_frame_nested_too_deeply_is_invalid_and_the_socket_stays(system: LocalSystem):
    pat = await patron(system.gateway_url, "hill")
    try:
        await pat.send_raw("[" * 30_000 + "]" * 30_000)
        refused = await pat.expect("error")
        assert (refused["code"], refused["message"]) == ("invalid", "frame is nested too deeply")
        await pat.send_raw(json.dumps({"type": "hello", "ref": "after"}))
        assert (await pat.expect(lambda f: f.get("ref") == "after"))["code"] == "invalid"
    finally:
        await pat.close()


async def test_two_operators_claim_at_once_one_wins(system: LocalSystem):
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    bob = await operator(system.gateway_url, "demo-hill-bob", ["demo-hill"])
    pat, chat_id = await start_chat(system)
    try:
        a, b = await asyncio.gather(
            ann.request({"type": "chat.claim", "chat_id": chat_id}),
            bob.request({"type": "chat.claim", "chat_id": chat_id}),
        )
        assert sorted([a["type"], b["type"]]) == ["ack", "error"]
        loser = a if a["type"] == "error" else b
        winner = "demo-hill-ann" if a["type"] == "ack" else "demo-hill-bob"
        assert loser["code"] == "conflict" and loser["owner"] == winner
        owner = ann if winner == "demo-hill-ann" else bob
        await owner.ok({"type": "chat.close", "chat_id": chat_id})
    finally:
        for client in (pat, ann, bob):
            await client.close()


async def test_no_one_online_means_unavailable(system: LocalSystem):
    pat = await patron(system.gateway_url, "river")
    try:
        assert pat.frames[-1]["widget"]["online"] is False
        refused = await pat.request({"type": "chat.start", "question": "Anyone?"})
        assert refused["code"] == "unavailable"
    finally:
        await pat.close()


async def test_sign_in_elsewhere_ends_older_session(system: LocalSystem):
    first = await operator(system.gateway_url, "demo-hill-bob", [])
    second = await operator(system.gateway_url, "demo-hill-bob", [])
    try:
        ended = await first.expect("session.ended")
        assert ended["reason"] == "signed_in_elsewhere"
        assert (await second.ok({"type": "status.set", "status": "away"}))["status"] == "away"
    finally:
        await first.close()
        await second.close()


async def test_rest_validation_and_tenant_scope(system: LocalSystem):
    async with httpx.AsyncClient(base_url=system.gateway_url) as http:
        extra = await http.post(
            "/api/auth/login",
            json={"username": "demo-hill-ann", "password": "refdesk-demo", "x": 1},
        )
        assert extra.status_code == 422 and "x" in extra.text
        wrong = await http.post(
            "/api/auth/login", json={"username": "demo-hill-ann", "password": "nope"}
        )
        assert wrong.status_code == 401 and wrong.json()["code"] == "unauthorized"
        typed = await http.post("/api/auth/login", json={"username": 5, "password": []})
        assert typed.status_code == 422
        assert (await http.get("/api/me")).status_code == 401
        token = await login(system.gateway_url, "demo-river-cat")
        me = await http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["institution"] == "river"
        peek = await http.get(
            "/api/transcripts/abc",
            params={"institution": "hill"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert peek.status_code == 403
        docs = await http.get("/openapi.json")
        assert "/api/transcripts/{chat_id}" in docs.json()["paths"]
        status = await http.get(
            "/api/widgets/hill/status", headers={"Origin": "http://127.0.0.1:8000"}
        )
        assert status.status_code == 200 and "online" in status.json()
        assert status.headers["access-control-allow-origin"] == "http://127.0.0.1:8000"
        elsewhere = await http.get(
            "/api/widgets/hill/status", headers={"Origin": "https://evil.example"}
        )
        assert elsewhere.status_code == 403
        assert "access-control-allow-origin" not in elsewhere.headers


async def test_repeated_wrong_passwords_lock_that_name_only(system: LocalSystem):
    async with httpx.AsyncClient(base_url=system.gateway_url) as http:
        codes = []
        for _ in range(12):
            r = await http.post(
                "/api/auth/login", json={"username": "demo-hill-nobody", "password": "guess"}
            )
            codes.append(r.status_code)
        assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]
        # Other names are unaffected, and right passwords are never counted.
        for _ in range(12):
            assert await login(system.gateway_url, "demo-hill-bob")


async def test_wrong_passwords_sent_at_once_are_counted_before_they_are_checked(
    system: LocalSystem,
):
    """Thirty at once for one name from one address: ten are checked (401), the other
    twenty refused unchecked (429), not thirty checked before the counts catch up."""
    codes = await wrong_passwords_at_once(
        system.gateway_url, ["demo-hill-burst"] * 30, ["127.0.0.1"]
    )
    assert sorted(codes) == [401] * 10 + [429] * 20, codes


async def test_a_forwarded_for_header_does_not_choose_the_address_that_is_counted(
    system: LocalSystem,
):
    """Only a configured proxy's X-Forwarded-For is believed; from anywhere else, a guesser
    rotating the header is still one address guessing one name."""
    async with httpx.AsyncClient(base_url=system.gateway_url) as http:
        codes = []
        for i in range(12):
            r = await http.post(
                "/api/auth/login",
                json={"username": "demo-hill-rotating", "password": "guess"},
                headers={"X-Forwarded-For": f"203.0.113.{i}"},
            )
            codes.append(r.status_code)
        assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]


async def test_transcript_of_a_chat_is_hidden_from_other_institutions(system: LocalSystem):
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    pat, chat_id = await start_chat(system)
    try:
        await ann.ok({"type": "chat.claim", "chat_id": chat_id})
        await ann.ok({"type": "chat.close", "chat_id": chat_id})
        hill = await login(system.gateway_url, "demo-hill-bob")
        await transcript(system, hill, chat_id, messages=1)
        river = await login(system.gateway_url, "demo-river-cat")
        async with httpx.AsyncClient(base_url=system.gateway_url) as http:
            r = await http.get(
                f"/api/transcripts/{chat_id}", headers={"Authorization": f"Bearer {river}"}
            )
        assert r.status_code == 404 and r.json()["code"] == "not_found"
    finally:
        await pat.close()
        await ann.close()


async def test_tickets_and_offline_messages(system: LocalSystem):
    token = await login(system.gateway_url, "demo-hill-ann")
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=system.gateway_url) as http:
        made = await http.post(
            "/api/tickets",
            headers=auth,
            json={"email": "pat@example.org", "subject": "Renewal", "body": "Please renew"},
        )
        assert made.status_code == 201, made.text
        ticket = made.json()
        got = await http.get(f"/api/tickets/{ticket['id']}", headers=auth)
        assert got.json()["subject"] == "Renewal" and got.json()["institution"] == "hill"
        bad = await http.post(
            "/api/tickets", headers=auth, json={"email": "nope", "subject": "x", "body": "y"}
        )
        assert bad.status_code == 422 and bad.json()["code"] == "invalid"
        left = await http.post(
            "/api/widgets/river/offline-message",
            json={"name": "Pat", "email": "pat@example.org", "question": "Open Sunday?"},
        )
        assert left.status_code == 201
        river = await login(system.gateway_url, "demo-river-cat")
        seen = await http.get(
            f"/api/tickets/{left.json()['ticket_id']}", headers={"Authorization": f"Bearer {river}"}
        )
        assert seen.json()["question"] == "Open Sunday?" and seen.json()["source"] == "offline_form"
        hidden = await http.get(f"/api/tickets/{left.json()['ticket_id']}", headers=auth)
        assert hidden.status_code == 404


async def test_transcripts_outage_loses_no_message(system: LocalSystem):
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    pat, chat_id = await start_chat(system)
    try:
        await ann.ok({"type": "chat.claim", "chat_id": chat_id})
        await pat.ok({"type": "message", "chat_id": chat_id, "body": "before"})
        system.services["transcripts"].kill()  # SIGKILL: no chance to flush anything
        for i in range(20):
            sender = pat if i % 2 else ann
            await sender.ok({"type": "message", "chat_id": chat_id, "body": f"during {i}"})
        await ann.ok({"type": "chat.close", "chat_id": chat_id, "tags": ["outage"]})
        system.start_service("transcripts")
        system.wait_ready("transcripts")
        token = await login(system.gateway_url, "demo-hill-ann")
        body = await transcript(system, token, chat_id, messages=22, timeout=20)
        assert [m["seq"] for m in body["messages"]] == list(range(1, 23))
        assert body["messages"][-1]["body"] == "during 19"
        assert body["chat"]["tags"] == ["outage"]
    finally:
        await pat.close()
        await ann.close()


@pytest.mark.parametrize("service", ["gateway", "routing", "presence", "transcripts", "tickets"])
async def test_every_service_serves_health_readiness_and_metrics(system: LocalSystem, service: str):
    async with httpx.AsyncClient(base_url=system.ops_url(service)) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"nats": True, "mongodb": True}
        metrics = (await http.get("/metrics")).text
        assert "refdesk_" in metrics
