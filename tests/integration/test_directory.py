"""The directory's handlers against a real nats-server and a real MongoDB wire-protocol
server: a change is stored, projected into a config bucket and seen by a follower's view;
racing writers and a crash between the two writes still leave the bucket as MongoDB says.

Each test has a bucket and a database of its own, and calls the handlers directly: the
session's system serves the directory endpoints on the same server.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from services.directory.handlers import DirectoryHandlers
from services.directory.store import QUEUE, USER, ConfigStore
from shared import store
from shared.bus import Bus
from shared.configuration import ConfigView
from shared.errors import Refusal
from shared.passwords import hash_password
from shared.schemas.directory import Principal, SaveQueue, SaveUser, SignIn
from shared.schemas.records import Account, Institution, Queue, User
from tests.servers import Servers

ADMIN = Principal(username="demo-admin", institution="demo", role="consortium_admin")
HILL_ADMIN = Principal(username="demo-hill-admin", institution="hill", role="institution_admin")
PASSWORD = "tall-stacks-quiet-reading-room"


@pytest_asyncio.fixture
async def parts(servers: Servers, bus: Bus) -> AsyncIterator[tuple[DirectoryHandlers, ConfigView]]:
    client = store.connect(servers.mongodb_uri, "tests")
    db = client[f"t{uuid.uuid4().hex[:10]}"]
    bucket = f"config_t{uuid.uuid4().hex[:8]}"
    kv = await bus.key_value(bucket)
    configs = ConfigStore(db, kv)
    await configs.ensure_indexes()
    hill = Institution(name="hill", institution="hill", display_name="Hill", timezone="UTC")
    await db.institutions.insert_one(hill.model_dump(mode="json"))
    await configs.sync()
    view = ConfigView(kv)
    await view.start()
    yield DirectoryHandlers(configs, "demo", frozenset({"librarian1234"})), view
    await view.stop()
    await bus.js.delete_key_value(bucket)
    await client.drop_database(db.name)
    await client.close()


async def stored_bob(handlers: DirectoryHandlers) -> User:
    """Bob's account written straight to MongoDB, as the demo loader writes accounts."""
    user = User(
        username="demo-hill-bob",
        institution="hill",
        role="operator",
        display_name="Bob",
        password_hash=hash_password(PASSWORD),
    )
    await handlers.store.save(USER, user, create=True)
    return user


def hill_queue(display_name: str = "Hill") -> Queue:
    return Queue(name="demo-hill", institution="hill", display_name=display_name)


async def test_a_saved_queue_reaches_the_view_by_its_revision(parts):
    handlers, view = parts
    saved = await handlers.save_queue(
        SaveQueue(institution="demo", principal=ADMIN, record=hill_queue(), create=True)
    )
    assert await view.until(saved.revision, timeout_s=2.0)
    assert view.queues["demo-hill"] == hill_queue()
    assert view.institutions["hill"].display_name == "Hill"


async def test_racing_saves_leave_the_bucket_as_mongodb_has_it(parts):
    handlers, view = parts
    await handlers.save_queue(
        SaveQueue(institution="demo", principal=ADMIN, record=hill_queue(), create=True)
    )
    names = [f"Hill {i}" for i in range(12)]
    results = await asyncio.gather(
        *(
            handlers.save_queue(
                SaveQueue(institution="demo", principal=ADMIN, record=hill_queue(n), create=False)
            )
            for n in names
        )
    )
    assert await view.until(max(r.revision for r in results))
    stored = await handlers.store.get(QUEUE, "demo-hill")
    assert stored.display_name in names
    assert view.queues["demo-hill"] == stored


async def test_sync_repairs_what_a_crash_between_the_writes_left(parts):
    handlers, view = parts
    configs = handlers.store
    # As if a replica died after its MongoDB write: the bucket never heard.
    await configs.db.queues.insert_one(
        hill_queue("Written, never published").model_dump(mode="json")
    )
    assert "demo-hill" not in view.queues
    revision = await configs.sync()
    assert await view.until(revision)
    assert view.queues["demo-hill"].display_name == "Written, never published"
    await configs.db.queues.delete_one({"name": "demo-hill"})
    assert await view.until(await configs.sync())
    assert "demo-hill" not in view.queues


async def test_accounts_reach_the_view_without_their_password_hash(parts):
    handlers, view = parts
    ann = Account(username="demo-hill-ann", institution="hill", role="operator", display_name="Ann")
    saved = await handlers.save_user(
        SaveUser(
            institution="hill", principal=HILL_ADMIN, record=ann, password=PASSWORD, create=True
        )
    )
    assert await view.until(saved.revision)
    assert view.accounts["demo-hill-ann"] == ann
    entry = await handlers.store.kv.get("user.demo-hill-ann")
    assert b"password" not in entry.value
    assert (await handlers.sign_in(SignIn(username="demo-hill-ann", password=PASSWORD))) == ann


async def test_sign_in_refuses_alike_whatever_was_wrong(parts):
    handlers, _ = parts
    user = await stored_bob(handlers)
    messages = []
    for username, password in (
        ("demo-hill-bob", "wrong-password!"),
        ("demo-hill-nobody", PASSWORD),
    ):
        with pytest.raises(Refusal) as refused:
            await handlers.sign_in(SignIn(username=username, password=password))
        assert refused.value.code == "unauthorized"
        messages.append(refused.value.message)
    assert messages[0] == messages[1]
    await handlers.store.save(USER, user.model_copy(update={"disabled": True}), create=False)
    with pytest.raises(Refusal, match="disabled"):
        await handlers.sign_in(SignIn(username="demo-hill-bob", password=PASSWORD))


async def test_an_unknown_name_costs_a_sign_in_as_much_as_a_wrong_password(parts):
    """Timing must not tell which user names exist: an unknown name is checked against a
    decoy hash. Compared as a ratio of medians of the same run, far from its bounds: without
    the decoy an unknown name answers about fifty times faster."""
    handlers, _ = parts
    await stored_bob(handlers)

    async def took(username: str) -> float:
        started = time.perf_counter()
        with pytest.raises(Refusal):
            await handlers.sign_in(SignIn(username=username, password="wrong-password!"))
        return time.perf_counter() - started

    known = statistics.median([await took("demo-hill-bob") for _ in range(5)])
    unknown = statistics.median([await took("demo-hill-nobody") for _ in range(5)])
    assert 1 / 4 < unknown / known < 4, (unknown, known)
