"""Every path a chat can take between libraries, partners and the backup service, as a
matrix generated from the relations between who holds a chat and who it goes to, the
ways a chat moves, and what follows.

Each cell asserts what docs/protocol.md answers, the frames each party gets, and who can
read the transcript afterwards; a cell the contract refuses asserts the refusal and that
the chat did not change. A relation, a move or a response added to the lists below is
tested the day it exists.

The module runs its own system on its own database, on Tuesday 24 November 2026 at 10:00
in New York (`tuesday_system`): River is open, the backup service answers in the daytime
too, and River's chats roll over after a few seconds. Hill and River are partners.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx
import pytest
import pytest_asyncio

from deploy.local.system import LocalSystem
from tests.client import (
    ProtocolClient,
    about,
    config_everywhere,
    eventually,
    operator,
    patron,
    signed_in,
)
from tests.conftest import TUESDAY_ROLLOVER_S, tuesday_system
from tests.servers import Servers

DB = "refdesk_paths"


@dataclass(frozen=True)
class Party:
    username: str
    name: str
    institution: str
    queue: str


PARTIES = {
    "ann": Party("demo-hill-ann", "Ann", "hill", "demo-hill"),
    "bob": Party("demo-hill-bob", "Bob", "hill", "demo-hill"),
    "cat": Party("demo-river-cat", "Cat", "river", "demo-river"),
    "dan": Party("demo-backup-dan", "Dan", "backup", "demo-backup"),
}
# Who reads a library's transcripts, by institution (an admin where there is one).
QUEUE_INSTITUTION = {p.queue: p.institution for p in PARTIES.values()}
READERS = {"hill": "demo-hill-admin", "river": "demo-river-cat", "backup": "demo-backup-dan"}
WIDGETS = {"hill": "hill", "river": "river"}
BACKUPS = frozenset({"backup"})
PARTNERS = frozenset({"hill", "river"})  # the module's one partnership


def partners_of(institution: str) -> frozenset[str]:
    return PARTNERS - {institution} if institution in PARTNERS else frozenset()


@dataclass(frozen=True)
class Relation:
    """Who holds the patron's chat (`holder`) and who it may go to (`target`), and what
    the target's institution is to the holder: `own` library, `partner`, `backup`
    service, the patron's `home` library (from the backup service), or `unrelated`.
    `via`: the operators the chat passes through before the holder has it (claimed by
    the first, then transferred on and accepted)."""

    name: Literal["own", "partner", "backup", "home", "unrelated"]
    library: str
    via: tuple[str, ...]
    target: str

    @property
    def holder(self) -> str:
        return self.via[-1]

    @property
    def reachable(self) -> bool:
        return self.name != "unrelated"

    @property
    def needs_flag(self) -> bool:
        return self.name != "own"


RELATIONS = [
    Relation("own", "hill", ("ann",), "bob"),
    Relation("partner", "hill", ("ann",), "cat"),
    Relation("backup", "river", ("cat",), "dan"),
    Relation("home", "river", ("cat", "dan"), "cat"),
    Relation("unrelated", "river", ("cat", "dan"), "ann"),
]
Kind = Literal["operator", "queue"]
Response = Literal["accept", "decline", "cancel", "expire", "reclaim"]
KINDS: list[Kind] = ["operator", "queue"]
RESPONSES: list[Response] = ["accept", "decline", "cancel", "expire", "reclaim"]


def answer_of(relation: Relation, flag: bool) -> str:
    """What `chat.transfer` is answered, by docs/protocol.md: another institution's
    operator or queue is `not_found` unless it is the patron's library, a partner or a
    backup service, and reachable ones outside the library need `cross_institution`."""
    if not relation.reachable:
        return "not_found"
    if relation.needs_flag and not flag:
        return "forbidden"
    return "ack"


@dataclass(frozen=True)
class Cell:
    relation: Relation
    kind: Kind
    flag: bool
    response: Response | None  # None: the offer is refused, nothing follows

    @property
    def id(self) -> str:
        flag = "cross" if self.flag else "plain"
        return f"{self.relation.name}-{self.kind}-{flag}-{self.response or 'refused'}"


def transfer_cells() -> Iterator[Cell]:
    for relation, kind, flag in itertools.product(RELATIONS, KINDS, (False, True)):
        if answer_of(relation, flag) != "ack":
            yield Cell(relation, kind, flag, None)
            continue
        for response in RESPONSES:
            yield Cell(relation, kind, flag, response)


CELLS = list(transfer_cells())


# --- the system and its parties ---------------------------------------------------------


@pytest.fixture(scope="module")
def paths(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    with tuesday_system(servers, tmp_path_factory.mktemp("paths"), DB) as running:
        yield running


@dataclass
class Desk:
    """The module's system with every party signed in, online, monitoring their queue."""

    base: str
    ops: dict[str, ProtocolClient] = field(default_factory=dict)

    async def drain(self) -> None:
        for client in self.ops.values():
            await client.drain()

    async def sign_in(self, who: str) -> ProtocolClient:
        party = PARTIES[who]
        self.ops[who] = await operator(self.base, party.username, [party.queue])
        return self.ops[who]


