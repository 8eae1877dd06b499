"""Routing and a chat record it cannot read (published to a chat's subject with routing's
own credentials): the record is set aside on the dead-letter subject once, with a log line
and a metric, and the chat goes on from its last readable record. Its deadline comes and is
applied once, where it used to fail and be tried again every second for ever.

Routing runs in this process as its entry point wires it (store, handlers, deadline
timers) with routing's NATS user, on a nats-server of its own (no other routing replica
and no other test's chats), and on the injected clock, which the tests move.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import pytest_asyncio
from nats.aio.msg import Msg
from prometheus_client import REGISTRY

from deploy.local import nats_auth
from deploy.local.processes import free_port
from deploy.local.system import admin_nats_url, start_nats
from services.routing import domain
from services.routing.handlers import RoutingHandlers
from services.routing.store import ChatStore, QueueDirectory
from services.routing.timers import JITTER_S, DeadlineTimers
from shared import subjects
from shared.bus import Bus, record_id
from shared.clock import FixedClock
from shared.configuration import ConfigView
from shared.schemas.chat import ChatState
from shared.schemas.events import ChatRecord
from shared.schemas.requests import DeadLetter
from tests.client import eventually
from tests.factories import ANN, BOB, T0, started

TIMING = domain.Timing(offer_timeout_s=120, owner_grace_s=60, patron_grace_s=600)
MALFORMED = b'{"v": 1, "state": "not a chat", "events": [{"type": "nonsense"}]}'
DEAD_LETTERS = "refdesk_routing_dead_letters_total"


@dataclass
class Nats:
    admin: str
    users: dict[str, str]

    def as_user(self, user: str) -> str:
        return nats_auth.url_for(self.admin, user, self.users[user])


@dataclass
class Routing:
    bus: Bus  # routing's own NATS user
    chats: ChatStore
    timers: DeadlineTimers
    clock: FixedClock


@pytest.fixture(scope="module")
def nats_of_its_own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nats]:
    data = tmp_path_factory.mktemp("unreadable")
    port = free_port()
    server = start_nats(data, port, data / "logs")
    try:
        yield Nats(admin_nats_url(data, port), nats_auth.passwords(data))
    finally:
        server.stop()


@pytest_asyncio.fixture
async def admin(nats_of_its_own: Nats) -> AsyncIterator[Bus]:
    bus = await Bus.connect(nats_of_its_own.admin, "tests")
    await bus.ensure_chat_stream()
    # The directory makes the config bucket; routing only binds to it.
    await bus.key_value(subjects.CONFIG_BUCKET)
    yield bus
    await bus.close()


@asynccontextmanager
async def routing(nats: Nats) -> AsyncIterator[Routing]:
    """Routing as services/routing/__main__.py wires it, on a clock that only moves when
    told to."""
    bus = await Bus.connect(nats.as_user("routing"), "routing")
    clock = FixedClock(T0)
    view = ConfigView(await bus.key_value(subjects.CONFIG_BUCKET))
    await view.start()
    chats = ChatStore(bus)
    handlers = RoutingHandlers(bus, chats, QueueDirectory(view), clock, 16, TIMING)
    timers = DeadlineTimers(clock, TIMING, handlers.run_due)
    chats.on_change = timers.track
    await chats.start_watching()
    try:
        yield Routing(bus, chats, timers, clock)
    finally:
        await timers.stop()
        await chats.stop()
        await view.stop()
        await bus.close()


@asynccontextmanager
async def dead_letters(bus: Bus) -> AsyncIterator[list[DeadLetter]]:
    heard: list[DeadLetter] = []

    async def take(msg: Msg) -> None:
        heard.append(DeadLetter.model_validate_json(msg.data))

    sub = await bus.nc.subscribe(subjects.dead_letters("routing"), cb=take)
    await bus.nc.flush()
    try:
        yield heard
    finally:
        await sub.unsubscribe()


async def seed_offer(bus: Bus) -> tuple[ChatState, int]:
    """Ann's chat with her transfer offer to Bob open, written as routing writes it, and
    its last record's sequence: the offer expires TIMING.offer_timeout_s after T0."""
    assert ANN.id is not None and BOB.id is not None
    made = started(uuid.uuid4().hex)
    transitions = [made, domain.claim(made.state, ANN.id, ANN.name, ["demo-hill"], T0)]
    transitions.append(
        domain.offer_transfer(
            transitions[-1].state, ANN.id, [BOB.id], T0, TIMING.offer_timeout_s, to_operator=BOB.id
        )
    )
    after = 0
    for transition in transitions:
        record = ChatRecord(state=transition.state, events=transition.events)
        after = await bus.append_chat_record(record, after, record_id(record))
    return transitions[-1].state, after


