"""Tenant isolation, generated from what the gateway offers: every REST route in its
OpenAPI document and every frame type of both sockets. River owns a chat, a ticket, a
snippet, a partnership with the backup service, a widget, queues and staff; Hill's
operator and Hill's admin try each route and frame on River's things, and every route that
takes a token is tried without one and with an expired, tampered, wrong-kind or ghost
token. Each must be refused (401, 403, 404; `forbidden`, `not_found`, `unauthorized`) with
nothing of River's in the answer, and afterwards River's things are as they were.

A route or frame type this file does not know fails the suite until someone says here how
it is scoped: that is the point.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, get_args
from urllib.parse import quote

import httpx
import jwt
import pytest_asyncio

from deploy.local.system import LocalSystem
from shared.schemas.protocol import OperatorFrame, PatronFrame
from tests.client import (
    ProtocolClient,
    about,
    clients,
    eventually,
    login,
    operator,
    patron,
    signed_in,
)

MARKER = "isolation-marker"
REFUSED = {401, 403, 404}
# Routes anyone may call, by design (a widget's public endpoints, signing in).
PUBLIC = {
    ("POST", "/api/auth/login"),
    ("GET", "/api/widgets/{widget_id}/status"),
    ("POST", "/api/widgets/{widget_id}/views"),
    ("POST", "/api/widgets/{widget_id}/offline-message"),
}
# Routes about the caller alone, with nothing of anyone else's to name.
OWN = {("GET", "/api/me"), ("POST", "/api/auth/logout")}
# Lists: answered, but holding only what the caller's institution may see.
LISTS = {
    "/api/institutions",
    "/api/users",
    "/api/snippets",
    "/api/partnerships",
    "/api/queues",
    "/api/widgets",
    "/api/transcripts",
    "/api/guests/{guest_id}/chats",
    "/api/tickets",
    "/api/guests",
}


@dataclass
class River:
    chat_id: str
    ticket_id: str
    guest_id: str
    snippet: str
    partnership: str


@pytest_asyncio.fixture(scope="module")
async def river(system: LocalSystem) -> River:
    base = system.gateway_url
    tag = uuid.uuid4().hex[:6]
    snippet, partnership = f"river (isolation {tag})", f"demo-riverside{tag}"
    async with await signed_in(base, "demo-admin") as coordinator:
        made = await coordinator.post(
            "/api/snippets", json={"name": snippet, "institution": "river", "body": MARKER}
        )
        assert made.status_code == 201, made.text
        riverside = {
            "name": partnership,
            "institution": "demo",
            "display_name": f"Riverside {MARKER}",
            "institutions": ["river", "backup"],
        }
        assert (await coordinator.post("/api/partnerships", json=riverside)).status_code == 201
    # River answers in its hours; outside them its chats go to the backup service.
    cat = await operator(base, "demo-river-cat", ["demo-river"])
    dan = await operator(base, "demo-backup-dan", ["demo-backup"])
    pat = await patron(base, "river")
    async with clients(cat, dan, pat):
        guest_id = pat.frames[-1]["guest_id"]
        asked = await pat.ok({"type": "chat.start", "question": f"{MARKER} question"})
        chat_id = asked["chat_id"]
        queued = await pat.expect("chat.queued")
        answering = cat if queued["queue"] == "demo-river" else dan
        await answering.expect(about(chat_id, "queue.chat_added"))
        await answering.ok({"type": "chat.claim", "chat_id": chat_id})
        await answering.ok({"type": "message", "chat_id": chat_id, "body": f"{MARKER} answer"})
        await cat.ok({"type": "internal.send", "to": {"all": True}, "body": f"{MARKER} staff"})
        # Closed, so that nothing changes it while the tests compare before and after.
        await answering.ok({"type": "chat.close", "chat_id": chat_id})
        async with await signed_in(base, "demo-river-cat") as river_http:
            ticket = await river_http.post(
                "/api/tickets",
                json={
                    "chat_id": chat_id,
                    "email": "pat@example.org",
                    "subject": MARKER,
                    "body": MARKER,
                },
            )
            assert ticket.status_code == 201, ticket.text

            async def transcribed() -> bool | None:
                read = await river_http.get(f"/api/transcripts/{chat_id}")
                found = read.json()
                bodies = [m["body"] for m in found.get("messages", [])]
                closed = found.get("chat", {}).get("state") == "closed"
                return True if closed and f"{MARKER} answer" in bodies else None

            # Settled before the tests compare River's things before and after.
            await eventually(transcribed, "River's chat in its transcript")
    return River(chat_id, ticket.json()["id"], guest_id, snippet, partnership)


def targets(river: River) -> dict[str, str]:
    """River's thing for each path parameter."""
    return {
        "chat_id": river.chat_id,
        "ticket_id": river.ticket_id,
        "operator": "demo-river-cat",
        "username": "demo-river-cat",
        "widget_id": "river",
        "conversation": "queue:demo-river",
        "guest_id": river.guest_id,
    }


