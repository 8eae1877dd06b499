"""What each service's NATS user may and may not do, on a real nats-server configured as
`make run` configures it (deploy/local/nats_auth.py).

Streams and buckets: the cells are generated from shared/reach.py, the one table of who
owns, reads, writes and purges each stream and bucket and who owns each durable consumer.
Every user tries every stream and bucket by every JetStream API path (consumer create
without a name, with one, with one and a filter; durable create; next messages; direct get,
by payload and by subject; message get; stream info; listening to its subjects), writes to
it, changes its settings, destroys it, purges it, touches each durable consumer, and
listens on every inbox. What the table does not give must be refused, so a grant that
reaches further fails here; what it gives must be answered by the server.

Refused: the server answers with a permissions violation (nats-py hands it to the error
callback). Allowed: the server answers the request (often with an error of JetStream's
own: the requests are made to change nothing, e.g. a stream update whose payload names
another stream, a write that expects a sequence the subject never had). Subjects use the
token `permtest`, which no service serves, so the session's system is not disturbed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import NotFoundError

from deploy.local import nats_auth
from deploy.local.processes import free_port
from deploy.local.system import start_nats
from shared import reach, subjects
from shared.bus import BucketFollower, Bus, ChatFollower, flushed
from shared.schemas.events import ChatRecord
from tests.client import eventually
from tests.factories import started
from tests.servers import Servers

USERS = nats_auth.SERVICES
# A consumer name no service uses.
PERMTEST = "permtest"
# Consumer names to try: a grant that puts a stream's name where the server reads the
# consumer's (`$JS.API.CONSUMER.*.*.<stream>.>`) lets its holder make a consumer named after
# that stream on any other stream.
NAMES = (PERMTEST, *(s.name for s in reach.STREAMS))
# An expected last sequence no subject ever had: a write that gets this far is refused by
# the stream itself, and nothing is stored.
NEVER = str(2**62)


@dataclass(frozen=True)
class Cell:
    """One user doing one thing: `publish` (a request, with the user's own inbox for the
    answer) or `subscribe` to `subject`; `allowed` by the table or not."""

    path: str
    subject: str
    allowed: bool
    kind: str = "publish"
    payload: bytes = b"{}"
    headers: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        verdict = "allowed" if self.allowed else "refused"
        return f"{self.path}: {self.kind} {self.subject} ({verdict})"


def sample(stream: reach.Stream) -> str:
    """A subject of the stream that no service uses."""
    return stream.subjects.replace("*", PERMTEST).replace(">", PERMTEST)


def stream_cells(user: str, stream: reach.Stream) -> list[Cell]:
    """Every way `user` could read, write, reconfigure or destroy `stream`."""
    s = stream.name
    reads = user in stream.read_by
    # A create payload for another stream: the server refuses it (stream name mismatch)
    # once the permission check has let it through, so nothing is ever made.
    elsewhere = json.dumps({"stream_name": "permtest_elsewhere", "config": {}}).encode()
    settings = json.dumps({"name": "permtest_elsewhere", "subjects": ["permtest.x"]}).encode()
    cells = [
        # Named in the payload only: no grant could tell whose consumer it makes.
        Cell("consumer create, no name", subjects.js_consumer_create(s), False),
    ]
    for name in NAMES:
        cells += [
            Cell(
                f"consumer create {name}",
                subjects.js_consumer_create(s, name),
                reads,
                "publish",
                elsewhere,
            ),
            Cell(
                f"consumer create {name} with filter",
                subjects.js_consumer_create(s, name, stream.subjects),
                reads,
                "publish",
                elsewhere,
            ),
            Cell(
                f"durable create {name}",
                subjects.js_durable_create(s, name),
                reads,
                "publish",
                elsewhere,
            ),
            Cell(f"consumer {name} next", subjects.js_consumer_api("MSG.NEXT", s, name), reads),
            Cell(f"consumer {name} info", subjects.js_consumer_api("INFO", s, name), reads),
            Cell(f"consumer {name} delete", subjects.js_consumer_api("DELETE", s, name), reads),
        ]
    cells += [
        Cell("direct get", subjects.js_direct_get(s), reads),
        Cell("direct get by subject", subjects.js_direct_get(s, sample(stream)), reads),
        Cell("message get", subjects.js_stream_api("MSG.GET", s), reads),
        Cell("stream info", subjects.js_stream_api("INFO", s), reads),
        Cell(
            "write",
            sample(stream),
            user in stream.written_by,
            "publish",
            b"permtest",
            (("Nats-Expected-Last-Subject-Sequence", NEVER),),
        ),
        Cell(
            "stream create",
            subjects.js_stream_api("CREATE", s),
            user == stream.owner,
            "publish",
            settings,
        ),
        Cell(
            "stream update",
            subjects.js_stream_api("UPDATE", s),
            user == stream.owner,
            "publish",
            settings,
        ),
        Cell("stream delete", subjects.js_stream_api("DELETE", s), False),
        Cell("message delete", subjects.js_stream_api("MSG.DELETE", s), False),
        Cell(
            "purge",
            subjects.js_stream_api("PURGE", s),
            user in stream.purgers,
            "publish",
            json.dumps({"filter": sample(stream)}).encode(),
        ),
    ]
    if not reads:
        cells.append(Cell("listening to its subjects", stream.subjects, False, "subscribe"))
    return cells


def consumer_cells(user: str, consumer: reach.Consumer) -> list[Cell]:
    """Another service's durable consumer is out of reach whatever the path; its owner may
    look at it (nothing more is tried: the session's system may be using it)."""
    s, c = consumer.stream, consumer.name
    if user == consumer.owner:
        return [Cell("own consumer's info", subjects.js_consumer_api("INFO", s, c), True)]
    ack = subjects.js_acks(s, c).replace(">", "1.1.1.1.1")
    flow = subjects.js_flow_control(s, c).replace(">", PERMTEST)
    return [
        Cell("create (update) it", subjects.js_consumer_create(s, c), False),
        Cell(
            "create (update) it with a filter",
            subjects.js_consumer_create(s, c, reach.stream(s).subjects),
            False,
        ),
        Cell("durable create", subjects.js_durable_create(s, c), False),
        Cell("its info", subjects.js_consumer_api("INFO", s, c), False),
        Cell("delete it", subjects.js_consumer_api("DELETE", s, c), False),
        Cell("take its messages", subjects.js_consumer_api("MSG.NEXT", s, c), False),
        Cell("acknowledge for it", ack, False),
        Cell("answer its flow control", flow, False),
    ]


def inbox_cells(user: str) -> list[Cell]:
    """Replies and deliveries: a user listens on its own inboxes and nobody else's."""
    others = [u for u in (*USERS, nats_auth.ADMIN) if u != user]
    return [
        Cell("own inboxes", subjects.inboxes(user), True, "subscribe"),
        Cell("everyone's inboxes", subjects.inboxes(None), False, "subscribe"),
        Cell("everything", ">", False, "subscribe"),
        *(
            Cell(f"{other}'s inboxes", subjects.inboxes(other), False, "subscribe")
            for other in others
        ),
    ]


GROUPS = [s.name for s in reach.STREAMS] + ["consumers", "inboxes"]


def cells(user: str, group: str) -> list[Cell]:
    if group == "consumers":
        return [cell for c in reach.CONSUMERS for cell in consumer_cells(user, c)]
    if group == "inboxes":
        return inbox_cells(user)
    return stream_cells(user, reach.stream(group))


def all_cells() -> list[Cell]:
    return [cell for user in USERS for group in GROUPS for cell in cells(user, group)]


class Connection:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.nc: Client | None = None

    async def open(self, url: str, user: str | None = None) -> Connection:
        async def on_error(exc: Exception) -> None:
            self.errors.append(str(exc).lower())

        self.nc = await nats.connect(
            url,
            error_cb=on_error,
            allow_reconnect=False,
            inbox_prefix=subjects.inbox_prefix(user),
        )
        return self

    def said(self, subject: str, what: str = "publish") -> bool:
        # nats-py hands the server's message on in lower case.
        said = f'permissions violation for {what} to "{subject.lower()}"'
        return any(said in e for e in self.errors)

    async def violated(self, subject: str, what: str = "publish") -> bool | None:
        return True if self.said(subject, what) else None


def url_of(servers: Servers, user: str) -> str:
    return nats_auth.url_for(servers.nats_url, user, servers.nats_users[user])


@pytest_asyncio.fixture
async def admin(servers: Servers) -> AsyncIterator[Client]:
    nc = await nats.connect(servers.nats_url)
    yield nc
    await nc.close()


async def _answered(nc: Client, cell: Cell) -> bool:
    """Whether the server answered the request (JetStream's reply, its error, or "no
    responders" for an API whose stream or consumer is not there)."""
    try:
        await nc.request(cell.subject, cell.payload, timeout=3, headers=dict(cell.headers) or None)
    except NoRespondersError:
        return True
    except NatsTimeout:
        return False
    return True


async def _heard(user: Connection, admin: Client, cell: Cell) -> bool:
    """An allowed subscription (to inboxes): a message from the admin arrives."""
    assert user.nc is not None
    sub = await user.nc.subscribe(cell.subject)
    await flushed(user.nc)
    target = cell.subject.replace(">", PERMTEST)
    await admin.publish(target, b"permtest")
    try:
        heard = await sub.next_msg(timeout=3)
    except NatsTimeout:
        return False
    finally:
        await sub.unsubscribe()
    return heard.data == b"permtest"


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("user", USERS)
async def test_each_user_reaches_only_the_streams_the_table_gives_it(
    servers: Servers, admin: Client, user: str, group: str
):
    user_conn = await Connection().open(url_of(servers, user), user)
    nc = user_conn.nc
    assert nc is not None
    table = cells(user, group)
    try:
        refused = [c for c in table if not c.allowed]
        for cell in refused:
            if cell.kind == "subscribe":
                await nc.subscribe(cell.subject)
            else:
                reply = nc.new_inbox()
                await nc.publish(cell.subject, cell.payload, reply=reply)
        await flushed(nc)

        async def all_refused() -> bool | None:
            missing = [c for c in refused if not user_conn.said(c.subject, _what(c))]
            return True if not missing else None

        try:
            await eventually(all_refused, f"{user} refused on {group}", timeout=5)
        except AssertionError:
            pass
        wrong = [str(c) for c in refused if not user_conn.said(c.subject, _what(c))]

        allowed = [c for c in table if c.allowed]

        async def works(cell: Cell) -> bool:
            if cell.kind == "subscribe":
                return await _heard(user_conn, admin, cell)
            return await _answered(nc, cell)

        answered = await asyncio.gather(*(works(cell) for cell in allowed))
        for cell, ok in zip(allowed, answered, strict=True):
            if not ok or user_conn.said(cell.subject, _what(cell)):
                wrong.append(str(cell))
        assert not wrong, f"{user} on {group}, not as the table says:\n" + "\n".join(wrong)
    finally:
        await nc.close()


def _what(cell: Cell) -> str:
    return "subscription" if cell.kind == "subscribe" else "publish"


def test_the_generated_table_covers_every_user_stream_and_path():
    """The shape of the generated test (and a floor on it: a table that shrank by mistake
    would test less)."""
    table = all_cells()
    assert {s.owner for s in reach.STREAMS} | {c.owner for c in reach.CONSUMERS} <= set(USERS)
    for stream in reach.STREAMS:
        assert stream.read_by | stream.written_by | stream.purgers <= set(USERS)
        on_it = [c for c in table if f".{stream.name}" in c.subject]
        assert len(on_it) >= len(USERS) * (11 + 6 * len(NAMES))
    assert len(table) >= len(USERS) * len(reach.STREAMS) * (11 + 6 * len(NAMES))


# --- core subjects: requests, events ---------------------------------------------------

ALLOWED = {
    "gateway": [
        "routing.permtest.permtest",
        "directory.permtest.permtest",
        "chat.permtest.x.typing",
    ],
    "routing": ["queue.permtest.evt", "widget.permtest.x.status"],
    "presence": ["presence.permtest.evt"],
    "transcripts": [],
    "tickets": ["ticket.permtest.evt"],
    "directory": [],
}
REFUSED = {
    # Only routing writes chat events; only the directory writes configuration.
    "gateway": ["chat.permtest.x.evt", "$KV.config.permtest", "presence.permtest.evt"],
    # Only the gateway makes client-facing requests.
    "routing": ["routing.permtest.claim", "directory.permtest.save_user", "$KV.config.permtest"],
    "presence": ["chat.permtest.x.evt", "routing.permtest.permtest", "$KV.config.permtest"],
    "transcripts": ["chat.permtest.x.evt", "transcripts.permtest.get", "$KV.presence.permtest"],
    "tickets": ["chat.permtest.x.evt", "tickets.permtest.create"],
    "directory": ["chat.permtest.x.evt", "presence.permtest.evt", "$JS.API.STREAM.LIST"],
}


@pytest.mark.parametrize("service", USERS)
async def test_each_service_publishes_only_what_it_must(
    servers: Servers, admin: Client, service: str
):
    user = await Connection().open(url_of(servers, service), service)
    assert user.nc is not None
    try:
        for subject in ALLOWED[service]:
            sub = await admin.subscribe(subject)
            await flushed(admin)
            await user.nc.publish(subject, b"permtest")
            await user.nc.flush()
            heard = await sub.next_msg(timeout=5)
            assert heard.data == b"permtest", subject
            await sub.unsubscribe()
        for subject in REFUSED[service]:
            await user.nc.publish(subject, b"permtest")
            await user.nc.flush()
            await eventually(lambda s=subject: user.violated(s), f"{service} refused {subject}")
    finally:
        await user.nc.close()


async def test_a_service_cannot_listen_to_another_services_requests(servers: Servers):
    for service, subject in (("gateway", "routing.*.*"), ("tickets", "chat.*.*.evt")):
        user = await Connection().open(url_of(servers, service), service)
        assert user.nc is not None
        try:
            await user.nc.subscribe(subject)
            await user.nc.flush()
            await eventually(
                lambda s=subject, u=user: u.violated(s, "subscription"),
                f"{service} refused a subscription to {subject}",
            )
        finally:
            await user.nc.close()


async def test_a_client_without_credentials_is_refused(servers: Servers):
    bare = servers.nats_url.split("@", 1)[1]
    with pytest.raises(Exception, match=r"(?i)authorization"):
        await asyncio.wait_for(
            nats.connect(f"nats://{bare}", allow_reconnect=False, max_reconnect_attempts=0),
            timeout=10,
        )


# --- the services' own use: inboxes, named consumers, owners ---------------------------


async def test_each_service_gets_its_answers_and_deliveries_in_its_own_inboxes(
    servers: Servers, bus: Bus
):
    """Requests, JetStream publishes, gets, ordered consumers (a chat's history, the chat
    follower, a bucket watcher) and a pull consumer, each as the service that uses them:
    with the grants above, any of them still answered in `_INBOX.` would never hear back."""
    await bus.key_value(subjects.CONFIG_BUCKET)
    opened = started(institution="permtest")
    chat = opened.state
    seq = await bus.append_chat_record(ChatRecord(state=chat, events=opened.events), after=0)

    gateway = await Bus.connect(url_of(servers, "gateway"), "tests-gateway")
    routing = await Bus.connect(url_of(servers, "routing"), "tests-routing")
    transcripts = await Bus.connect(url_of(servers, "transcripts"), "tests-transcripts")
    durable = f"permtest-{uuid.uuid4().hex[:8]}"
    try:
        for user, own in (("gateway", gateway), ("routing", routing)):
            assert own.nc.new_inbox().startswith(subjects.inbox_prefix(user) + ".")
            assert (await own.last_chat_record(chat.chat.id, "permtest")) is not None
        await gateway.chat_history("permtest", chat.chat.id)

        seen: list[str] = []
        follower = ChatFollower(routing, lambda msg: seen.append(msg.subject))
        await follower.start()
        await follower.stop()
        assert subjects.chat_events("permtest", chat.chat.id) in seen

        config = BucketFollower(await gateway.key_value(subjects.CONFIG_BUCKET), lambda *_: None)
        await config.start()
        await config.stop()

        sub = await transcripts.js.pull_subscribe(
            subjects.chat_events_of(chat.chat.id, "permtest"),
            durable=durable,
            stream=subjects.CHAT_STREAM,
        )
        fetched = await sub.fetch(1, timeout=5)
        assert fetched[0].metadata.sequence.stream == seq
        await fetched[0].ack_sync()
    finally:
        await bus.js.delete_consumer(subjects.CHAT_STREAM, durable)
        for own in (gateway, routing, transcripts):
            await own.close()


async def test_only_the_owner_makes_a_stream_and_the_others_wait_for_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """On a server of its own with nothing made yet: the gateway and transcripts wait for
    the config bucket and the chat stream until the directory and routing make them (they
    may not make them themselves), and give up after `bind_timeout_s`."""
    port = free_port()
    server = start_nats(tmp_path, port, tmp_path / "logs")
    users = nats_auth.passwords(tmp_path)

    async def connect(user: str) -> Bus:
        url = nats_auth.url_for(f"nats://127.0.0.1:{port}", user, users[user])
        return await Bus.connect(url, f"tests-{user}")

    buses = {u: await connect(u) for u in ("gateway", "transcripts", "directory", "routing")}
    caplog.set_level(logging.INFO, logger="shared.bus")
    try:
        impatient = buses["transcripts"]
        impatient.bind_timeout_s = 0.5
        with pytest.raises(NotFoundError):
            await impatient.key_value(subjects.CONFIG_BUCKET)
        impatient.bind_timeout_s = 30

        config = asyncio.create_task(buses["gateway"].key_value(subjects.CONFIG_BUCKET))
        chat = asyncio.create_task(impatient.ensure_chat_stream())

        async def both_waited_thrice() -> bool | None:
            tries = [r.getMessage() for r in caplog.records if "(try 3)" in r.getMessage()]
            seen = {what for what in ("KV_config", "CHAT_EVENTS") if any(what in t for t in tries)}
            return True if len(seen) == 2 else None

        # Each has found the stream missing three times and made nothing meanwhile.
        await eventually(both_waited_thrice, "both services waiting for their owners")
        assert not config.done() and not chat.done(), "a service made what it does not own"

        await buses["directory"].key_value(subjects.CONFIG_BUCKET)
        await buses["routing"].ensure_chat_stream(max_age_hours=1)
        await asyncio.wait_for(asyncio.gather(config, chat), timeout=15)
        info = await buses["routing"].js.stream_info(subjects.CHAT_STREAM)
        assert info.config.max_age == 3600
    finally:
        for own in buses.values():
            await own.close()
        server.stop()
