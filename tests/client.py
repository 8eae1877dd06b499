"""A WebSocket client for tests that speaks PROTOCOL.md and checks every server frame
against the protocol's models, so that the gateway's output cannot drift from its contract;
and the helpers every end-to-end journey shares (signing in, a claimed chat, a transcript
once written, accounts to make, what a mail the tickets service sends must look like), kept
here so no test module imports another."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, TypeVar

import httpx
import websockets
from websockets.typing import Origin

from deploy.local.system import LocalSystem
from shared.schemas.protocol import ACK_OF, PATRON_SERVER_FRAME, SERVER_FRAME

_refs = itertools.count(1)


class ProtocolClient:
    def __init__(self, ws: websockets.ClientConnection, patron: bool = False) -> None:
        self.ws = ws
        # A patron's socket: every frame must also be one a patron may receive (never a
        # staff login or the staff's view of a chat).
        self.patron = patron
        self.frames: list[dict[str, Any]] = []
        self._pending: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, url: str, origin: str | None = None) -> ProtocolClient:
        """`origin`: as a browser page there would send it (none by default, as a program)."""
        return cls(
            await websockets.connect(
                url,
                open_timeout=5,
                max_size=2**20,
                origin=None if origin is None else Origin(origin),
            ),
            patron="/ws/patron" in url,
        )

    async def close(self) -> None:
        await self.ws.close()

    def crash(self) -> None:
        """Drop the connection without a closing handshake, as a crashed browser would."""
        self.ws.transport.abort()

    async def _next(self, timeout: float) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        frame: dict[str, Any] = json.loads(raw)
        SERVER_FRAME.validate_python(frame)
        if self.patron:
            PATRON_SERVER_FRAME.validate_python(frame)
        self.frames.append(frame)
        return frame

    async def drain(self) -> None:
        """Take in every frame already received, kept for `expect`: a client that sits
        idle while frames arrive stops reading its connection once its buffer is full,
        and then misses the pongs that keep it open."""
        while True:
            try:
                self._pending.append(await self._next(0.01))
            except TimeoutError:
                return

    async def send_raw(self, text: str) -> None:
        await self.ws.send(text)

    async def request(self, frame: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """Send a frame with a fresh ref; return its ack or error (other frames are kept).
        An ack is checked against the frame type's own model, which forbids unknown fields."""
        ref = f"r{next(_refs)}"
        await self.ws.send(json.dumps({**frame, "ref": ref}))
        reply = await self.expect(lambda f: f.get("ref") == ref, timeout)
        if reply["type"] == "ack":
            ACK_OF[frame["type"]].model_validate(reply)
        return reply

    async def ok(self, frame: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        reply = await self.request(frame, timeout)
        assert reply["type"] == "ack", reply
        return reply

    async def expect(self, match: Any, timeout: float = 5.0) -> dict[str, Any]:
        """The first frame (already received or new) matching a type name or a predicate."""
        test = (lambda f: f["type"] == match) if isinstance(match, str) else match
        for index, frame in enumerate(self._pending):
            if test(frame):
                return self._pending.pop(index)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no frame matching {match!r}; pending {self._pending}")
            frame = await self._next(left)
            if test(frame):
                return frame
            self._pending.append(frame)


T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], what: str, timeout: float = 10.0
) -> T:
    """Ask `probe` until it answers (anything but None) and return that: the one way tests
    wait for state only HTTP shows (a transcript written, a setting in force), since HTTP
    pushes nothing. Fails naming `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (found := await probe()) is None:
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.1)
    return found


async def signed_in(base_url: str, username: str) -> httpx.AsyncClient:
    """An HTTP client carrying the user's token (close it, or use it in `async with`)."""
    token = await login(base_url, username)
    return httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"})


async def login(base_url: str, username: str, password: str = "refdesk-demo") -> str:
    async with httpx.AsyncClient(base_url=base_url) as http:
        response = await http.post(
            "/api/auth/login", json={"username": username, "password": password}
        )
        response.raise_for_status()
        token: str = response.json()["token"]
        return token


async def operator(
    base_url: str,
    username: str,
    queues: list[str],
    status: str = "online",
    password: str = "refdesk-demo",
) -> ProtocolClient:
    """An operator signed in, with a status, monitoring queues (snapshot consumed)."""
    token = await login(base_url, username, password)
    client = await ProtocolClient.connect(base_url.replace("http", "ws") + "/ws/operator")
    await client.ok({"type": "auth", "token": token})
    session = await client.expect("session")
    if session["monitoring"]:
        await client.expect("queue.snapshot")  # the desk as they left it
    await client.ok({"type": "status.set", "status": status})
    if queues or session["monitoring"]:
        await client.ok({"type": "monitor.set", "queues": queues})
        await client.expect("queue.snapshot")
    return client


async def patron(base_url: str, widget: str, token: str | None = None) -> ProtocolClient:
    client = await ProtocolClient.connect(
        base_url.replace("http", "ws") + f"/ws/patron?widget={widget}"
    )
    await client.ok({"type": "hello", "token": token})
    await client.expect("welcome")
    return client


async def widget_says(pat: ProtocolClient, status: dict[str, Any]) -> None:
    """The widget's status as welcomed, or as pushed within a tick when an operator has
    only just signed in."""
    if pat.frames[-1]["widget"] != status:
        pushed = await pat.expect("widget.status", timeout=2.0)
        assert {k: pushed[k] for k in status} == status


