"""A gateway's chat feeds against a real nats-server: each event handed on once and in
order, whatever was missed, repeated, or published while the feed was being set up."""

from __future__ import annotations

import asyncio
import uuid

from services.gateway.feeds import ChatFeeds, SharedSubscriptions
from services.routing import domain
from shared import subjects
from shared.bus import Bus
from shared.schemas.chat import Sender
from shared.schemas.events import ChatEvent, ChatRecord
from tests.factories import ANN, PATRON, T0, started


class Heard:
    """What a feed hands on, and a way to wait for the event numbered `n`."""

    def __init__(self) -> None:
        self.events: list[ChatEvent] = []
        self.ephemeral: list[str] = []
        self._changed = asyncio.Condition()

    async def on_events(self, events: list[ChatEvent]) -> None:
        async with self._changed:
            self.events += events
            self._changed.notify_all()

    async def on_ephemeral(self, kind: str, _data: bytes) -> None:
        async with self._changed:
            self.ephemeral.append(kind)
            self._changed.notify_all()

    async def until(self, n: int) -> list[int]:
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: any(e.n >= n for e in self.events)), 5
            )
        return [e.n for e in self.events]


class Chat:
    """A chat written to the stream as routing writes it, one record per transition."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.seq = 0
        self.state = started().state
        self.records: list[ChatRecord] = []

    @property
    def id(self) -> str:
        return self.state.chat.id

    async def write(self, transition: domain.Transition) -> ChatRecord:
        record = ChatRecord(state=transition.state, events=transition.events)
        self.seq = await self.bus.append_chat_record(record, self.seq)
        self.state = transition.state
        self.records.append(record)
        return record

    async def start(self) -> ChatRecord:
        opened = started(uuid.uuid4().hex)
        self.state = opened.state
        return await self.write(opened)

    async def say(self, who: Sender, body: str) -> ChatRecord:
        return await self.write(domain.post_message(self.state, who, body, T0))

    async def claim(self) -> ChatRecord:
        assert ANN.id is not None
        return await self.write(domain.claim(self.state, ANN.id, ANN.name, ["demo-hill"], T0))


async def started_and_heard(bus: Bus) -> tuple[Heard, ChatFeeds, Chat]:
    """Feeds that hand on to a `Heard`, and a chat started on the stream (events 1-3)."""
    heard = Heard()
    feeds = ChatFeeds(bus, heard.on_events, heard.on_ephemeral)
    chat = Chat(bus)
    await chat.start()
    return heard, feeds, chat


async def test_a_new_chat_is_handed_on_from_its_first_record_and_others_are_not(bus: Bus):
    heard = Heard()
    feeds = ChatFeeds(bus, heard.on_events, heard.on_ephemeral)
    chat, other = Chat(bus), Chat(bus)
    chat.state = started(uuid.uuid4().hex).state
    await feeds.follow("hill", chat.id, start_n=0)
    await chat.write(started(chat.id))
    await other.start()  # a chat nobody here follows
    await chat.claim()
    assert await heard.until(4) == [1, 2, 3, 4]
    assert {e.chat.id for e in heard.events} == {chat.id}
    await feeds.drop(chat.id)
    assert chat.id not in feeds and len(feeds) == 0


async def test_a_gap_is_refilled_from_the_stream_and_repeats_change_nothing(bus: Bus):
    heard = Heard()
    feeds = ChatFeeds(bus, heard.on_events, heard.on_ephemeral)
    chat = Chat(bus)
    first = await chat.start()  # events 1-3, heard by the watchers already
    await feeds.follow("hill", chat.id, start_n=first.events[-1].n)
    # Records this replica never received (as after a slow-consumer drop): written to the
    # stream behind the feed's back, by pretending they were published before it followed.
    await feeds.drop(chat.id)
    await chat.claim()  # event 4
    await chat.say(PATRON, "are you there?")  # event 5
    await feeds.follow("hill", chat.id, start_n=first.events[-1].n)
    await chat.say(ANN, "yes")  # event 6: the feed sees 6 after 3, and refills 4 and 5
    assert await heard.until(6) == [4, 5, 6]
    assert feeds.refills == 1
    # A repeated record (a redelivery) is passed over.
    await feeds.take_record(chat.id, chat.records[-1])
    await feeds.take_record(chat.id, chat.records[0])
    assert [e.n for e in heard.events] == [4, 5, 6]


async def test_records_published_while_history_is_read_are_held_then_handed_on_once(bus: Bus):
    heard, feeds, chat = await started_and_heard(bus)
    await chat.claim()
    await feeds.follow("hill", chat.id)  # under way: where to start is not known yet
    await chat.say(PATRON, "one")  # event 5, arrives before the history is read
    await chat.say(ANN, "two")  # event 6
    # The caller's history read saw up to event 5; 6 is new to the watchers.
    await feeds.start_at(chat.id, 5)
    assert await heard.until(6) == [6]


async def test_resync_refills_the_last_records_missed(bus: Bus):
    heard, feeds, chat = await started_and_heard(bus)
    await feeds.follow("hill", chat.id, start_n=3)
    await feeds.drop(chat.id)
    await chat.claim()  # missed, and nothing follows it to reveal the gap
    await feeds.follow("hill", chat.id, start_n=3)
    await feeds.resync()
    assert await heard.until(4) == [4]


async def test_typing_and_positions_of_a_followed_chat_reach_the_feed(bus: Bus):
    heard, feeds, chat = await started_and_heard(bus)
    await feeds.follow("hill", chat.id, start_n=3)
    await bus.nc.publish(subjects.chat_typing("hill", chat.id), b"{}")
    await bus.nc.publish(subjects.chat_position("hill", chat.id), b"{}")
    await bus.nc.flush()
    async with heard._changed:
        await asyncio.wait_for(heard._changed.wait_for(lambda: len(heard.ephemeral) == 2), 5)
    assert sorted(heard.ephemeral) == ["position", "typing"]


async def test_shared_subscriptions_last_as_long_as_someone_holds_them(bus: Bus):
    got: list[bytes] = []
    arrived = asyncio.Event()

    async def handler(msg) -> None:  # type: ignore[no-untyped-def]
        got.append(msg.data)
        arrived.set()

    shared = SharedSubscriptions(bus)
    subject = subjects.queue_records(f"demo-hill-q{uuid.uuid4().hex[:6]}")
    await shared.hold(subject, handler)
    await shared.hold(subject, handler)  # a second watcher: still one subscription
    assert len(shared) == 1
    await shared.release(subject)
    await bus.nc.publish(subject, b"one")
    await asyncio.wait_for(arrived.wait(), 5)
    assert got == [b"one"]  # once, not twice
    await shared.release(subject)
    assert len(shared) == 0
