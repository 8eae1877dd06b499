"""The gateway's edges under bad input: bodies past the limit are refused unread, and a
refusal never sends the input back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from deploy.local.system import LocalSystem
from shared import store
from tests.client import (
    ProtocolClient,
    claimed_chat,
    clients,
    eventually,
    login,
    operator,
    patron,
    wrong_passwords_at_once,
)
from tests.conftest import E2E_DB, start_system
from tests.servers import Servers

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


async def test_no_frame_a_patron_receives_carries_a_staff_login(system: LocalSystem):
    """Typing, messages, a transfer and the close: every frame the patron gets is one of
    PATRON_SERVER_FRAME's (the client checks each), and no login appears anywhere."""
    base = system.gateway_url
    ann = await operator(base, "demo-hill-ann", ["demo-hill"])
    bob = await operator(base, "demo-hill-bob", ["demo-hill"])
    pat, chat_id, _ = await claimed_chat(system, ann)
    async with clients(ann, bob, pat):
        await ann.ok({"type": "typing", "chat_id": chat_id})
        typing = await pat.expect("typing")
        assert typing["from"]["kind"] == "operator" and typing["from"].get("id") is None
        await pat.ok({"type": "typing", "chat_id": chat_id})
        heard = await ann.expect("typing")
        assert heard["from"]["kind"] == "patron" and heard["from"]["id"]
        await ann.ok({"type": "message", "chat_id": chat_id, "body": "One moment."})
        await pat.expect("message")
        await ann.ok(
            {"type": "chat.transfer", "chat_id": chat_id, "to": {"operator": "demo-hill-bob"}}
        )
        await bob.expect("transfer.offer")
        await bob.ok({"type": "transfer.accept", "chat_id": chat_id})
        await pat.expect("chat.transferred")
        await bob.ok({"type": "typing", "chat_id": chat_id})
        assert (await pat.expect("typing"))["from"].get("id") is None
        await bob.ok({"type": "chat.close", "chat_id": chat_id})
        await pat.expect("chat.closed")
        seen = json.dumps(pat.frames)
        assert "demo-hill-ann" not in seen and "demo-hill-bob" not in seen


async def test_the_page_a_patron_came_from_reaches_staff_only_as_a_web_address(
    system: LocalSystem,
):
    base = system.gateway_url
    ann = await operator(base, "demo-hill-ann", ["demo-hill"])
    pat = await patron(base, "hill")
    async with clients(ann, pat):
        for page in ("javascript:alert(1)", 'https://x.example/"><b>', "https://x.example/" * 40):
            refused = await pat.request({"type": "chat.start", "question": "Hi?", "page": page})
            assert refused["type"] == "error" and refused["code"] == "invalid", refused
            assert "page" in refused["message"] and "alert" not in refused["message"]
        page = "https://library.example.org/hours"
        chat_id = (await pat.ok({"type": "chat.start", "question": "Open?", "page": page}))[
            "chat_id"
        ]
        # The refused starts made no chat: the first one the desk hears of is this one.
        added = await ann.expect("queue.chat_added")
        assert added["chat"]["id"] == chat_id and added["chat"]["patron"]["page"] == page
        await ann.ok({"type": "chat.claim", "chat_id": chat_id})
        await ann.ok({"type": "chat.close", "chat_id": chat_id})


ELSEWHERE = "https://evil.example"


async def test_a_widget_answers_only_pages_of_its_own_sites(system: LocalSystem):
    base = system.gateway_url
    ws = base.replace("http", "ws") + "/ws/patron?widget=hill"
    foreign = await ProtocolClient.connect(ws, origin=ELSEWHERE)
    try:
        refused = await foreign.expect("error")
        assert refused["code"] == "forbidden"
    finally:
        await foreign.close()
    # The library's own site (an allowed origin) and the gateway's widget page are fine.
    for origin in ("http://127.0.0.1:8000", base):
        page = await ProtocolClient.connect(ws, origin=origin)
        try:
            assert (await page.request({"type": "hello"}))["type"] == "ack"
        finally:
            await page.close()
    async with httpx.AsyncClient(base_url=base) as http:
        evil = {"Origin": ELSEWHERE}
        status = await http.get("/api/widgets/hill/status", headers=evil)
        assert status.status_code == 403
        question = {"email": "pat@example.org", "question": "Spam?"}
        posted = await http.post("/api/widgets/hill/offline-message", json=question, headers=evil)
        assert posted.status_code == 403


async def test_pages_say_who_may_frame_them(system: LocalSystem):
    async with httpx.AsyncClient(base_url=system.gateway_url) as http:
        desk = await http.get("/operator")
        assert desk.headers["x-frame-options"] == "DENY"
        assert desk.headers["content-security-policy"] == "frame-ancestors 'none'"
        widget = await http.get("/widget", params={"widget": "hill"})
        policy = widget.headers["content-security-policy"]
        assert policy.startswith("frame-ancestors 'self' ") and "http://localhost:8000" in policy
        unknown = await http.get("/widget", params={"widget": "nope"})
        assert unknown.headers["content-security-policy"] == "frame-ancestors 'none'"


