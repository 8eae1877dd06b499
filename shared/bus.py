"""The bus: one thin wrapper over nats-py that every service uses.

It connects with reconnects, serves typed request/reply endpoints through the NATS Services
API (`nats.micro`, so `nats micro ls/info/stats` work), turns refusals into typed error
replies, publishes chat events to JetStream with de-duplication, sets up the stream and
key-value buckets, and carries W3C trace context in message headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError, SlowConsumerError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import (
    ConsumerConfig,
    DeliverPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, NotFoundError
from nats.js.kv import KeyValue
from nats.js.manager import JetStreamManager
from nats.micro import ServiceConfig, add_service
from nats.micro.request import Request
from nats.micro.service import EndpointConfig, Service
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from shared import reach, subjects, telemetry
from shared.audience import audience
from shared.errors import Refusal, StaleRevision
from shared.load import LoopLag
from shared.meters import child
from shared.schemas.base import Model
from shared.schemas.events import ChatEvent, ChatRecord, parse_chat_record
from shared.schemas.records import Principal
from shared.schemas.requests import ErrorBody
from shared.tasks import cancel_and_wait
from shared.telemetry import inject_headers

log = logging.getLogger(__name__)
tracer = trace.get_tracer("refdesk.bus")

REQUESTS = Counter(
    "refdesk_bus_requests_total",
    "Requests served, by outcome (ok, an error code, busy, expired)",
    ["service", "endpoint", "outcome"],
)
REQUEST_SECONDS = Histogram(
    "refdesk_bus_request_seconds",
    "Time to handle a request, from its dispatch to the reply",
    ["service", "endpoint"],
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 2.5),
)

REQUEST_LATENCY = Histogram(
    "refdesk_nats_request_seconds",
    "Time from sending a request to its answer, as the asker sees it, by subject family "
    "(`<service>.<action>`) and outcome (ok, refused, unavailable)",
    ["family", "outcome"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 2.5),
)

ERROR_HEADER = "Nats-Service-Error-Code"
# When the caller stops waiting (wall-clock milliseconds): a request still queued past it is
# dropped unanswered rather than done for nobody.
DEADLINE_HEADER = "Refdesk-Deadline"
# How soon a sender refused as `busy` is told to try again.
BUSY_RETRY_MS = 250
# The chat's state after a record, in its headers, so that a follower can pass over
# closed chats without decoding them.
STATE_HEADER = "Refdesk-State"
# JetStream's error code for a publish whose expected last sequence did not hold.
WRONG_LAST_SEQUENCE = 10071
APPEND_ATTEMPTS = 3
# Told of a chat's last record when it does not parse: its subject, sequence, data and why.
OnUnreadable = Callable[[str, int, bytes, ValidationError], Awaitable[None]]
R = TypeVar("R", bound=BaseModel)
T = TypeVar("T")
Q = TypeVar("Q", bound=BaseModel)


MAX_DESCRIPTION = 600


def describe_errors(items: Sequence[Any]) -> str:
    """A short human message naming the offending fields, never echoing the input beyond
    what a validator's own message says (and that cut short)."""
    parts = []
    for item in items[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "payload"
        parts.append(f"{where}: {item['msg']}")
    text = "; ".join(parts)
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"


def describe_validation(error: ValidationError) -> str:
    return describe_errors(error.errors(include_input=False))


@dataclass(frozen=True)
class Endpoint:
    """One request/reply endpoint: the wildcard subject, its payload type and its handler."""

    name: str
    subject: str
    request: type[BaseModel]
    handler: Callable[[Any], Awaitable[Model]]


class PurgeRequest(BaseModel):
    """JetStream's purge request (only what refdesk uses of it)."""

    filter: str


class PurgeReply(BaseModel):
    """JetStream's answer to a purge: how many records went, or its error."""

    success: bool = False
    purged: int = 0
    error: dict[str, object] | None = None


class _NamedConsumers(JetStreamManager):
    """Every consumer nats-py creates is named in the API subject
    (`$JS.API.CONSUMER.CREATE.<stream>.<name>[.<filter>]`), where the server's permissions
    can see it: nats-py's ordered consumers (chat followers and history, bucket watchers)
    would otherwise be created with `CONSUMER.CREATE.<stream>` and a name in the payload
    only, which no service is granted (with it any name would do, another's consumer
    included). A fresh name each time: an ordered consumer that starts again is a new one."""

    async def add_consumer(
        self,
        stream: str,
        config: ConsumerConfig | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> Any:
        config = (config or ConsumerConfig()).evolve(**params)
        if not config.name and not config.durable_name:
            config = config.evolve(name=uuid.uuid4().hex)
        return await super().add_consumer(stream, config, timeout)


class JetStream(_NamedConsumers, JetStreamContext):
    """nats-py's JetStream context, its consumers named (`_NamedConsumers`)."""

    @property
    def _jsm(self) -> JetStreamManager:
        return _NamedConsumers(conn=self._nc, prefix=self._prefix, timeout=self._timeout)


def nats_user(url: str) -> str | None:
    """The user a NATS URL connects as (None: no credentials in it)."""
    user = urlsplit(url).username
    return unquote(user) if user else None


def _until_made(what: str, timeout: float) -> AsyncRetrying:
    """Retries while a stream or bucket its owner makes is not there yet."""

    def waiting(state: RetryCallState) -> None:
        log.info("waiting for %s, which its owner makes (try %d)", what, state.attempt_number)

    return AsyncRetrying(
        retry=retry_if_exception_type(NotFoundError),
        wait=wait_exponential(multiplier=0.05, max=2.0),
        stop=stop_after_delay(timeout),
        before_sleep=waiting,
        reraise=True,
    )


class Bus:
    # How long a service that does not own a stream or bucket waits for its owner to make it
    # before giving up (and being restarted).
    bind_timeout_s = 120.0

    def __init__(
        self, nc: Client, name: str, request_timeout: float, user: str | None = None
    ) -> None:
        self.nc = nc
        self.js: JetStreamContext = JetStream(nc)
        self.name = name
        # The NATS user: which streams and buckets it makes (shared/reach.py).
        self.user = user
        self.request_timeout = request_timeout
        self._services: list[Service] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self.max_in_flight = 256
        # Started by `serve`: past its threshold, new requests are refused `busy`.
        self.lag = LoopLag()
        # Called after a reconnect or a slow-consumer drop: core messages may have been
        # lost, and whoever keeps a view from them refills it.
        self.on_missed: list[Callable[[], Awaitable[None]]] = []
        self._resyncing: asyncio.Task[None] | None = None

    def _missed_messages(self) -> None:
        if self._resyncing is not None and not self._resyncing.done():
            return

        async def resync() -> None:
            for listener in self.on_missed:
                try:
                    await listener()
                except Exception:
                    log.exception("resync after missed messages failed")

        self._resyncing = asyncio.create_task(resync())

    @classmethod
    async def connect(
        cls, url: str, name: str, request_timeout: float = 2.0, ca_file: str | None = None
    ) -> Bus:
        """`ca_file`: the certificate authority of a NATS server with TLS (`tls://` URLs),
        when it is not one the system trusts already. Replies and deliveries come to the
        user's own inboxes (`_INBOX_<user>`), where no other user may listen."""
        created: list[Bus] = []
        user = nats_user(url)

        async def on_error(exc: Exception) -> None:
            log.warning("nats error: %s", exc)
            if isinstance(exc, SlowConsumerError) and created:
                created[0]._missed_messages()

        async def on_disconnect() -> None:
            log.warning("nats disconnected")

        async def on_reconnect() -> None:
            log.info("nats reconnected")
            if created:
                created[0]._missed_messages()

        nc = await nats.connect(
            url,
            name=f"refdesk-{name}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            drain_timeout=2,
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
            tls=ssl.create_default_context(cafile=ca_file) if ca_file else None,
            inbox_prefix=subjects.inbox_prefix(user),
        )
        created.append(cls(nc, name, request_timeout, user))
        return created[0]

    @property
    def connected(self) -> bool:
        return self.nc.is_connected

    async def close(self) -> None:
        await self.lag.stop()
        for service in self._services:
            await service.stop()
        if not self.nc.is_closed:
            await self.nc.drain()

    # --- JetStream set-up ----------------------------------------------------------------

    async def ensure_chat_stream(self, replicas: int = 1, max_age_hours: int = 72) -> None:
        """The chat event stream: each chat's state and events, from which transcripts are
        built, kept for hours (patron text does not linger here). Its owner (routing)
        makes it and keeps its settings; the others wait until it is there."""
        if not reach.creates(self.user, subjects.CHAT_STREAM):
            await self._made_by_owner(
                subjects.CHAT_STREAM, lambda: self.js.stream_info(subjects.CHAT_STREAM)
            )
            return
        config = StreamConfig(
            name=subjects.CHAT_STREAM,
            subjects=[subjects.chat_events_all()],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=replicas,
            max_age=max_age_hours * 3600.0,
            duplicate_window=120.0,
            # A chat's last record is its state: every read must come from the stream's
            # leader, never from a replica that may lag it (what direct gets allow).
            allow_direct=False,
        )
        try:
            await self.js.stream_info(subjects.CHAT_STREAM)
            await self.js.update_stream(config)
        except NotFoundError:
            await self.js.add_stream(config)

    async def key_value(
        self,
        bucket: str,
        replicas: int = 1,
        ttl: float | None = None,
        history: int = 1,
        storage: Literal["file", "memory"] = "file",
    ) -> KeyValue:
        """Bind to a key-value bucket. Its owner makes it on first use (with these
        settings); the others wait until it is there."""
        stream = subjects.kv_stream(bucket)
        if not reach.creates(self.user, stream):
            return await self._made_by_owner(stream, lambda: self.js.key_value(bucket))
        try:
            return await self.js.key_value(bucket)
        except NotFoundError:
            return await self.js.create_key_value(
                KeyValueConfig(
                    bucket=bucket,
                    history=history,
                    replicas=replicas,
                    ttl=ttl,
                    # Without markers an entry that ages out vanishes silently, and
                    # watchers (presence's staffing index) would never hear of it.
                    limit_marker_ttl=ttl,
                    storage=StorageType.MEMORY if storage == "memory" else StorageType.FILE,
                )
            )

    async def _made_by_owner(self, stream: str, bind: Callable[[], Awaitable[T]]) -> T:
        """`bind()`, tried again with back-off while the stream is not there yet (its owner
        has not started), for up to `bind_timeout_s`."""
        async for attempt in _until_made(stream, self.bind_timeout_s):
            with attempt:
                return await bind()
        raise AssertionError("tenacity either returns or raises")

    # --- the chat stream: one record per transition -------------------------------------

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

    async def publish(self, subject: str, payload: Model) -> None:
        await self.nc.publish(subject, payload.to_json(), headers=inject_headers({}))

    # --- request / reply -----------------------------------------------------------------

    async def request(
        self, subject: str, payload: Model, result: type[R], timeout: float | None = None
    ) -> R:
        """Send a request and return its typed result, or raise the typed refusal."""
        wait = timeout or self.request_timeout
        deadline = str(int((time.time() + wait) * 1000))
        tokens = subject.split(".")
        family = f"{tokens[0]}.{tokens[-1]}"
        started = time.perf_counter()
        try:
            msg = await self.nc.request(
                subject,
                payload.to_json(),
                timeout=wait,
                headers=inject_headers({DEADLINE_HEADER: deadline}),
            )
        except NoRespondersError as exc:
            child(REQUEST_LATENCY, family, "unavailable").observe(time.perf_counter() - started)
            raise Refusal("unavailable", f"no service answers {subject}") from exc
        except NatsTimeout as exc:
            child(REQUEST_LATENCY, family, "unavailable").observe(time.perf_counter() - started)
            raise Refusal("unavailable", f"no answer from {subject} in time") from exc
        refused = bool(msg.headers and msg.headers.get(ERROR_HEADER))
        child(REQUEST_LATENCY, family, "refused" if refused else "ok").observe(
            time.perf_counter() - started
        )
        if refused:
            error = ErrorBody.model_validate_json(msg.data)
            raise Refusal(error.code, error.message, error.owner, error.retry_after_ms)
        return result.model_validate_json(msg.data)

    async def serve(self, service: str, version: str, endpoints: Sequence[Endpoint]) -> Service:
        """Serve endpoints in the service's queue group, so replicas share the load."""
        svc = await add_service(
            self.nc,
            ServiceConfig(name=f"refdesk-{service}", version=version, queue_group=service),
        )
        slots = InFlight(self.max_in_flight)
        self.lag.start()
        for endpoint in endpoints:
            await svc.add_endpoint(
                EndpointConfig(
                    name=endpoint.name,
                    subject=endpoint.subject,
                    handler=self._wrap(service, endpoint, slots),
                )
            )
        self._services.append(svc)
        # The server has every subscription before this returns: a request sent right after
        # (a readiness probe, a test) finds its responder.
        await flushed(self.nc)
        return svc

    def _wrap(
        self, service: str, endpoint: Endpoint, slots: InFlight
    ) -> Callable[[Request], Awaitable[None]]:
        """nats-py runs one subscription's callbacks one after another; each request gets
        its own task instead, so a handler waiting on JetStream does not hold up the next.
        Order within a chat does not depend on this: a client's frames are sent one at a
        time, and every write is conditional on the state it was decided from.

        A replica whose event loop is behind (`LoopLag`), or with `max_in_flight` requests
        under way, refuses the next as `busy` at once rather than queueing it behind the
        others, and a request whose caller has stopped waiting is dropped: under overload
        senders hear so, and retry."""
        stats = _EndpointStats(service, endpoint.name)
        # Looked up once: `getattr(payload, name, default)` on a model without the field
        # raises and catches an AttributeError inside pydantic on every request.
        names_institution = "institution" in endpoint.request.model_fields
        names_principal = "principal" in endpoint.request.model_fields

        async def dispatch(request: Request) -> None:
            deadline = request.headers.get(DEADLINE_HEADER) if request.headers else None
            if deadline is not None and time.time() * 1000 > int(deadline):
                stats.shed("expired")
                return
            behind = self.lag.behind
            if behind or not slots.take():
                stats.shed("busy")
                why = "is behind" if behind else "has too much under way"
                await _reply_error(
                    request,
                    Refusal("busy", f"{service} {why}; try again", retry_after_ms=BUSY_RETRY_MS),
                )
                return
            task = asyncio.create_task(handle(request))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
            task.add_done_callback(lambda _: slots.release())

        async def handle(request: Request) -> None:
            started = time.perf_counter()
            code: str | None = None
            with telemetry.span(tracer, endpoint.name, request.headers, SpanKind.SERVER):
                try:
                    payload: Any = endpoint.request.model_validate_json(request.data)
                    scope = subjects.institution_of(request.subject)
                    if names_institution and payload.institution != scope:
                        raise Refusal("forbidden", "payload institution does not match subject")
                    # Asked for a person: they must be of that institution, or the
                    # consortium's admin, whoever sent it (defence in depth).
                    principal = payload.principal if names_principal else None
                    if isinstance(principal, Principal) and not principal.may_act_in(scope):
                        raise Refusal("forbidden", "the principal may not act in this institution")
                    reply = await endpoint.handler(payload)
                except ValidationError as exc:
                    code = "invalid"
                    await _reply_error(request, Refusal("invalid", describe_validation(exc)))
                except Refusal as refusal:
                    code = refusal.code
                    await _reply_error(request, refusal)
                except Exception:
                    code = "internal"
                    log.exception("handler %s failed", endpoint.name)
                    await _reply_error(request, Refusal("internal", "internal error"))
                else:
                    await request.respond(reply.to_json())
            stats.done(time.perf_counter() - started, code)

        return dispatch

    async def subscribe(
        self, subject: str, handler: Callable[[Msg], Awaitable[None]], queue: str = ""
    ) -> Any:
        """Every message to `handler`; with `queue`, each to one member of that group."""
        return await self.nc.subscribe(subject, queue=queue, cb=handler)


async def _reply_error(request: Request, refusal: Refusal) -> None:
    """A typed refusal, as nats micro's error reply (its code and description headers, so
    NATS tooling sees an error) with the `ErrorBody` as data."""
    body = ErrorBody(
        code=refusal.code,
        message=refusal.message,
        owner=refusal.owner,
        retry_after_ms=refusal.retry_after_ms,
    )
    await request.respond_error(refusal.code, refusal.message[:200], body.to_json())


class InFlight:
    """A count of requests under way with a ceiling; taking past it fails at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def take(self) -> bool:
        if self.count >= self.limit:
            return False
        self.count += 1
        return True

    def release(self) -> None:
        self.count -= 1


class _EndpointStats:
    """Per-endpoint request counts and handling time, in Prometheus: nats micro's own
    statistics time only the hand-off to a task, and count no refusal as an error."""

    def __init__(self, service: str, endpoint: str) -> None:
        self.service, self.endpoint = service, endpoint
        self._seconds = REQUEST_SECONDS.labels(service, endpoint)

    def done(self, seconds: float, code: str | None) -> None:
        self._seconds.observe(seconds)
        child(REQUESTS, self.service, self.endpoint, code or "ok").inc()

    def shed(self, why: str) -> None:
        child(REQUESTS, self.service, self.endpoint, why).inc()


async def flushed(nc: Client) -> None:
    """Return once the server has taken in everything this connection sent before.
    nats-py writes `flush()`'s PING straight to the socket, ahead of commands still in its
    write buffer (a subscription just made), so the first round trip can come back before
    the server has them; they are written while it waits, and a second PING follows them."""
    await nc.flush()
    await nc.flush()


async def delete_if_last(kv: KeyValue, key: str, last: int) -> None:
    """Delete a key only while its revision is still `last`; `StaleRevision` otherwise.
    (nats-py names that refusal for puts, but a delete raises the bare API error.)"""
    try:
        await kv.delete(key, last=last)
    except APIError as exc:
        if exc.err_code == WRONG_LAST_SEQUENCE:
            raise StaleRevision(key) from exc
        raise


class BucketFollower:
    """Keeps a replica's view of a key-value bucket current: `on_entry(key, value)` for each
    current entry and every later change (`value` None for a deletion or expiry)."""

    def __init__(self, kv: KeyValue, on_entry: Callable[[str, bytes | None, int], None]) -> None:
        self.kv = kv
        self.on_entry = on_entry
        self._task: asyncio.Task[None] | None = None

    async def start(self, initial_timeout: float = 10.0) -> None:
        """Start following; returns once the bucket's current entries have been seen."""
        watcher = await self.kv.watchall()
        caught_up = asyncio.Event()

        async def follow() -> None:
            async for entry in watcher:
                if entry is None:  # the watcher's marker: current entries delivered
                    caught_up.set()
                    continue
                deleted = entry.operation in ("DEL", "PURGE") or not entry.value
                try:
                    self.on_entry(entry.key, None if deleted else entry.value, entry.revision or 0)
                except ValueError:
                    log.warning("unreadable key-value entry %s", entry.key)

        self._task = asyncio.create_task(follow())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(caught_up.wait(), timeout=initial_timeout)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)


# This process's writes are told apart by a number; other processes' by this random part.
_WRITER = uuid.uuid4().hex[:12]
_WRITES = itertools.count(1)


def record_id(record: ChatRecord) -> str:
    """A record's `Nats-Msg-Id`: unique to this write (two replicas deciding different
    transitions from the same state must not look like one repeated publish)."""
    return f"{record.state.chat.id}.{record.state.events}.{_WRITER}.{next(_WRITES)}"


class ChatFollower:
    """Keeps a replica's view of the chats current: `on_record(msg)` for the last record of
    every chat in the stream (each chat's current state), then for every new record."""

    def __init__(self, bus: Bus, on_record: Callable[[Msg], None]) -> None:
        self.bus = bus
        self.on_record = on_record
        self._sub: Any = None

    async def start(self, initial_timeout: float = 10.0) -> None:
        """Start following; returns once every chat's current record has been seen."""
        info = await self.bus.js.stream_info(subjects.CHAT_STREAM)
        last = info.state.last_seq
        caught_up = asyncio.Event()
        if last == 0:
            caught_up.set()

        async def follow(msg: Msg) -> None:
            try:
                self.on_record(msg)
            except ValueError:
                log.warning("unreadable chat record on %s", msg.subject)
            if not caught_up.is_set() and msg.metadata.sequence.stream >= last:
                caught_up.set()

        self._sub = await self.bus.js.subscribe(
            subjects.chat_events_all(),
            stream=subjects.CHAT_STREAM,
            ordered_consumer=True,
            cb=follow,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.LAST_PER_SUBJECT),
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(caught_up.wait(), timeout=initial_timeout)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
