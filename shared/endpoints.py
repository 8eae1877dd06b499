"""Typed request/reply endpoints on NATS: an endpoint binds a subject to a handler whose
annotation names its request model; `dispatcher` runs each request as its own task,
refuses `busy` past the in-flight ceiling or while the loop is behind, checks that the
payload's institution and principal match the subject, and turns refusals into typed
error replies (nats micro's error headers, `ErrorBody` as data)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import typing
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from nats.micro.request import Request
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, ValidationError

from shared import subjects, telemetry
from shared.clock import Clock
from shared.errors import Refusal
from shared.load import LoopLag
from shared.meters import child
from shared.schemas.base import Model
from shared.schemas.records import Principal
from shared.schemas.requests import ErrorBody

log = logging.getLogger(__name__)
tracer = trace.get_tracer("refdesk.bus")

Q = TypeVar("Q", bound=BaseModel)

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

ERROR_HEADER = "Nats-Service-Error-Code"

# When the caller stops waiting (wall-clock milliseconds): a request still queued past it is
# dropped unanswered rather than done for nobody.
DEADLINE_HEADER = "Refdesk-Deadline"

# How soon a sender refused as `busy` is told to try again.
BUSY_RETRY_MS = 250

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


class Endpoint(Generic[Q]):
    """One request/reply endpoint: the wildcard subject, its handler, and the payload type
    the handler takes, read from the handler's annotation (`Endpoint.of`): nothing can bind
    a request model to a handler of another, and mypy checks the handler's type."""

    def __init__(
        self, name: str, subject: str, handler: Callable[[Q], Awaitable[Model]], request: type[Q]
    ) -> None:
        self.name, self.subject, self.handler, self.request = name, subject, handler, request

    @classmethod
    def of(cls, name: str, subject: str, handler: Callable[[Q], Awaitable[Model]]) -> Endpoint[Q]:
        return cls(name, subject, handler, request_model(handler))


def request_model(handler: Callable[..., Any]) -> type[Any]:
    """The pydantic model a handler takes: the annotation of its one parameter."""
    parameters = list(inspect.signature(handler).parameters.values())
    if len(parameters) != 1:
        raise TypeError(f"{handler.__qualname__} must take exactly one request")
    model = typing.get_type_hints(handler).get(parameters[0].name)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"{handler.__qualname__}: its request must be a pydantic model")
    return model


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


def dispatcher(
    service: str,
    endpoint: Endpoint[Any],
    slots: InFlight,
    lag: LoopLag,
    in_flight: set[asyncio.Task[None]],
    clock: Clock,
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
        if deadline is not None and clock.now().timestamp() * 1000 > int(deadline):
            stats.shed("expired")
            return
        behind = lag.behind
        if behind or not slots.take():
            stats.shed("busy")
            why = "is behind" if behind else "has too much under way"
            await _reply_error(
                request,
                Refusal("busy", f"{service} {why}; try again", retry_after_ms=BUSY_RETRY_MS),
            )
            return
        task = asyncio.create_task(handle(request))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
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