@pytest_asyncio.fixture(scope="module")
async def desk(paths: LocalSystem) -> AsyncIterator[Desk]:
    async with await signed_in(paths.gateway_url, "demo-admin") as coordinator:
        partners = {
            "name": "demo-westside",
            "institution": "demo",
            "display_name": "Westside libraries",
            "institutions": sorted(PARTNERS),
        }
        made = await coordinator.post("/api/partnerships", json=partners)
        assert made.status_code == 201, made.text
    await config_everywhere([paths.ops_url("gateway"), paths.ops_url("routing")])
    found = Desk(paths.gateway_url)
    for who in PARTIES:
        await found.sign_in(who)
    yield found
    for client in found.ops.values():
        await client.close()


# --- moving a chat along -----------------------------------------------------------------


@dataclass
class Chat:
    patron: ProtocolClient
    id: str
    library: str
    queue: str = ""
    created_at: str = ""
    holders: list[str] = field(default_factory=list)

    @property
    def handled(self) -> list[str]:
        """The institutions whose staff held the chat, first first."""
        return list(dict.fromkeys(PARTIES[h].institution for h in self.holders))

    def seen_by(self, institution: str) -> bool:
        """Who may see and act on the chat (docs/protocol.md): the patron's library, the
        institution whose queue holds it and its partners, and every institution whose
        staff held it. Anyone else is answered `not_found`, as if it did not exist."""
        held_in = QUEUE_INSTITUTION[self.queue]
        return institution in {self.library, held_in, *self.handled, *partners_of(held_in)}


async def _start(desk: Desk, library: str, claimer: str, question: str) -> Chat:
    pat = await patron(desk.base, WIDGETS[library])
    started = await pat.ok(
        {"type": "chat.start", "question": question, "name": "Pat", "email": "pat@example.org"}
    )
    chat = Chat(pat, started["chat_id"], library)
    await pat.expect("chat.queued")
    owner = desk.ops[claimer]
    await owner.expect(about(chat.id, "queue.chat_added"))
    claimed = await owner.ok({"type": "chat.claim", "chat_id": chat.id})
    chat.created_at, chat.queue = claimed["chat"]["created_at"], claimed["chat"]["queue"]
    await pat.expect(about(chat.id, "chat.claimed"))
    chat.holders.append(claimer)
    return chat


def _transfer_frame(chat_id: str, relation: Relation, kind: Kind, flag: bool) -> dict[str, Any]:
    target = PARTIES[relation.target]
    to = {"operator": target.username} if kind == "operator" else {"queue": target.queue}
    frame: dict[str, Any] = {"type": "chat.transfer", "chat_id": chat_id, "to": to}
    if flag:
        frame["cross_institution"] = True
    return frame


async def _hand_over(desk: Desk, chat: Chat, to: str, kind: Kind = "operator") -> None:
    """The holder transfers the chat to `to`, who accepts: the path's setup."""
    holder, target = chat.holders[-1], PARTIES[to]
    dest = {"operator": target.username} if kind == "operator" else {"queue": target.queue}
    reply = await desk.ops[holder].request(
        {"type": "chat.transfer", "chat_id": chat.id, "to": dest, "cross_institution": True}
    )
    assert reply["type"] == "ack", reply
    await desk.ops[to].expect(about(chat.id, "transfer.offer"))
    accepted = await desk.ops[to].ok({"type": "transfer.accept", "chat_id": chat.id})
    chat.queue = accepted["chat"]["queue"]
    await desk.ops[holder].expect(about(chat.id, "transfer.accepted"))
    await chat.patron.expect(about(chat.id, "chat.transferred"))
    chat.holders.append(to)


async def _held_by(desk: Desk, relation: Relation, question: str) -> Chat:
    await desk.drain()  # every cell starts here: no desk sits on unread frames
    chat = await _start(desk, relation.library, relation.via[0], question)
    for nxt in relation.via[1:]:
        await _hand_over(desk, chat, nxt)
    return chat


# --- what follows --------------------------------------------------------------------------


