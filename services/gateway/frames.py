"""The read loop both socket kinds share: a socket's frames are read into a small inbox,
then each in turn limited, parsed, validated against shared/schemas/protocol.py, handed to
its handler and answered with the handler's ack or an error, with the frame's `ref`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind
from pydantic import TypeAdapter, ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from services.gateway import domain, metrics
from services.gateway.hub import Outbox
from shared import telemetry
from shared.bus import BUSY_RETRY_MS, describe_validation
from shared.errors import Refusal
from shared.meters import child
from shared.schemas.base import Model
from shared.schemas.protocol import Ack, Error

if TYPE_CHECKING:
    from services.gateway.core import Gateway

log = logging.getLogger(__name__)
tracer = trace.get_tracer("refdesk.gateway")


@dataclass
class Reply:
    """What a frame handler answers: its typed ack (the frame loop adds the `ref`), then
    frames that follow it."""

    ack: Ack = field(default_factory=Ack)
    then: list[Model] = field(default_factory=list)


FrameHandler = Callable[[Any], Awaitable[Reply]]


class FrameLoop:
    """The read loop shared by both socket kinds: limits, parsing, dispatch, ack or error."""

    kind = "client"
    adapter: TypeAdapter[Any]

    def __init__(self, gw: Gateway, outbox: Outbox) -> None:
        self.gw = gw
        self.outbox = outbox
        s = gw.settings
        self.bucket = domain.TokenBucket(s.frames_per_second, s.frame_burst, gw.clock.monotonic())
        self.handlers: dict[str, FrameHandler] = {}

    @staticmethod
    def _span(frame: Any) -> AbstractContextManager[object]:
        """Each frame starts a trace of its own (not the socket's, which lasts hours): it
        follows the frame through the services it asks, and on to the gateways and
        transcripts that receive what it caused. Linked to the socket's span, if any."""
        if not telemetry.recording():
            return nullcontext()
        socket = trace.get_current_span().get_span_context()
        chat_id = getattr(frame, "chat_id", None)
        return tracer.start_as_current_span(
            f"frame {frame.type}",
            context=otel_context.Context(),
            kind=SpanKind.SERVER,
            links=[Link(socket)] if socket.is_valid else None,
            attributes={"refdesk.chat_id": chat_id} if isinstance(chat_id, str) else None,
        )

    async def run(self, ws: WebSocket) -> None:
        """Read frames as they come into a small inbox, stamped with their arrival, and
        handle them in order. A frame that finds the inbox full, or waited in it longer
        than `max_frame_wait_s` (the system behind it is slower than this client sends),
        is refused `busy` unhandled: the client hears at once and retries, and nothing
        queues without bound behind a socket."""
        clock = self.gw.clock
        settings = self.gw.settings
        inbox: asyncio.Queue[tuple[float, str | bytes] | None] = asyncio.Queue(settings.frame_inbox)

        async def read() -> None:
            try:
                while True:
                    raw = _frame_data(await ws.receive())
                    if raw is None:
                        break
                    try:
                        inbox.put_nowait((clock.monotonic(), raw))
                    except asyncio.QueueFull:
                        self.refuse_busy(raw)
            except WebSocketDisconnect:
                pass
            finally:
                with contextlib.suppress(asyncio.QueueFull):
                    inbox.put_nowait(None)

        reader = asyncio.create_task(read())
        greeting = asyncio.create_task(self._await_greeting())
        try:
            while (item := await inbox.get()) is not None:
                arrived, raw = item
                if clock.monotonic() - arrived > settings.max_frame_wait_s:
                    self.refuse_busy(raw)
                else:
                    await self.handle(raw)
        finally:
            greeting.cancel()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    def greeted(self) -> bool:
        return getattr(self, "link", None) is not None

    async def _await_greeting(self) -> None:
        """A socket that has not said `hello` or `auth` in time is closed: an idle
        anonymous socket holds a file and memory, and costs an attacker nothing."""
        wait = self.gw.settings.hello_timeout_s
        await self.gw.clock.sleep_until(self.gw.clock.now() + timedelta(seconds=wait))
        if not self.greeted():
            self.outbox.send(
                Error(code="unauthorized", message=f"say hello or auth within {wait:g} s")
            )
            self.outbox.close(4408)

    def refuse_busy(self, raw: str | bytes) -> None:
        """Answer a frame `busy` without handling it (its ref, if it has one, is read)."""
        try:
            data = _parse_json(raw)
        except Refusal:
            data = {}
        ref = data.get("ref") if isinstance(data.get("ref"), str) else None
        self._refuse(
            Refusal("busy", "refdesk is busy; try again", retry_after_ms=BUSY_RETRY_MS), ref
        )

    async def handle(self, raw: str | bytes) -> None:
        # Real time, not the injected clock's: the histogram measures the work itself.
        started = time.perf_counter()
        ref: str | None = None
        try:
            # The limit comes before any parsing, so a flood costs one counter each; a frame
            # refused for it is answered without its ref. The transport caps frames at
            # 64 KiB, so an oversized one is still parsed for its ref.
            if not self.bucket.take(self.gw.clock.monotonic()):
                raise Refusal("rate_limited", "too many frames; slow down")
            data = _parse_json(raw)
            ref = data.get("ref") if isinstance(data.get("ref"), str) else None
            domain.check_frame_size(raw, self.gw.settings.max_frame_bytes)
            kind = data.get("type")
            if not isinstance(kind, str) or kind not in self.handlers:
                raise Refusal("invalid", f"unknown frame type {kind!r}")
            frame = self.adapter.validate_python(data)
            child(metrics.FRAMES_IN, self.kind, frame.type).inc()
            if self.gw.bus.lag.behind or not self.gw.in_flight.take():
                raise Refusal("busy", "refdesk is busy; try again", retry_after_ms=BUSY_RETRY_MS)
            try:
                with self._span(frame):
                    reply = await self.handlers[frame.type](frame)
            finally:
                self.gw.in_flight.release()
            if frame.ref is not None:
                self.outbox.send(reply.ack.model_copy(update={"ref": frame.ref}))
            for follow in reply.then:
                self.outbox.send(follow)
        except ValidationError as exc:
            self._refuse(Refusal("invalid", describe_validation(exc)), ref)
        except Refusal as refusal:
            self._refuse(refusal, ref)
        except Exception:
            log.exception("frame failed")
            self._refuse(Refusal("internal", "internal error"), ref)
        finally:
            child(metrics.FRAME_SECONDS, self.kind).observe(time.perf_counter() - started)

    def _refuse(self, refusal: Refusal, ref: str | None) -> None:
        child(metrics.FRAME_ERRORS, self.kind, refusal.code).inc()
        self.outbox.send(
            Error(
                ref=ref,
                code=refusal.code,
                message=refusal.message,
                owner=refusal.owner,
                retry_after_ms=refusal.retry_after_ms,
            )
        )


def _frame_data(message: Mapping[str, Any]) -> str | bytes | None:
    """What a received WebSocket message carries: a text frame's text, a binary frame's
    bytes (refused `invalid` when handled: the protocol is JSON text), or None when the
    client has gone."""
    if message["type"] == "websocket.disconnect":
        return None
    text = message.get("text")
    if text is not None:
        return str(text)
    return bytes(message.get("bytes") or b"")


def _parse_json(raw: str | bytes) -> dict[str, Any]:
    if isinstance(raw, bytes):
        raise Refusal("invalid", "frames are JSON text; a binary frame is not read")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise Refusal("invalid", "frame is not valid JSON") from exc
    except RecursionError as exc:  # "[[[[..." a few thousand deep
        raise Refusal("invalid", "frame is nested too deeply") from exc
    if not isinstance(data, dict):
        raise Refusal("invalid", "frame must be a JSON object")
    return data