async def test_pages_are_served_only_at_their_own_addresses(system: LocalSystem):
    """Under /static a page would go without the headers that say who may frame it: any
    site could frame the desk, or a widget whatever its allowed origins."""
    async with httpx.AsyncClient(base_url=system.gateway_url) as http:
        for path in (
            "/static/operator.html",
            "/static/widget.html",
            "/static/demo.html",
            "/static/operator.html/",
            "/static/./widget.html",
        ):
            assert (await http.get(path)).status_code == 404, path
        for asset in ("/static/style.css", "/static/operator.js", "/static/widget-page.js"):
            assert (await http.get(asset)).status_code == 200, asset


async def test_a_binary_frame_is_refused_and_the_socket_stays(system: LocalSystem):
    """The protocol is JSON text: a binary frame is answered `invalid`, like any bad
    frame, and never closes the socket, before or after the greeting, on either socket."""
    base = system.gateway_url
    ws = base.replace("http", "ws")
    token = await login(base, "demo-hill-bob")
    sockets = (
        (f"{ws}/ws/patron?widget=hill", {"type": "hello", "token": None}),
        (f"{ws}/ws/operator", {"type": "auth", "token": token}),
    )
    for url, greeting in sockets:
        client = await ProtocolClient.connect(url)
        async with clients(client):
            await client.ws.send(json.dumps(greeting).encode())
            refused = await client.expect("error")
            assert refused["code"] == "invalid" and "binary" in refused["message"], refused
            await client.ok(greeting)  # still open, and the binary frame changed nothing
            await client.ws.send(b"\x00\xff")
            assert (await client.expect("error"))["code"] == "invalid"
            answer = await client.request({"type": "typing", "chat_id": "nothing"})
            assert answer["code"] == "forbidden"  # still open, still reading frames


async def test_guest_sightings_expire(system: LocalSystem):
    client = store.connect(system.mongodb_uri or "", "tests")
    try:
        indexes = await store.database(client, E2E_DB).guests.index_information()
    finally:
        await client.close()
    ttl = [i for i in indexes.values() if i.get("expireAfterSeconds") is not None]
    assert ttl and ttl[0]["key"] == [("last_seen", 1)]
    assert ttl[0]["expireAfterSeconds"] == 24 * 3600


# --- a system of its own, with tight per-address limits and a short hello timeout --------

HELLO_TIMEOUT_S = 1


FAILURES_PER_ADDRESS = 5
FAILURES_PER_NAME = 8


PAGE_VIEWS_PER_SECOND = 0.2
PAGE_VIEW_BURST = 4