async def _messages_both_ways(desk: Desk, chat: Chat, owner: str) -> None:
    body = f"{PARTIES[owner].name} writes to {chat.id[:6]}"
    await desk.ops[owner].ok({"type": "message", "chat_id": chat.id, "body": body})
    heard = await chat.patron.expect(about(chat.id, "message"))
    staff = {"kind": "operator", "name": PARTIES[owner].name, "id": None}  # no login
    assert (heard["body"], heard["from"]) == (body, staff)
    await chat.patron.ok({"type": "message", "chat_id": chat.id, "body": "Thank you!"})
    heard = await desk.ops[owner].expect(
        lambda f: f["type"] == "message" and f["chat_id"] == chat.id and f["body"] == "Thank you!"
    )
    assert heard["from"]["kind"] == "patron"


async def _refused(client: ProtocolClient, frame: dict[str, Any], code: str) -> dict[str, Any]:
    reply = await client.request(frame)
    assert (reply["type"], reply.get("code")) == ("error", code), (frame, reply)
    return reply


async def _readers(base: str, chat_id: str, may: set[str]) -> None:
    """Once the closed chat is recorded, exactly the institutions in `may` read it."""
    for institution, username in READERS.items():
        async with await signed_in(base, username) as http:
            if institution in may:

                async def closed(http: httpx.AsyncClient = http) -> dict[str, Any] | None:
                    read = await http.get(f"/api/transcripts/{chat_id}")
                    if read.status_code != 200 or read.json()["chat"]["state"] != "closed":
                        return None
                    return dict(read.json())

                await eventually(closed, f"{username} reads {chat_id}, closed")
            else:
                read = await http.get(f"/api/transcripts/{chat_id}")
                assert (read.status_code, read.json()["code"]) == (404, "not_found"), username


FIGURE = {
    "home": "answered_at_home",
    "backup": "answered_by_backup",
    "partner": "answered_by_partners",
}


def _answered_by(library: str, handled: list[str]) -> str:
    """Who a chat counts as answered by in its library's statistics: the first other
    institution that held it (a backup service or a partner), else the library."""
    others = [i for i in handled if i != library]
    if not others:
        return "home"
    return "backup" if others[0] in BACKUPS else "partner"


async def _statistics(base: str, chat: Chat, handled: list[str]) -> None:
    """The chat's library counts it as answered by whoever the contract says, and every
    other institution that held it counts it among those it answered for others."""
    start = datetime.fromisoformat(chat.created_at)
    span = {
        "from": start.isoformat(),
        "to": (start + timedelta(milliseconds=1)).isoformat(),
    }
    figure = FIGURE[_answered_by(chat.library, handled)]
    async with await signed_in(base, READERS[chat.library]) as http:

        async def counted() -> dict[str, Any] | None:
            stats = (await http.get("/api/stats", params=span)).json()
            return dict(stats) if stats["chats"] == 1 and stats[figure] == 1 else None

        await eventually(counted, f"{chat.library} counts {chat.id} under {figure}")
    answerer = next((i for i in handled if i != chat.library), None)
    if answerer is not None:
        async with await signed_in(base, READERS[answerer]) as http:
            stats = (await http.get("/api/stats", params=span)).json()
            assert (stats["chats"], stats["answered_for_others"]) == (0, 1), stats


async def _targets(base: str, who: str, chat_id: str) -> dict[str, str]:
    """The holder's transfer targets: queue name -> relation."""
    async with await signed_in(base, PARTIES[who].username) as http:
        listed = await http.get("/api/transfer-targets", params={"chat_id": chat_id})
        assert listed.status_code == 200, listed.text
        return {t["name"]: t["relation"] for t in listed.json()["targets"] if t["kind"] == "queue"}


def _reach(relation_holder: str, library: str) -> dict[str, str]:
    """The queues an institution's operator may hand a library's chat to, by relation:
    its own, the patron's library, partners, backup services."""
    partners = partners_of(relation_holder)
    reach = {relation_holder: "own"}
    reach.setdefault(library, "home")
    for name in sorted(partners):
        reach.setdefault(name, "partner")
    reach.setdefault("backup", "backup")
    return {f"demo-{inst}": rel for inst, rel in reach.items()}