def named(path: str, river: River) -> str:
    """The `{name}` of each kind of record, River's."""
    for prefix, name in (
        ("/api/queues/", "demo-river"),
        ("/api/widgets/", "river"),
        ("/api/institutions/", "river"),
        ("/api/snippets/", river.snippet),
        ("/api/partnerships/", river.partnership),
    ):
        if path.startswith(prefix):
            return name
    raise AssertionError(f"{path}: which of River's records does its {{name}} mean?")


def body_for(method: str, path: str, river: River) -> dict[str, Any] | None:
    """A well-formed body that acts on River."""
    if method not in ("POST", "PUT", "PATCH") or (method, path) in OWN:
        return None
    if path == "/api/tickets/{ticket_id}/replies":
        return {"body": "Taken"}
    if method == "PATCH" and path == "/api/tickets/{ticket_id}":
        return {"status": "closed", "assignee": "demo-hill-ann"}
    iso = uuid.uuid4().hex[:6]
    bodies: dict[str, dict[str, Any]] = {
        "/api/institutions": {
            "name": "river",
            "institution": "river",
            "display_name": "Taken",
            "timezone": "UTC",
        },
        "/api/users": {
            "username": f"demo-river-x{iso}",
            "institution": "river",
            "role": "operator",
            "display_name": "X",
            "password": "tall-stacks-quiet-reading-room",
        },
        "/api/snippets": {"name": river.snippet, "institution": "river", "body": "changed"},
        "/api/partnerships": {
            "name": river.partnership,
            "institution": "demo",
            "display_name": "Taken",
            "institutions": ["river", "hill"],
        },
        "/api/queues": {"name": "demo-river", "institution": "river", "display_name": "Taken"},
        "/api/widgets": {
            "id": "river",
            "institution": "river",
            "queue": "demo-river",
            "title": "Taken",
        },
        "/api/tickets": {
            "chat_id": river.chat_id,
            "email": "x@example.org",
            "subject": "x",
            "body": "x",
        },
        "/api/announcements": {"body": "Taken"},
        # River's patron, erased in River's name: the snapshot shows the transcript stays.
        "/api/erasures": {"guest_id": river.guest_id, "institution": "river"},
        "/password": {"password": "tall-stacks-quiet-reading-room"},
    }
    if path.endswith("/password"):
        return bodies["/password"]
    collection = "/".join(path.split("/")[:3])
    if collection in bodies:
        body = dict(bodies[collection])
        if method == "POST" and collection == "/api/users":
            return body
        if method == "PUT" and collection == "/api/users":
            body["username"] = "demo-river-cat"
        return body
    raise AssertionError(f"{method} {path}: which body acts on River?")


QUERIES: dict[str, dict[str, str]] = {
    "/api/coverage": {"queue": "demo-river", "from": "2026-11-23", "to": "2026-11-24"},
    "/api/chats/missed": {"since": "2026-01-01T00:00:00Z", "institution": "river"},
    # Hill's own transcripts, of River's patrons: none.
    "/api/transcripts": {"home": "river"},
    "/api/guests/{guest_id}/chats": {"since": "2026-01-01T00:00:00Z"},
    "/api/audit": {"since": "2026-01-01T00:00:00Z", "institution": "river"},
    "/api/stats": {
        "from": "2026-01-01T00:00:00Z",
        "to": "2027-01-01T00:00:00Z",
        "institution": "river",
    },
}


