"""The chat stream: one record per transition of a chat (its state and events together),
written conditional on the chat's last record, read back as a chat's last record or its
history, and forgotten on erasure. `ChatStream` is a part of `Bus`."""

from __future__ import annotations

import contextlib
import itertools
import logging
import uuid
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import (
    ConsumerConfig,
    DeliverPolicy,
)
from nats.js.errors import APIError, NotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ValidationError

from shared import subjects
from shared.audience import audience
from shared.errors import Refusal, StaleRevision
from shared.schemas.events import ChatEvent, ChatRecord, parse_chat_record
from shared.telemetry import inject_headers

log = logging.getLogger(__name__)

# The chat's state after a record, in its headers, so that a follower can pass over
# closed chats without decoding them.
STATE_HEADER = "Refdesk-State"

# JetStream's error code for a publish whose expected last sequence did not hold.
WRONG_LAST_SEQUENCE = 10071

APPEND_ATTEMPTS = 3


async def delete_if_last(kv: KeyValue, key: str, last: int) -> None:
    """Delete a key only while its revision is still `last`; `StaleRevision` otherwise.
    (nats-py names that refusal for puts, but a delete raises the bare API error.)"""
    try:
        await kv.delete(key, last=last)
    except APIError as exc:
        if exc.err_code == WRONG_LAST_SEQUENCE:
            raise StaleRevision(key) from exc
        raise


# This process's writes are told apart by a number; other processes' by this random part.
_WRITER = uuid.uuid4().hex[:12]

_WRITES = itertools.count(1)


def record_id(record: ChatRecord) -> str:
    """A record's `Nats-Msg-Id`: unique to this write (two replicas deciding different
    transitions from the same state must not look like one repeated publish)."""
    return f"{record.state.chat.id}.{record.state.events}.{_WRITER}.{next(_WRITES)}"


# Told of a chat's last record when it does not parse: its subject, sequence, data and why.
OnUnreadable = Callable[[str, int, bytes, ValidationError], Awaitable[None]]


class PurgeRequest(BaseModel):
    """JetStream's purge request (only what refdesk uses of it)."""

    filter: str


class PurgeReply(BaseModel):
    """JetStream's answer to a purge: how many records went, or its error."""

    success: bool = False
    purged: int = 0
    error: dict[str, object] | None = None