async def _work_and_close(desk: Desk, chat: Chat, owner: str) -> None:
    """Everything an owner does with a chat that came to them, and what follows: messages
    both ways, a colleague who held it before cannot write, tags, transfer targets, a
    ticket, close; then who reads the transcript and how statistics count it."""
    party = PARTIES[owner]
    handled = chat.handled
    await _messages_both_ways(desk, chat, owner)
    for before in sorted({h for h in chat.holders if h != owner} & set(desk.ops)):
        await _refused(
            desk.ops[before],
            {"type": "message", "chat_id": chat.id, "body": "still mine?"},
            "forbidden",
        )
    tagged = await desk.ops[owner].ok({"type": "chat.tag", "chat_id": chat.id, "tags": ["paths"]})
    assert tagged["chat"]["tags"] == ["paths"]
    assert tagged["chat"]["handled_by"] == handled
    assert await _targets(desk.base, owner, chat.id) == _reach(party.institution, chat.library)
    async with await signed_in(desk.base, party.username) as http:
        ticket = await http.post("/api/tickets", json={"chat_id": chat.id})
        assert ticket.status_code == 201, ticket.text
        assert (ticket.json()["institution"], ticket.json()["email"]) == (
            party.institution,
            "pat@example.org",
        )
    closed = await desk.ops[owner].ok({"type": "chat.close", "chat_id": chat.id})
    assert closed["chat"]["state"] == "closed"
    assert (await chat.patron.expect(about(chat.id, "chat.closed")))["state"] == "closed"
    await _readers(desk.base, chat.id, {chat.library, *handled})
    await _statistics(desk.base, chat, handled)
    await chat.patron.close()


async def _keep_and_close(desk: Desk, chat: Chat, target: str) -> None:
    """The offer ended without a new owner: the holder still answers, the target cannot
    write, and the chat stays with the institutions that held it."""
    holder = chat.holders[-1]
    await _messages_both_ways(desk, chat, holder)
    code = "forbidden" if chat.seen_by(PARTIES[target].institution) else "not_found"
    await _refused(desk.ops[target], {"type": "message", "chat_id": chat.id, "body": "mine?"}, code)
    await desk.ops[holder].ok({"type": "chat.close", "chat_id": chat.id})
    await _readers(desk.base, chat.id, {chat.library, *chat.handled})
    await chat.patron.close()


# --- the matrix ----------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS, ids=[c.id for c in CELLS])
async def test_transfer(desk: Desk, cell: Cell) -> None:
    relation = cell.relation
    chat = await _held_by(desk, relation, f"Path {cell.id}?")
    holder, target = desk.ops[relation.holder], desk.ops[relation.target]
    frame = _transfer_frame(chat.id, relation, cell.kind, cell.flag)
    expected = answer_of(relation, cell.flag)
    if cell.response is None:
        heard_before = len(chat.patron.frames)
        refused = await _refused(holder, frame, expected)
        if expected == "forbidden":
            assert "cross_institution" in refused["message"]
        # Nothing changed: the holder still owns the chat, and nobody heard of an offer.
        await _keep_and_close(desk, chat, relation.target)
        after = chat.patron.frames[heard_before:]
        assert not [f for f in after if f["type"] == "chat.transferring"]
        assert not [f for f in target._pending if about(chat.id, "transfer.offer")(f)]
        return

    offered = await holder.ok(frame)
    assert offered["targets"] == [PARTIES[relation.target].username]
    assert offered["chat"]["state"] == "transferring"
    offer = await target.expect(about(chat.id, "transfer.offer"))
    assert offer["from"] == PARTIES[relation.holder].name
    assert offer["to_queue"] == (PARTIES[relation.target].queue if cell.kind == "queue" else None)
    assert [m["body"] for m in offer["messages"]][:1] == [f"Path {cell.id}?"]
    await chat.patron.expect(about(chat.id, "chat.transferring"))

    if cell.response == "accept":
        accepted = await target.ok({"type": "transfer.accept", "chat_id": chat.id})
        moved = accepted["chat"]
        assert (moved["owner"], moved["state"]) == (PARTIES[relation.target].username, "active")
        assert moved["queue"] == (
            PARTIES[relation.target].queue if cell.kind == "queue" else offer["chat"]["queue"]
        )
        told = await holder.expect(about(chat.id, "transfer.accepted"))
        assert told["operator"] == PARTIES[relation.target].username
        heard = await chat.patron.expect(about(chat.id, "chat.transferred"))
        assert heard["operator"] == PARTIES[relation.target].name
        chat.holders.append(relation.target)
        chat.queue = moved["queue"]
        await _work_and_close(desk, chat, relation.target)
        return

    if cell.response == "decline":
        assert (await target.ok({"type": "transfer.decline", "chat_id": chat.id}))["state"]
        ended = await holder.expect(about(chat.id, "transfer.expired"))
        assert ended["reason"] == "declined"
        late = await _refused(target, {"type": "transfer.accept", "chat_id": chat.id}, "conflict")
        assert late["owner"] == PARTIES[relation.holder].username
    elif cell.response == "cancel":
        cancelled = await holder.ok({"type": "transfer.cancel", "chat_id": chat.id})
        assert cancelled["state"] == "active"
        withdrawn = await target.expect(about(chat.id, "transfer.withdrawn"))
        assert withdrawn["reason"] == "reclaimed"
        await _refused(target, {"type": "transfer.accept", "chat_id": chat.id}, "conflict")
    elif cell.response == "expire":
        for party in (holder, target):
            ended = await party.expect(about(chat.id, "transfer.expired"), timeout=10)
            assert ended["reason"] == "timeout"
        await _refused(target, {"type": "transfer.accept", "chat_id": chat.id}, "conflict")
    elif cell.response == "reclaim":
        await holder.ok({"type": "message", "chat_id": chat.id, "body": "One more thing."})
        assert (await chat.patron.expect(about(chat.id, "message")))["body"] == "One more thing."
        withdrawn = await target.expect(about(chat.id, "transfer.withdrawn"))
        assert withdrawn["reason"] == "reclaimed"
        late = await _refused(target, {"type": "transfer.accept", "chat_id": chat.id}, "conflict")
        assert late["owner"] == PARTIES[relation.holder].username
    await _keep_and_close(desk, chat, relation.target)