def requests(schema: dict[str, Any], river: River) -> list[tuple[str, str, str, Any, dict]]:
    """(method, route, url path, body, query) for every operation of the gateway."""
    made = []
    ids = targets(river)
    for route, operations in schema["paths"].items():
        for method, _ in operations.items():
            method = method.upper()
            if (method, route) in PUBLIC:
                continue
            path = route
            for param, value in ids.items():
                path = path.replace(f"{{{param}}}", quote(value, safe=""))
            if "{name}" in path:
                path = path.replace("{name}", quote(named(route, river), safe=""))
            assert "{" not in path, f"{method} {route}: which of River's things is it about?"
            query = dict(QUERIES.get(route, {}))
            if route == "/api/transfer-targets":
                query["chat_id"] = river.chat_id
            if "{chat_id}" in route or "{ticket_id}" in route:
                query["institution"] = "river"
            made.append((method, route, path, body_for(method, route, river), query))
    return made


def staff_token(system: LocalSystem, username: str, inst: str, ttl_s: float) -> str:
    secret = (system.data / "jwt-secret").read_text().strip()
    now = datetime.now(UTC)
    claims = {"sub": username, "inst": inst, "role": "institution_admin", "name": "X"}
    claims |= {"kind": "staff", "jti": uuid.uuid4().hex, "iat": now}
    claims |= {"exp": now + timedelta(seconds=ttl_s)}
    return jwt.encode(claims, secret, algorithm="HS256")


async def bad_tokens(system: LocalSystem) -> dict[str, str | None]:
    good = await login(system.gateway_url, "demo-hill-admin")
    pat = await patron(system.gateway_url, "hill")
    guest = pat.frames[-1]["token"]
    await pat.close()
    return {
        "none": None,
        "expired": staff_token(system, "demo-hill-admin", "hill", -60),
        "tampered": good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        "wrong kind": guest,
        "ghost": staff_token(system, "demo-hill-ghost", "hill", 600),
    }


async def openapi(base: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base) as http:
        found: dict[str, Any] = (await http.get("/openapi.json")).json()
        return found


async def snapshot(base: str, river: River) -> dict[str, Any]:
    async with await signed_in(base, "demo-admin") as coordinator:
        reads = [
            "/api/queues/demo-river",
            "/api/widgets/river",
            "/api/users/demo-river-cat",
            "/api/institutions/river",
            f"/api/snippets/{quote(river.snippet, safe='')}",
            f"/api/partnerships/{river.partnership}",
            f"/api/transcripts/{river.chat_id}?institution=river",
            f"/api/tickets/{river.ticket_id}?institution=river",
        ]
        return {path: (await coordinator.get(path)).json() for path in reads}


async def test_no_route_gives_hill_anything_of_rivers(system: LocalSystem, river: River):
    base = system.gateway_url
    before = await snapshot(base, river)
    schema = await openapi(base)
    tried = 0
    for who in ("demo-hill-ann", "demo-hill-admin"):
        async with await signed_in(base, who) as http:
            for method, route, path, body, query in requests(schema, river):
                if (method, route) in OWN:
                    continue  # (signing out here would end the session the loop uses)
                response = await http.request(method, path, json=body, params=query)
                tried += 1
                assert MARKER not in response.text, (who, method, path, response.text[:300])
                if method == "GET" and route in LISTS:
                    assert response.status_code == 200, (who, path, response.text[:200])
                    assert "demo-river" not in response.text and '"river"' not in response.text
                    continue
                if route == "/api/internal/{conversation}" and response.status_code == 200:
                    continue  # Hill's own staff messages of that name: none, and no marker
                assert response.status_code in REFUSED, (who, method, path, response.text[:300])
    print(f"isolation: {tried} requests as Hill's staff")
    assert await snapshot(base, river) == before