@pytest.fixture(scope="module")
def tight(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    env = {
        "REFDESK_HELLO_TIMEOUT_S": str(HELLO_TIMEOUT_S),
        "REFDESK_PATRON_SOCKETS_PER_ADDRESS": "3",
        "REFDESK_CHAT_STARTS_PER_MINUTE": "2",
        "REFDESK_LOGIN_FAILURES_PER_ADDRESS": str(FAILURES_PER_ADDRESS),
        "REFDESK_LOGIN_FAILURES_PER_NAME": str(FAILURES_PER_NAME),
        "REFDESK_PAGE_VIEWS_PER_SECOND": str(PAGE_VIEWS_PER_SECOND),
        "REFDESK_PAGE_VIEW_BURST": str(PAGE_VIEW_BURST),
    }
    running = start_system(
        servers, tmp_path_factory.mktemp("tight"), db="refdesk_tight", env=env, own_nats=True
    )
    try:
        yield running
    finally:
        running.stop()


async def test_a_socket_that_never_says_hello_is_closed(tight: LocalSystem):
    ws = tight.gateway_url.replace("http", "ws")
    for path in ("/ws/patron?widget=hill", "/ws/operator"):
        async with websockets.connect(ws + path) as idle:
            said = json.loads(await asyncio.wait_for(idle.recv(), 10))
            assert (said["type"], said["code"]) == ("error", "unauthorized")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(idle.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408


async def test_one_address_opens_a_bounded_number_of_chat_windows_and_chats(tight: LocalSystem):
    base = tight.gateway_url
    ann = await operator(base, "demo-hill-ann", ["demo-hill"])
    windows = [await patron(base, "hill") for _ in range(3)]
    try:
        extra = await ProtocolClient.connect(base.replace("http", "ws") + "/ws/patron?widget=hill")
        try:
            assert (await extra.expect("error"))["code"] == "rate_limited"
        finally:
            await extra.close()
        codes = []
        for window in windows:
            answer = await window.request({"type": "chat.start", "question": "Hello?"})
            codes.append(answer.get("code", answer["type"]))
        assert codes == ["ack", "ack", "rate_limited"]
    finally:
        for window in windows:
            await window.close()
        await ann.close()
    # Closed windows free their places (once the gateway has seen them close).

    async def a_window_opens() -> bool | None:
        window = await ProtocolClient.connect(base.replace("http", "ws") + "/ws/patron?widget=hill")
        try:
            return True if (await window.request({"type": "hello"}))["type"] == "ack" else None
        finally:
            await window.close()

    await eventually(a_window_opens, "a chat window once the others closed")


async def test_metrics_and_readiness_are_not_on_the_public_port(system: LocalSystem):
    async with httpx.AsyncClient(base_url=system.gateway_url) as public:
        for path in ("/metrics", "/readyz", "/healthz"):
            assert (await public.get(path)).status_code == 404, path
    async with httpx.AsyncClient(base_url=system.ops_url("gateway")) as ops:
        assert (await ops.get("/readyz")).status_code == 200
        assert "refdesk_gateway_" in (await ops.get("/metrics")).text


def test_every_service_connects_to_nats_as_its_own_user(system: LocalSystem):
    """The permission tests mean something only if each process really is that user."""
    for key, child in system.services.items():
        name = key.split("-")[0]
        environ = Path(f"/proc/{child.popen.pid}/environ").read_bytes().split(b"\0")
        url = next(e for e in environ if e.startswith(b"REFDESK_NATS_URL=")).decode()
        assert url.startswith(f"REFDESK_NATS_URL=nats://{name}:"), (key, url.split("@")[-1])


def resident_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_unknown_widget_ids_cost_the_gateway_no_memory(system: LocalSystem):
    """The review's 3,000 requests with 8 kB widget ids added 23 MB to a gateway that cached
    every miss. Ids that cannot be widgets are not even looked up now, nor sent back."""
    pid = system.services["gateway"].popen.pid
    async with httpx.AsyncClient(base_url=system.gateway_url) as http:

        async def probe(i: int) -> None:
            made_up = f"{i:05d}" + "x" * 8000
            answer = await http.get(f"/api/widgets/{made_up}/status")
            assert answer.status_code == 404 and made_up not in answer.text

        await asyncio.gather(*(probe(i) for i in range(100)))  # warm up
        before = resident_kib(pid)
        for start in range(0, 3000, 100):
            await asyncio.gather(*(probe(i) for i in range(start, start + 100)))
        grown = resident_kib(pid) - before
    print(f"3,000 unknown 8 kB widget ids: the gateway grew by {grown} KiB")
    assert grown < 8 * 1024, f"the gateway grew by {grown} KiB"


async def test_at_once_one_address_guessing_many_names_is_checked_only_its_allowance(
    tight: LocalSystem,
):
    """Twenty names at once from one address: its allowance of failures is checked, the
    rest refused unchecked."""
    names = [f"demo-hill-spray{i}" for i in range(20)]
    codes = await wrong_passwords_at_once(tight.gateway_url, names, ["127.0.0.21"])
    assert sorted(codes) == [401] * FAILURES_PER_ADDRESS + [429] * 15, codes


async def test_at_once_many_addresses_guessing_one_name_are_checked_only_its_allowance(
    tight: LocalSystem,
):
    """One name from four addresses, five each, all at once: the name's allowance is
    checked, the rest refused unchecked (each address and pair is within its own)."""
    addresses = [f"127.0.0.{n}" for n in (31, 32, 33, 34)]
    codes = await wrong_passwords_at_once(tight.gateway_url, ["demo-hill-target"] * 5, addresses)
    assert sorted(codes) == [401] * FAILURES_PER_NAME + [429] * 12, codes


async def test_page_views_are_bounded_per_widget_and_refused_plainly(tight: LocalSystem):
    base = tight.gateway_url
    headers = {"Content-Type": "text/plain", "Origin": base}
    async with httpx.AsyncClient(base_url=base) as http:

        async def view(widget: str) -> httpx.Response:
            return await http.post(f"/api/widgets/{widget}/views", content=b"{}", headers=headers)

        answers = [await view("hill") for _ in range(PAGE_VIEW_BURST + 2)]
        codes = [a.status_code for a in answers]
        assert codes == [200] * PAGE_VIEW_BURST + [429, 429], codes
        refused = answers[-1]
        assert refused.json()["code"] == "rate_limited"
        assert refused.json()["retry_after_ms"] > 0 and int(refused.headers["retry-after"]) >= 1
        # Another library's widget has its own allowance; the status stays open to all.
        assert (await view("river")).status_code == 200
        assert (await http.get("/api/widgets/hill/status")).status_code == 200
