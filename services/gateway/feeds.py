"""The chats this gateway replica follows, each on its own subscription, with every event
handed on once and in order.

A gateway subscribes to a chat's subjects only while one of its sockets watches the chat
(the patron's, or the owning operator's), so N gateways each carry about 1/N of the
delivery work. Core NATS may drop messages (a slow consumer, a reconnect), and a
subscription made while the chat is under way starts in the middle: each feed knows the
last event number `n` it handed on, passes over what it has had, and refills a gap from the
stream (the source of truth) before going on. Until a feed knows where it starts (the
caller reads the chat's history first), it holds what arrives.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.msg import Msg
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from services.gateway import metrics
from shared import subjects, telemetry
from shared.bus import Bus
from shared.meters import child
from shared.schemas.events import ChatEvent, RecordEvents, parse_record_events

log = logging.getLogger(__name__)
tracer = trace.get_tracer("refdesk.gateway")

OnEvents = Callable[[list[ChatEvent]], Awaitable[None]]
OnEphemeral = Callable[[str, bytes], Awaitable[None]]


@dataclass
class Feed:
    home: str
    sub: Any = None
    last_n: int | None = None
    held: list[RecordEvents] = field(default_factory=list)


class ChatFeeds:
    """`on_events(events)` gets each record's events not handed on before (all of them, or
    the tail of a record that overlaps a refill); `on_ephemeral(kind, data)` gets typing
    notices and queue positions."""

    def __init__(self, bus: Bus, on_events: OnEvents, on_ephemeral: OnEphemeral) -> None:
        self.bus = bus
        self.on_events = on_events
        self.on_ephemeral = on_ephemeral
        self._feeds: dict[str, Feed] = {}
        self.refills = 0

    def __contains__(self, chat_id: str) -> bool:
        return chat_id in self._feeds

    def __len__(self) -> int:
        return len(self._feeds)

    def home_of(self, chat_id: str) -> str | None:
        feed = self._feeds.get(chat_id)
        return feed.home if feed is not None else None

    async def follow(self, home: str, chat_id: str, start_n: int | None = None) -> None:
        """Subscribe to a chat; `start_n`: the last event already known to its watchers
        (0 for a chat not yet started), or None until `start_at` says."""
        if chat_id in self._feeds:
            return
        feed = Feed(home, last_n=start_n)
        self._feeds[chat_id] = feed

        async def on_msg(msg: Msg) -> None:
            await self._received(chat_id, msg)

        feed.sub = await self.bus.nc.subscribe(subjects.chat_all_of(home, chat_id), cb=on_msg)
        metrics.FOLLOWED_CHATS.set(len(self._feeds))

    async def start_at(self, chat_id: str, n: int) -> None:
        """The watchers know the chat up to event `n`: hand on what was held after it."""
        feed = self._feeds.get(chat_id)
        if feed is None or feed.last_n is not None:
            return
        feed.last_n = n
        held, feed.held = feed.held, []
        for record in held:
            await self._take(chat_id, feed, record)

    async def drop(self, chat_id: str) -> None:
        feed = self._feeds.pop(chat_id, None)
        metrics.FOLLOWED_CHATS.set(len(self._feeds))
        if feed is not None and feed.sub is not None:
            await feed.sub.unsubscribe()

    async def resync(self) -> None:
        """After a reconnect or a slow-consumer drop: refill every feed from the stream."""
        for chat_id, feed in list(self._feeds.items()):
            if feed.last_n is not None:
                await self._refill(chat_id, feed, None)

    async def take_record(self, chat_id: str, record: RecordEvents) -> None:
        """A record that reached this replica another way (a guest's proactive chat)."""
        feed = self._feeds.get(chat_id)
        if feed is None:
            return
        if feed.last_n is None:
            feed.last_n = record.first_n - 1
        await self._take(chat_id, feed, record)

    async def _received(self, chat_id: str, msg: Msg) -> None:
        feed = self._feeds.get(chat_id)
        if feed is None:
            return
        kind = msg.subject.rsplit(".", 1)[-1]
        if kind != "evt":
            await self.on_ephemeral(kind, msg.data)
            return
        child(metrics.RECORDS_IN, "chat").inc()
        try:
            record = parse_record_events(msg.data)
        except ValidationError:
            log.warning("unreadable chat record on %s", msg.subject)
            child(metrics.UNREADABLE, "chat_record").inc()
            return
        if feed.last_n is None:
            feed.held.append(record)
            return
        # The record's trace (the frame that caused it) goes on through its delivery here.
        with telemetry.span(tracer, "deliver", msg.headers, SpanKind.CONSUMER):
            await self._take(chat_id, feed, record)

    async def _take(self, chat_id: str, feed: Feed, record: RecordEvents) -> None:
        assert feed.last_n is not None
        if record.first_n > feed.last_n + 1:
            await self._refill(chat_id, feed, record.first_n)
        fresh = [event for event in record.events if event.n > feed.last_n]
        if not fresh:
            return  # had it already: a duplicate, or covered by a refill
        feed.last_n = fresh[-1].n
        await self.on_events(fresh)

    async def _refill(self, chat_id: str, feed: Feed, before: int | None) -> None:
        """Hand on the events after `last_n` (and before `before`) from the stream."""
        assert feed.last_n is not None
        after = feed.last_n
        history = await self.bus.chat_history(feed.home, chat_id)
        missing = [e for e in history if e.n > after and (before is None or e.n < before)]
        if not missing:
            return
        self.refills += 1
        metrics.REFILLS.inc()
        log.info("refilling %d events of chat %s from the stream", len(missing), chat_id)
        feed.last_n = missing[-1].n
        await self.on_events(missing)


class SharedSubscriptions:
    """Subscriptions several sockets may want at once (a queue two operators monitor, a
    guest with two tabs): made for the first, dropped with the last."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._subs: dict[str, tuple[Any, int]] = {}

    async def hold(self, subject: str, handler: Callable[[Msg], Awaitable[None]]) -> None:
        held = self._subs.get(subject)
        if held is not None:
            self._subs[subject] = (held[0], held[1] + 1)
            return
        self._subs[subject] = (None, 1)
        sub = await self.bus.nc.subscribe(subject, cb=handler)
        held = self._subs.get(subject)
        if held is None:  # released while subscribing
            await sub.unsubscribe()
        else:
            self._subs[subject] = (sub, held[1])

    async def release(self, subject: str) -> None:
        held = self._subs.get(subject)
        if held is None:
            return
        sub, count = held
        if count > 1:
            self._subs[subject] = (sub, count - 1)
            return
        del self._subs[subject]
        if sub is not None:
            await sub.unsubscribe()

    def __len__(self) -> int:
        return len(self._subs)