async def forge(nats: Nats, state: ChatState, institution: str | None = None) -> int:
    """A malformed record on the chat's subject (or the chat's id under another
    institution), published with routing's credentials."""
    forger = await Bus.connect(nats.as_user("routing"), "forger")
    try:
        subject = subjects.chat_events(institution or state.chat.institution, state.chat.id)
        return (await forger.js.publish(subject, MALFORMED)).seq
    finally:
        await forger.close()


async def armed(r: Routing) -> None:
    """Wait until routing has armed a deadline timer."""

    async def any_armed() -> bool | None:
        return True if r.timers.armed else None

    await eventually(any_armed, "a deadline timer armed")


async def held_after(r: Routing, chat_id: str, seq: int) -> tuple[ChatState, int]:
    """Wait until routing holds the chat as of stream sequence `seq`."""

    async def caught_up() -> tuple[ChatState, int] | None:
        found = await r.chats.load(chat_id)
        return found if found[1] == seq else None

    return await eventually(caught_up, f"routing holds chat {chat_id} as of #{seq}")


async def heard(letters: list[DeadLetter]) -> DeadLetter:
    async def any_heard() -> DeadLetter | None:
        return letters[0] if letters else None

    return await eventually(any_heard, "a dead letter from routing")


async def offer_expired(bus: Bus, chat_id: str) -> ChatRecord:
    """Wait until the chat's last record (a readable one) is its offer's expiry."""

    async def expired() -> ChatRecord | None:
        found = await bus.last_chat_record(chat_id)
        last = found[0] if found else None
        return last if last and last.events[-1].type == "transfer_expired" else None

    return await eventually(expired, f"the offer of chat {chat_id} expired")


async def test_an_unreadable_record_is_set_aside_once_and_the_deadline_applies_once(
    nats_of_its_own: Nats, admin: Bus
):
    before = REGISTRY.get_sample_value(DEAD_LETTERS) or 0.0
    async with routing(nats_of_its_own) as r, dead_letters(admin) as letters:
        state, _ = await seed_offer(admin)
        chat_id = state.chat.id
        await armed(r)

        forged = await forge(nats_of_its_own, state)
        letter = await heard(letters)
        assert (letter.consumer, letter.subject, letter.stream_seq) == (
            "routing",
            subjects.chat_events("hill", chat_id),
            forged,
        )
        assert "nonsense" in letter.data and letter.error
        # Routing holds the chat as its last readable record, to be written after the
        # unreadable one; the chat goes on.
        assert await held_after(r, chat_id, forged) == (state, forged)

        # The offer's deadline comes: applied once, and nothing is left to try again.
        r.clock.advance(TIMING.offer_timeout_s + JITTER_S)
        after = await offer_expired(admin, chat_id)
        assert after.state.offer is None and after.state.chat.owner == ANN.id
        assert after.first_n == state.events + 1
        assert r.timers.armed == 0  # no retry waits
        assert await r.chats.load(chat_id, fresh=True) == (after.state, forged + 1)
    assert len(letters) == 1
    assert REGISTRY.get_sample_value(DEAD_LETTERS) == before + 1


async def test_a_replica_starting_after_an_unreadable_record_takes_the_chat_from_before_it(
    nats_of_its_own: Nats, admin: Bus
):
    """A replica that first meets the chat at its unreadable record (a restart) arms the
    chat's deadline from its last readable record."""
    before = REGISTRY.get_sample_value(DEAD_LETTERS) or 0.0
    state, _ = await seed_offer(admin)
    forged = await forge(nats_of_its_own, state)
    async with dead_letters(admin) as letters, routing(nats_of_its_own) as r:
        await armed(r)
        assert await r.chats.load(state.chat.id) == (state, forged)
        r.clock.advance(TIMING.offer_timeout_s + JITTER_S)
        await offer_expired(admin, state.chat.id)
        assert r.timers.armed == 0
        await heard(letters)
    assert [letter.stream_seq for letter in letters] == [forged]
    assert REGISTRY.get_sample_value(DEAD_LETTERS) == before + 1


async def test_an_unreadable_record_under_another_institution_does_not_hide_the_chat(
    nats_of_its_own: Nats, admin: Bus
):
    """The chat's id under another institution's subject: routing, which finds a chat by id
    alone, reads it last, and goes on writing to the chat's own subject after its own last
    record."""
    async with routing(nats_of_its_own) as r, dead_letters(admin) as letters:
        state, last = await seed_offer(admin)
        await armed(r)
        forged = await forge(nats_of_its_own, state, "elsewhere")
        letter = await heard(letters)
        assert (letter.subject, letter.stream_seq) == (
            subjects.chat_events("elsewhere", state.chat.id),
            forged,
        )
        assert await r.chats.load(state.chat.id, fresh=True) == (state, last)
        r.clock.advance(TIMING.offer_timeout_s + JITTER_S)
        after = await offer_expired(admin, state.chat.id)
        assert after.state.chat.institution == "hill" and r.timers.armed == 0
    assert len(letters) == 1