class ChatStream:
    """The chat stream's operations, as the bus has them (mixed into `Bus`)."""

    nc: Client
    js: JetStreamContext
    request_timeout: float

    async def append_chat_record(
        self, record: ChatRecord, after: int, msg_id: str | None = None
    ) -> int:
        """Write one transition of a chat, only if the chat's last record is still the one
        at stream sequence `after` (0: the chat must not exist yet). Returns the new
        record's sequence; raises `StaleRevision` when another write came first.

        State and events are one message, so a transition is either wholly in the stream
        or not at all. A publish whose answer was lost is sent again; the server checks
        the expected sequence before its de-duplication, so a retry refused for a wrong
        sequence looks whether its own first try is the record that followed `after`.
        """
        chat = record.state.chat
        subject = subjects.chat_events(chat.institution, chat.id)
        msg_id = msg_id or record_id(record)
        headers = inject_headers(
            {
                "Nats-Msg-Id": msg_id,
                "Nats-Expected-Last-Subject-Sequence": str(after),
                STATE_HEADER: chat.state,
            }
        )
        data = record.to_json()
        for attempt in range(APPEND_ATTEMPTS):
            try:
                ack = await self.js.publish(
                    subject, data, headers=headers, timeout=self.request_timeout
                )
            except NatsTimeout:
                log.warning("append to %s unanswered (try %d)", subject, attempt + 1)
                continue
            except APIError as exc:
                if exc.err_code != WRONG_LAST_SEQUENCE:
                    raise
                landed = await self._landed(subject, after, msg_id) if attempt else None
                if landed is None:
                    raise StaleRevision(subject) from exc
                await self._announce(record, data)
                return landed
            await self._announce(record, data)
            return ack.seq
        raise Refusal("unavailable", "the chat stream did not answer in time; try again")

    async def _announce(self, record: ChatRecord, data: bytes) -> None:
        """Tell the gateways that do not follow the chat itself but must hear the record:
        queue watchers, operators it names, the guest of a new proactive chat (core NATS;
        the stream already holds the record)."""
        heard = audience(record)
        if heard.empty:
            return
        chat = record.state.chat
        headers = inject_headers({})
        for queue in sorted(heard.queues):
            await self.nc.publish(subjects.queue_records(queue), data, headers=headers)
        for operator in sorted(heard.operators):
            await self.nc.publish(subjects.operator_records(operator), data, headers=headers)
        if heard.guest is not None:
            subject = subjects.guest_records(chat.institution, heard.guest)
            await self.nc.publish(subject, data, headers=headers)

    async def _landed(self, subject: str, after: int, msg_id: str) -> int | None:
        """The sequence of our own record if it is the one written right after `after`."""
        try:
            following = await self.js.get_msg(
                subjects.CHAT_STREAM, seq=after + 1, subject=subject, next=True
            )
        except NotFoundError:
            return None
        if following.headers and following.headers.get("Nats-Msg-Id") == msg_id:
            return following.seq
        return None

    async def last_chat_record(
        self,
        chat_id: str,
        institution: str | None = None,
        unreadable: OnUnreadable | None = None,
    ) -> tuple[ChatRecord, int] | None:
        """A chat's current state: its last record and that record's sequence, read from
        the stream's leader. Without `institution` the chat is found by id alone (ids are
        unique), as a backup service's operator asks about a library's chat.

        A last record that does not parse (routing writes none: a fault, or a forgery with
        routing's credentials) does not take the chat with it: the state is the chat's last
        record that does, with the sequence of the last record of its subject, so that the
        next conditional write follows the unreadable one and the chat goes on.
        `unreadable` hears of it (else it is logged). A chat with no record that parses is
        not found."""
        subject = subjects.chat_events_of(chat_id, institution)
        try:
            raw = await self.js.get_msg(subjects.CHAT_STREAM, subject=subject)
        except NotFoundError:
            return None
        assert raw.data is not None and raw.seq is not None and raw.subject is not None
        try:
            return parse_chat_record(raw.data), raw.seq
        except ValidationError as error:
            if unreadable is not None:
                await unreadable(raw.subject, raw.seq, raw.data, error)
            else:
                log.warning("unreadable chat record on %s (#%d) passed over", raw.subject, raw.seq)
        # The next write goes to the subject of the last readable record, after that
        # subject's last record (a forgery may sit on another institution's subject).
        readable: tuple[ChatRecord, str] | None = None
        last_of: dict[str, int] = {}
        for msg in await self._chat_records(subject):
            if msg.metadata.sequence.stream > raw.seq:
                break
            last_of[msg.subject] = msg.metadata.sequence.stream
            with contextlib.suppress(ValidationError):
                readable = parse_chat_record(msg.data), msg.subject
        return None if readable is None else (readable[0], last_of[readable[1]])

    async def chat_history(self, institution: str, chat_id: str) -> list[ChatEvent]:
        """Every event of one chat, read back from the stream (the source of truth). A
        record that does not parse is passed over (see `last_chat_record`)."""
        events: list[ChatEvent] = []
        for msg in await self._chat_records(subjects.chat_events(institution, chat_id)):
            try:
                events.extend(parse_chat_record(msg.data).events)
            except ValidationError:
                log.warning("unreadable chat record on %s passed over", msg.subject)
        return events

    async def _chat_records(self, subject: str) -> list[Msg]:
        """Every record of one chat's subject, in order."""
        # Naming the stream saves a lookup by subject (and a permission to list streams).
        sub = await self.js.subscribe(
            subject,
            stream=subjects.CHAT_STREAM,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        found: list[Msg] = []
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=self.request_timeout)
                except NatsTimeout:
                    break
                found.append(msg)
                if msg.metadata.num_pending == 0:
                    break
        finally:
            await sub.unsubscribe()
        return found

    async def forget_chat(self, institution: str, chat_id: str) -> int:
        """Purge one chat's records from the chat stream (patron privacy); returns how
        many there were. nats-py's purge_stream does not say, and erasure reports it."""
        purge = PurgeRequest(filter=subjects.chat_events(institution, chat_id))
        msg = await self.nc.request(
            subjects.stream_purge_api(subjects.CHAT_STREAM),
            purge.model_dump_json().encode(),
            timeout=self.request_timeout,
        )
        reply = PurgeReply.model_validate_json(msg.data)
        if reply.error is not None or not reply.success:
            raise Refusal("unavailable", f"purging chat {chat_id} failed: {reply.error}")
        return reply.purged