# --- rollover and take-over ----------------------------------------------------------------


async def test_rollover_to_the_backup_service(desk: Desk) -> None:
    """Nobody at River claims in time: the chat rolls to the backup service, whose
    operator answers it for River."""
    await desk.drain()
    pat = await patron(desk.base, "river")
    started = await pat.ok(
        {"type": "chat.start", "question": "Rolling?", "email": "pat@example.org"}
    )
    chat = Chat(pat, started["chat_id"], "river")
    rolled = await pat.expect(about(chat.id, "chat.rolled_over"), timeout=TUESDAY_ROLLOVER_S + 10)
    assert (rolled["from_queue"], rolled["queue"]) == ("demo-river", "demo-backup")
    await desk.ops["dan"].expect(about(chat.id, "queue.chat_added"))
    claimed = await desk.ops["dan"].ok({"type": "chat.claim", "chat_id": chat.id})
    chat.created_at, chat.queue = claimed["chat"]["created_at"], claimed["chat"]["queue"]
    assert claimed["chat"]["answered_institution"] == "backup"
    chat.holders.append("dan")
    await pat.expect(about(chat.id, "chat.claimed"))
    await _work_and_close(desk, chat, "dan")


TAKE_OVERS = [r for r in RELATIONS if r.reachable]


@pytest.mark.parametrize("relation", TAKE_OVERS, ids=[r.name for r in TAKE_OVERS])
async def test_take_over_after_a_drop(desk: Desk, relation: Relation) -> None:
    """The operator a chat was handed to (by operator: it stays in its queue) drops.
    Whoever monitors that queue may take it over, whatever their institution; anyone else
    is refused (`forbidden`, or `not_found` where the chat is hidden) and nothing changes.
    With nobody to take it, the operator who dropped gets it back on signing in again."""
    chat = await _held_by(desk, relation, f"Take-over {relation.name}?")
    await _hand_over(desk, chat, relation.target)
    desk.ops.pop(relation.target).crash()
    watchers = [w for w, p in PARTIES.items() if p.queue == chat.queue and w in desk.ops]
    for who in watchers:
        await desk.ops[who].expect(about(chat.id, "chat.owner_left"), timeout=10)
    for who in sorted(set(desk.ops) - set(watchers)):
        code = "forbidden" if chat.seen_by(PARTIES[who].institution) else "not_found"
        await _refused(desk.ops[who], {"type": "chat.take", "chat_id": chat.id}, code)
    if not watchers:
        back = await desk.sign_in(relation.target)
        resumed = await back.expect(about(chat.id, "chat.resumed"))
        assert resumed["chat"]["owner"] == PARTIES[relation.target].username
        await _work_and_close(desk, chat, relation.target)
        return
    taker = watchers[0]
    try:
        taken = await desk.ops[taker].ok({"type": "chat.take", "chat_id": chat.id})
        assert taken["chat"]["owner"] == PARTIES[taker].username
        heard = await chat.patron.expect(about(chat.id, "chat.transferred"))
        assert heard["operator"] == PARTIES[taker].name
        chat.holders.append(taker)
        await _work_and_close(desk, chat, taker)
    finally:
        await desk.sign_in(relation.target)
