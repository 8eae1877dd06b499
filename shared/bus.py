"""The bus: one thin wrapper over nats-py that every service uses.

It connects with reconnects, serves typed request/reply endpoints through the NATS Services
API (`nats.micro`, so `nats micro ls/info/stats` work), turns refusals into typed error
replies, publishes chat events to JetStream with de-duplication, sets up the stream and
key-value buckets, and carries W3C trace context in message headers.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError, SlowConsumerError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, KeyValueConfig
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue
from nats.js.manager import JetStreamManager
from nats.micro import ServiceConfig, add_service
from nats.micro.service import EndpointConfig, Service
from opentelemetry import trace
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from shared import reach, stream_settings, subjects
from shared.chat_stream import (
    STATE_HEADER,
    ChatStream,
    delete_if_last,
    record_id,
)
from shared.clock import Clock, SystemClock
from shared.endpoints import (
    BUSY_RETRY_MS,
    DEADLINE_HEADER,
    ERROR_HEADER,
    Endpoint,
    InFlight,
    describe_errors,
    describe_validation,
    dispatcher,
)
from shared.errors import Refusal
from shared.followers import BucketFollower, ChatFollower
from shared.load import LoopLag
from shared.meters import child
from shared.schemas.base import Model
from shared.schemas.requests import ErrorBody
from shared.telemetry import inject_headers

log = logging.getLogger(__name__)

UNREADABLE = Counter(
    "refdesk_unreadable_messages_total",
    "Messages from the bus that did not read as their subject's model, by subject family",
    ["family"],
)
tracer = trace.get_tracer("refdesk.bus")


REQUEST_LATENCY = Histogram(
    "refdesk_nats_request_seconds",
    "Time from sending a request to its answer, as the asker sees it, by subject family "
    "(`<service>.<action>`) and outcome (ok, refused, unavailable)",
    ["family", "outcome"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 2.5),
)

R = TypeVar("R", bound=BaseModel)
T = TypeVar("T")
Q = TypeVar("Q", bound=BaseModel)


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


class Bus(ChatStream):
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
        # Request deadlines (an instant every process compares) come from the process's
        # clock: `open_runtime` sets the service's own, shifted alike in every process.
        self.clock: Clock = SystemClock()
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
        """The chat event stream (`stream_settings.chat_stream_config`). Its owner
        (routing) makes it and applies its settings at every start; the others wait until
        it is there."""
        if not reach.creates(self.user, subjects.CHAT_STREAM):
            await self._made_by_owner(
                subjects.CHAT_STREAM, lambda: self.js.stream_info(subjects.CHAT_STREAM)
            )
            return
        config = stream_settings.chat_stream_config(replicas, max_age_hours)
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
        """Bind to a key-value bucket. Its owner makes it on first use, and on every start
        applies these settings to it (a release may have changed them); the others wait
        until it is there."""
        wanted = stream_settings.Bucket(bucket, replicas, ttl, history, storage)
        if not reach.creates(self.user, wanted.stream):
            return await self._made_by_owner(wanted.stream, lambda: self.js.key_value(bucket))
        try:
            kv = await self.js.key_value(bucket)
        except NotFoundError:
            return await self.js.create_key_value(
                KeyValueConfig(
                    bucket=bucket,
                    history=history,
                    replicas=replicas,
                    ttl=ttl,
                    limit_marker_ttl=ttl,
                    storage=wanted.storage_type,
                )
            )
        await self._reconcile_bucket(wanted)
        return kv

    async def _reconcile_bucket(self, wanted: stream_settings.Bucket) -> None:
        """Apply a bucket's settings to the stream an earlier release made."""
        config = (await self.js.stream_info(wanted.stream)).config
        fields = wanted.wanted()
        found = stream_settings.differences(wanted.stream, config, fields)
        if not found:
            return
        log.warning("reconciling a bucket from an earlier release: %s", "; ".join(found))
        if config.storage != wanted.storage_type:
            # A stream's storage cannot change in place: the rest is still applied.
            log.error("%s keeps its storage until it is made again", wanted.stream)
        await self.js.update_stream(stream_settings.updated(config, fields))

    async def _made_by_owner(self, stream: str, bind: Callable[[], Awaitable[T]]) -> T:
        """`bind()`, tried again with back-off while the stream is not there yet (its owner
        has not started), for up to `bind_timeout_s`."""
        async for attempt in _until_made(stream, self.bind_timeout_s):
            with attempt:
                return await bind()
        raise AssertionError("tenacity either returns or raises")

    # --- the chat stream: one record per transition -------------------------------------

    async def publish(self, subject: str, payload: Model) -> None:
        await self.nc.publish(subject, payload.to_json(), headers=inject_headers({}))

    # --- request / reply -----------------------------------------------------------------

    async def request(
        self, subject: str, payload: Model, result: type[R], timeout: float | None = None
    ) -> R:
        """Send a request and return its typed result, or raise the typed refusal."""
        wait = timeout or self.request_timeout
        deadline = str(int((self.clock.now().timestamp() + wait) * 1000))
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

    async def serve(
        self, service: str, version: str, endpoints: Sequence[Endpoint[Any]]
    ) -> Service:
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
                    handler=dispatcher(
                        service, endpoint, slots, self.lag, self._in_flight, self.clock
                    ),
                )
            )
        self._services.append(svc)
        # The server has every subscription before this returns: a request sent right after
        # (a readiness probe, a test) finds its responder.
        await flushed(self.nc)
        return svc

    async def subscribe(
        self, subject: str, handler: Callable[[Msg], Awaitable[None]], queue: str = ""
    ) -> Any:
        """Every message to `handler`; with `queue`, each to one member of that group."""
        return await self.nc.subscribe(subject, queue=queue, cb=handler)

    async def subscribe_to(
        self,
        subject: str,
        read: Callable[[bytes], T],
        handler: Callable[[T], Awaitable[None]],
        queue: str = "",
    ) -> Any:
        """Every message, read by `read` (a model's `model_validate_json`, an adapter's
        `validate_json`), to `handler`. One that does not read (another version's, or
        forged) is never handled and never dropped silently: it is logged and counted
        (`refdesk_unreadable_messages_total`), so a version mismatch shows at once."""

        async def deliver(msg: Msg) -> None:
            try:
                payload = read(msg.data)
            except ValidationError as exc:
                child(UNREADABLE, subjects.family(msg.subject)).inc()
                log.warning("unreadable message on %s: %s", msg.subject, describe_validation(exc))
                return
            await handler(payload)

        return await self.nc.subscribe(subject, queue=queue, cb=deliver)


async def flushed(nc: Client) -> None:
    """Return once the server has taken in everything this connection sent before.
    nats-py writes `flush()`'s PING straight to the socket, ahead of commands still in its
    write buffer (a subscription just made), so the first round trip can come back before
    the server has them; they are written while it waits, and a second PING follows them."""
    await nc.flush()
    await nc.flush()


__all__ = [
    "BUSY_RETRY_MS",
    "DEADLINE_HEADER",
    "ERROR_HEADER",
    "STATE_HEADER",
    "BucketFollower",
    "Bus",
    "ChatFollower",
    "Endpoint",
    "InFlight",
    "delete_if_last",
    "describe_errors",
    "describe_validation",
    "flushed",
    "record_id",
]