async def test_every_route_with_a_token_refuses_a_bad_one(system: LocalSystem, river: River):
    base = system.gateway_url
    schema = await openapi(base)
    tokens = await bad_tokens(system)
    async with httpx.AsyncClient(base_url=base) as http:
        for method, route, path, body, query in requests(schema, river):
            for kind, token in tokens.items():
                headers = {} if token is None else {"Authorization": f"Bearer {token}"}
                r = await http.request(method, path, json=body, params=query, headers=headers)
                assert r.status_code == 401, (kind, method, route, r.status_code, r.text[:200])
                assert MARKER not in r.text


def frame_types(union: Any) -> set[str]:
    members = get_args(get_args(union)[0])
    return {get_args(m.model_fields["type"].annotation)[0] for m in members}


OPERATOR_TRIES = {
    "transfer.cancel": {"chat_id": "{chat}"},
    "chat.claim": {"chat_id": "{chat}"},
    "message": {"chat_id": "{chat}", "body": "hi"},
    "typing": {"chat_id": "{chat}"},
    "chat.tag": {"chat_id": "{chat}", "tags": ["x"]},
    "chat.close": {"chat_id": "{chat}"},
    "chat.transfer": {"chat_id": "{chat}", "to": {"operator": "demo-hill-bob"}},
    "transfer.accept": {"chat_id": "{chat}"},
    "transfer.decline": {"chat_id": "{chat}"},
    "chat.take": {"chat_id": "{chat}"},
    "chat.start_proactive": {"guest_id": "{guest}", "body": "hi"},
    "monitor.set": {"queues": ["demo-river"]},
    "internal.send": {"to": {"operator": "demo-river-cat"}, "body": "hi"},
}
OPERATOR_OWN = {"auth", "status.set"}
PATRON_TRIES = {
    "message": {"chat_id": "{chat}", "body": "hi"},
    "typing": {"chat_id": "{chat}"},
    "chat.end": {"chat_id": "{chat}"},
}
PATRON_OWN = {"hello", "chat.start"}


def filled(frame: dict[str, Any], river: River) -> dict[str, Any]:
    text = json.dumps(frame).replace("{chat}", river.chat_id).replace("{guest}", river.guest_id)
    loaded: dict[str, Any] = json.loads(text)
    return loaded


async def test_no_frame_lets_hill_act_on_rivers_chat(system: LocalSystem, river: River):
    assert frame_types(OperatorFrame) == set(OPERATOR_TRIES) | OPERATOR_OWN
    assert frame_types(PatronFrame) == set(PATRON_TRIES) | PATRON_OWN
    base = system.gateway_url
    before = await snapshot(base, river)
    ann = await operator(base, "demo-hill-ann", [])
    pat = await patron(base, "hill")
    async with clients(ann, pat):
        for client, tries in ((ann, OPERATOR_TRIES), (pat, PATRON_TRIES)):
            for kind, frame in tries.items():
                answer = await client.request({"type": kind, **filled(frame, river)})
                assert answer["type"] == "error", (kind, answer)
                assert answer["code"] in ("forbidden", "not_found"), (kind, answer)
        leaked = [f for f in ann.frames + pat.frames if MARKER in json.dumps(f)]
        assert leaked == []
    assert await snapshot(base, river) == before


async def test_a_client_of_another_kind_cannot_use_the_other_socket(system: LocalSystem):
    """A guest token on the operator socket, a staff token in a patron's hello."""
    ws = system.gateway_url.replace("http", "ws")
    pat = await patron(system.gateway_url, "hill")
    guest = pat.frames[-1]["token"]
    await pat.close()
    desk = await ProtocolClient.connect(ws + "/ws/operator")
    try:
        refused = await desk.request({"type": "auth", "token": guest})
        assert (refused["type"], refused["code"]) == ("error", "unauthorized")
    finally:
        await desk.close()
    staff = await login(system.gateway_url, "demo-hill-ann")
    window = await ProtocolClient.connect(ws + "/ws/patron?widget=hill")
    try:
        answer = await window.request({"type": "hello", "token": staff})
        # A staff token is not a guest's: the patron is welcomed as a new guest, nobody else.
        assert answer["type"] == "ack"
        welcome = await window.expect("welcome")
        assert welcome["guest_id"] and welcome["token"] != staff
    finally:
        await window.close()