def config_revision(ops_url: str) -> int:
    """The config bucket revision a gateway or routing replica has applied (its metric)."""
    with urllib.request.urlopen(f"{ops_url}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("refdesk_config_revision "):
                return int(float(line.split()[-1]))
    raise AssertionError(f"no refdesk_config_revision at {ops_url}")


async def config_everywhere(ops_urls: Iterable[str], timeout: float = 10.0) -> float:
    """Wait until every replica has applied the configuration the first one has (an admin's
    change is answered once the replica that took it has it); returns how long it took."""
    urls = list(ops_urls)
    saved = config_revision(urls[0])
    started = time.monotonic()

    async def all_there() -> bool | None:
        return True if all(config_revision(url) >= saved for url in urls) else None

    await eventually(all_there, f"config revision {saved} on every replica", timeout)
    return time.monotonic() - started


def about(chat_id: str, kind: str):  # type: ignore[no-untyped-def]
    """Matches a frame of type `kind` about one chat (by `chat_id`, or `chat.id`)."""

    def match(frame: dict) -> bool:
        ident = frame.get("chat_id") or (frame.get("chat") or {}).get("id")
        return frame["type"] == kind and ident == chat_id

    return match


@asynccontextmanager
async def clients(*made: ProtocolClient) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for client in made:
            await client.close()


async def claimed_chat(
    system: LocalSystem, owner: ProtocolClient, question: str = "Where are the theses?"
) -> tuple[ProtocolClient, str, str]:
    """A patron's chat claimed by `owner`: (patron client, chat id, patron's token)."""
    pat = await patron(system.gateway_url, "hill")
    token = pat.frames[-1]["token"]
    chat_id = (await pat.ok({"type": "chat.start", "question": question, "name": "Pat"}))["chat_id"]
    await owner.expect(about(chat_id, "queue.chat_added"))
    await owner.ok({"type": "chat.claim", "chat_id": chat_id})
    await pat.expect("chat.claimed")
    return pat, chat_id, token


async def transcript(
    system: LocalSystem,
    token: str,
    chat_id: str,
    messages: int,
    state: str = "closed",
    timeout: float = 10.0,
) -> dict:
    """The transcript once it holds `messages` messages and the chat is in `state`."""
    async with httpx.AsyncClient(base_url=system.gateway_url) as http:

        async def complete() -> dict | None:
            r = await http.get(
                f"/api/transcripts/{chat_id}", headers={"Authorization": f"Bearer {token}"}
            )
            body = r.json() if r.status_code == 200 else None
            if body and len(body["messages"]) == messages and body["chat"]["state"] == state:
                return body
            return None

        return await eventually(
            complete, f"transcript of {chat_id} with {messages} messages, {state}", timeout
        )


async def wrong_passwords_at_once(base: str, names: list[str], addresses: list[str]) -> list[int]:
    """One wrong password for each name from each address (a loopback address of its
    own: the gateway counts the connection's), all sent at once; the status codes."""
    transports = {a: httpx.AsyncHTTPTransport(local_address=a) for a in addresses}
    # The checked ones each hash a password: on two busy cores, all at once, that can take
    # longer than httpx's 5 s default, which is not what these tests are about.
    sessions = {
        a: httpx.AsyncClient(base_url=base, transport=t, timeout=30) for a, t in transports.items()
    }
    try:
        answers = await asyncio.gather(
            *(
                sessions[a].post("/api/auth/login", json={"username": n, "password": "guess"})
                for a in addresses
                for n in names
            )
        )
    finally:
        for http in sessions.values():
            await http.aclose()
    return [a.status_code for a in answers]


def hill_queue(name: str, display_name: str) -> dict[str, Any]:
    """A queue of hill's open on Mondays 9 to 5: what a test makes to change and delete."""
    return {
        "name": name,
        "institution": "hill",
        "display_name": display_name,
        "hours": [{"day": "mon", "open": "09:00", "close": "17:00"}],
    }


async def create_record(http: httpx.AsyncClient, kind: str, record: dict[str, Any]) -> None:
    """`record` created through the admin API (`kind`: its collection, `queues` say)."""
    answer = await http.post(f"/api/{kind}", json=record)
    assert answer.status_code == 201, answer.text


@asynccontextmanager
async def scratch_admin(
    base_url: str, kind: str, record: dict[str, Any], key: str
) -> AsyncIterator[httpx.AsyncClient]:
    """Hill's admin, signed in, with `record` created for the test and deleted after it."""
    http = await signed_in(base_url, "demo-hill-admin")
    try:
        await create_record(http, kind, record)
        yield http
    finally:
        await http.delete(f"/api/{kind}/{key}")
        await http.aclose()


PASSWORD = "tall-stacks-quiet-reading-room"


def fresh(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def account(username: str, institution: str, role: str = "operator", **more: Any) -> dict:
    return {
        "username": username,
        "institution": institution,
        "role": role,
        "display_name": "Newt",
        "password": PASSWORD,
        **more,
    }


# What a letter has, each once: nothing else (no Bcc, Cc, second To or Content-Type). Written
# out here rather than read from the service, so that the tests hold the service to it.
LETTER = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
)


def assert_a_letter_of(
    data: bytes, to: str, subject: str | None = None, also: tuple[str, ...] = ()
) -> EmailMessage:
    """A mail's bytes: a letter's headers (and `also`, what the deployment adds) and no
    other, every header line printable ASCII (nothing a server or reader could take for a
    line break), `to` the one recipient, and the subject read back as it was written; the
    mail as read."""
    expected = sorted((*LETTER, *also))
    head = data.split(b"\r\n\r\n", 1)[0]
    lines = head.split(b"\r\n")
    assert all(all(32 <= c < 127 or c == 9 for c in line) for line in lines), head
    named = [line.split(b":", 1)[0].decode().lower() for line in lines if line[:1] not in b" \t"]
    assert sorted(named) == expected, head
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert sorted(name.lower() for name in message.keys()) == expected, head
    assert [a.addr_spec for a in message["To"].addresses] == [to]
    if subject is not None:
        assert str(message["Subject"]) == subject
    return message
