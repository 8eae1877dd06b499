"""Binds the gateway's two kinds of input to the rest of the system: client frames on the
WebSockets (validated, limited, turned into requests to routing and presence) and events
from NATS (turned into frames for the sockets that should see them)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from nats.aio.msg import Msg
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind
from pydantic import TypeAdapter, ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from services.gateway import domain, metrics
from services.gateway.auth import GuestClaims, Tokens
from services.gateway.feeds import ChatFeeds, SharedSubscriptions
from services.gateway.hub import Hub, OperatorLink, Outbox, PatronLink
from services.gateway.settings import GatewaySettings
from services.gateway.store import GuestStore, RevokedTokens
from services.gateway.throttle import Counters, counter_key
from shared import subjects, telemetry
from shared.audience import by_subject_of_operator
from shared.bus import BUSY_RETRY_MS, Bus, InFlight, describe_validation
from shared.clock import Clock, iso
from shared.configuration import ConfigView
from shared.errors import Refusal
from shared.meters import child
from shared.schemas.base import Model
from shared.schemas.chat import Message, Sender
from shared.schemas.events import (
    ChatEvent,
    MessagePosted,
    RecordEvents,
    TransferOffered,
    parse_record_events,
)
from shared.schemas.protocol import (
    OPERATOR_FRAME,
    PATRON_FRAME,
    Ack,
    AnnouncementFrame,
    Auth,
    AuthAck,
    ChatAck,
    ChatClaim,
    ChatClose,
    ChatQueuedFrame,
    ChatResumed,
    ChatStartAck,
    ChatStarted,
    ChatStartProactive,
    ChatTag,
    ChatTake,
    ChatTransfer,
    CloseAck,
    Error,
    Hello,
    HelloAck,
    InternalSend,
    InternalSendAck,
    MessageAck,
    MonitorAck,
    MonitorSet,
    OperatorMessage,
    OwnedAck,
    PatronChatEnd,
    PatronChatStart,
    ProactiveAck,
    QueuePositionFrame,
    QueueSnapshot,
    SendMessage,
    SessionEndedFrame,
    SessionFrame,
    StateAck,
    StatusAck,
    StatusSet,
    TransferAccept,
    TransferAck,
    TransferCancel,
    TransferDecline,
    Typing,
    TypingFrame,
    WaitingChatView,
    Welcome,
    WidgetInfo,
)
from shared.schemas.records import Widget
from shared.schemas.requests import (
    SESSION_EVENT,
    Announcement,
    AnswerOffer,
    ChatResult,
    ClaimChat,
    CloseChat,
    Done,
    EndReason,
    InternalMessage,
    ListQueues,
    MessageResult,
    OpenSession,
    OwnedChats,
    OwnedChatsResult,
    PatronPresence,
    PostMessage,
    QueueListing,
    QueuePosition,
    ResumeChat,
    ResumeResult,
    Session,
    SessionEnded,
    SessionLookup,
    SessionQuery,
    SessionRef,
    SetMonitoring,
    SetStatus,
    StartChat,
    StartChatResult,
    StartProactive,
    TagChat,
    TransferChat,
    TransferResult,
    TypingNotice,
    WidgetStatus,
    WidgetStatusQuery,
)
from shared.schemas.tickets import TicketNotice

log = logging.getLogger(__name__)
tracer = trace.get_tracer("refdesk.gateway")


@dataclass
class Reply:
    """What a frame handler answers: its typed ack (the frame loop adds the `ref`), then
    frames that follow it."""

    ack: Ack = field(default_factory=Ack)
    then: list[Model] = field(default_factory=list)


FrameHandler = Callable[[Any], Awaitable[Reply]]


@dataclass
class Gateway:
    """Everything a socket handler needs, built once per process."""

    settings: GatewaySettings
    bus: Bus
    view: ConfigView
    guests: GuestStore
    revoked: RevokedTokens
    counters: Counters
    tokens: Tokens
    clock: Clock
    hub: Hub = field(default_factory=Hub)

    widgets: dict[str, WidgetStatus] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.feeds = ChatFeeds(self.bus, self._on_chat_events, self._on_ephemeral)
        self.subscriptions = SharedSubscriptions(self.bus)
        self.in_flight = InFlight(self.settings.max_frames_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self.view.listeners.append(self._config_changed)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _config_changed(self, kind: str, name: str) -> None:
        """An operator signed in here whose account was disabled, removed or given another
        role loses the socket at once (REST checks the account on every request); other
        changes to the account take effect on the socket."""
        link = self.hub.operators.get(name) if kind == "user" else None
        if link is None:
            return
        account = self.view.account(name)
        ended = domain.session_end_reason(account, link)
        if ended is not None or account is None:
            self._spawn(self.end_session(link, ended or "account_disabled"))
            return
        # A new chat limit holds from the next claim (staffing counts it from the next
        # sign-in, when presence opens the session with it).
        link.max_chats = account.max_chats

    async def widget_status(self, widget: Widget) -> WidgetStatus:
        """The widget's availability as routing last announced it; asked for when this
        replica has not heard yet. Routing unreachable: offline, so patrons get the form."""
        known = self.widgets.get(widget.id)
        if known is not None:
            return known
        try:
            status = await self.bus.request(
                subjects.routing(widget.institution, "widget"),
                WidgetStatusQuery(institution=widget.institution, widget=widget.id),
                WidgetStatus,
            )
        except Refusal as refusal:
            return WidgetStatus(
                institution=widget.institution,
                widget=widget.id,
                online=False,
                queue=None,
                reason=f"unavailable: {refusal.message}",
                at=iso(self.clock.now()),
            )
        self._hold(status)
        return status

    def _hold(self, status: WidgetStatus) -> bool:
        """Keep the newest status of a widget; True when it differs from the one held."""
        held = self.widgets.get(status.widget)
        if held is not None and held.at > status.at:
            return False  # an older announcement, overtaken (replicas announce apart)
        self.widgets[status.widget] = status
        return held is None or domain.widget_changed(held, status)

    async def on_widget_status(self, msg: Msg) -> None:
        try:
            status = WidgetStatus.model_validate_json(msg.data)
        except ValidationError:
            log.warning("unreadable widget status on %s", msg.subject)
            return
        if not self._hold(status):
            return
        links = self.hub.patrons_by_widget.get(status.widget, ())
        if links:
            text = domain.widget_frame(status).model_dump_json()
            for link in links:
                link.outbox.send_text(text)

    async def chat_messages(self, institution: str, chat_id: str) -> list[Message]:
        events = await self.bus.chat_history(institution, chat_id)
        return [e.message for e in events if e.type == "message"]

    async def follow_chat(self, home: str, chat_id: str) -> list[Message]:
        """Follow a chat under way: subscribe first, then read its history, so that nothing
        published in between is lost or handed on twice. Returns its messages."""
        await self.feeds.follow(home, chat_id)
        events = await self.bus.chat_history(home, chat_id)
        await self.feeds.start_at(chat_id, events[-1].n if events else 0)
        return [e.message for e in events if e.type == "message"]

    async def refresh_interest(self, chat_id: str) -> None:
        """Stop following a chat no socket of this replica watches any more."""
        if chat_id in self.feeds and not self.hub.watches_chat(chat_id):
            await self.feeds.drop(chat_id)
            self.hub.forget_chat(chat_id)

    async def post_message(self, institution: str, frame: SendMessage, sender: Sender) -> Reply:
        checked = domain.check_body(frame.body, self.settings.max_body_bytes)
        result = await self.bus.request(
            subjects.routing(institution, "message"),
            PostMessage(
                institution=institution,
                chat_id=frame.chat_id,
                sender=sender,
                body=checked,
                client_id=frame.client_id,
            ),
            MessageResult,
        )
        return Reply(ack=MessageAck(id=result.id, seq=result.seq, repeated=result.repeated))

    async def send_typing(self, home: str, chat_id: str, sender: Sender) -> Reply:
        notice = TypingNotice(institution=home, chat_id=chat_id, from_=sender)
        await self.bus.publish(subjects.chat_typing(home, chat_id), notice)
        return Reply()

    async def close_chat(
        self, institution: str, chat_id: str, sender: Sender, tags: list[str]
    ) -> ChatResult:
        return await self.bus.request(
            subjects.routing(institution, "close"),
            CloseChat(institution=institution, chat_id=chat_id, by=sender, tags=tags),
            ChatResult,
        )

    async def heartbeat(self, link: OperatorLink) -> bool:
        """Refresh a session in presence; False when presence says it has ended."""
        ref = _session_ref(link)
        try:
            await self.bus.request(subjects.presence(ref.institution, "heartbeat"), ref, Session)
        except Refusal as refusal:
            return refusal.code != "gone"
        return True

    async def end_session(self, link: OperatorLink, reason: EndReason) -> None:
        link.outbox.send(SessionEndedFrame(reason=reason))
        link.outbox.close(4001)
        await self.remove_operator(link)

    # --- what this replica's sockets watch ---------------------------------------------------

    async def add_operator(self, link: OperatorLink) -> None:
        self.hub.add_operator(link)
        await self.subscriptions.hold(
            subjects.operator_records(link.username), self._operator_handler(link.username)
        )

    async def remove_operator(self, link: OperatorLink) -> None:
        if link.session_id not in self.hub.sessions:
            return
        await self.set_monitoring(link, frozenset())
        owned = self.hub.chats_owned_by(link.username)
        self.hub.remove_operator(link)
        await self.subscriptions.release(subjects.operator_records(link.username))
        for chat_id in owned:
            await self.refresh_interest(chat_id)

    async def set_monitoring(self, link: OperatorLink, queues: frozenset[str]) -> None:
        before = link.monitoring
        self.hub.set_monitoring(link, queues)
        for queue in sorted(queues - before):
            await self.subscriptions.hold(subjects.queue_records(queue), self._queue_handler(queue))
        for queue in sorted(before - queues):
            await self.subscriptions.release(subjects.queue_records(queue))

    async def add_patron(self, link: PatronLink) -> None:
        self.hub.add_patron(link)
        await self.subscriptions.hold(
            subjects.guest_records(link.institution, link.guest_id), self.on_guest_record
        )

    async def remove_patron(self, link: PatronLink) -> list[str]:
        """Forget a closed patron socket; returns the chats no other socket here follows."""
        orphaned = self.hub.remove_patron(link)
        await self.subscriptions.release(subjects.guest_records(link.institution, link.guest_id))
        for chat_id in orphaned:
            await self.refresh_interest(chat_id)
        return orphaned

    async def own_chat(self, link: OperatorLink, home: str, chat_id: str) -> list[Message]:
        """This replica's operator owns the chat now: follow it; returns its messages."""
        self.hub.track_owner(chat_id, link.username)
        return await self.follow_chat(home, chat_id)

    # --- events from NATS ------------------------------------------------------------------

    async def subscribe(self) -> None:
        self.bus.lag.start()
        await self.bus.subscribe(subjects.presence_events(), self.on_presence_event)
        await self.bus.subscribe(subjects.staff_messages(), self.on_staff_message)
        await self.bus.subscribe(
            subjects.announcements(self.settings.consortium), self.on_announcement
        )
        await self.bus.subscribe(subjects.widget_status_all(), self.on_widget_status)
        await self.bus.subscribe(subjects.ticket_notices(), self.on_ticket_notice)
        self.bus.on_missed.append(self.feeds.resync)

    def _deliver(self, to: domain.To, text: str, chat_id: str) -> int:
        """Hand a frame to the sockets it is for here; returns how many."""
        links: list[Any] = []
        if to.patron:
            links = list(self.hub.patrons_by_chat.get(chat_id, ()))
        elif to.operator is not None:
            operator = self.hub.owner(to.operator)
            links = [] if operator is None else [operator]
        elif to.queue is not None:
            links = list(self.hub.watchers.get(to.queue, ()))
        for link in links:
            link.outbox.send_text(text)
        return len(links)

    async def _on_chat_events(self, events: list[ChatEvent]) -> None:
        """A followed chat's events: for its patron, and for its owner while owning it."""
        for event in events:
            chat = event.chat
            self.hub.track_owner(
                chat.id, chat.owner if chat.state in ("active", "transferring") else None
            )
            # Each frame is serialized once, however many sockets receive it.
            delivered = 0
            for to, frame in domain.deliveries(event):
                if to.patron or (
                    to.operator is not None and not by_subject_of_operator(event, to.operator)
                ):
                    delivered += self._deliver(to, frame.model_dump_json(), chat.id)
            if delivered and isinstance(event, MessagePosted):
                sent = datetime.fromisoformat(event.message.ts)
                way = "patron_to_operator" if event.message.from_.kind == "patron" else "to_patron"
                latency = (self.clock.now() - sent).total_seconds()
                child(metrics.DELIVERY_SECONDS, way).observe(max(0.0, latency))
            if chat.state in ("closed", "missed"):
                self.hub.end_chat(chat.id)
            await self.refresh_interest(chat.id)

    async def _on_ephemeral(self, kind: str, data: bytes) -> None:
        if kind == "typing":
            await self._on_typing(data)
        elif kind == "position":
            await self._on_position(data)

    def _queue_handler(self, queue: str) -> Callable[[Msg], Awaitable[None]]:
        async def on_queue_record(msg: Msg) -> None:
            record = _readable(msg)
            if record is None:
                return
            for event in record.events:
                for to, frame in domain.deliveries(event):
                    if to.queue == queue:
                        self._deliver(to, frame.model_dump_json(), event.chat.id)

        return on_queue_record

    def _operator_handler(self, operator: str) -> Callable[[Msg], Awaitable[None]]:
        async def on_operator_record(msg: Msg) -> None:
            record = _readable(msg)
            if record is None:
                return
            for event in record.events:
                if not by_subject_of_operator(event, operator):
                    continue
                for to, frame in domain.deliveries(event):
                    if to.operator == operator:
                        self._deliver(to, frame.model_dump_json(), event.chat.id)
                if isinstance(event, TransferOffered) and operator in event.offer.targets:
                    await self._offer(event, operator)

        return on_operator_record

    async def on_guest_record(self, msg: Msg) -> None:
        """An operator opened a chat with a guest connected here: the guest's sockets
        follow it from its first record."""
        record = _readable(msg)
        if record is None:
            return
        chat = record.events[0].chat
        links = [
            link
            for link in self.hub.patrons_by_guest.get(chat.patron.guest_id, ())
            if link.institution == chat.institution
        ]
        if not links:
            return
        for link in links:
            self.hub.follow_chat(link, chat.id)
            link.outbox.send(ChatStarted(chat=domain.patron_chat(chat)))
        await self.feeds.follow(chat.institution, chat.id)
        await self.feeds.take_record(chat.id, record)

    async def _offer(self, event: TransferOffered, operator: str) -> None:
        """Offer the chat, with its history, to a target connected to this replica."""
        link = self.hub.owner(operator)
        if link is None:
            return
        messages = await self.chat_messages(event.chat.institution, event.chat.id)
        link.outbox.send(domain.offer_frame(event, messages))

    async def _on_typing(self, data: bytes) -> None:
        try:
            notice = TypingNotice.model_validate_json(data)
        except ValidationError:
            return
        if notice.from_.kind == "patron":
            owner = self.hub.owner(self.hub.chat_owners.get(notice.chat_id))
            if owner is not None:
                owner.outbox.send(TypingFrame(chat_id=notice.chat_id, from_=notice.from_))
        else:
            links = self.hub.patrons_by_chat.get(notice.chat_id, ())
            if links:
                text = domain.patron_typing(notice.chat_id, notice.from_).model_dump_json()
                for link in links:
                    link.outbox.send_text(text)

    async def _on_position(self, data: bytes) -> None:
        try:
            update = QueuePosition.model_validate_json(data)
        except ValidationError:
            return
        links = self.hub.patrons_by_chat.get(update.chat_id, ())
        if links:
            text = QueuePositionFrame(
                chat_id=update.chat_id,
                position=update.position,
                estimated_wait_s=update.estimated_wait_s,
            ).model_dump_json()
            for link in links:
                link.outbox.send_text(text)

    async def on_presence_event(self, msg: Msg) -> None:
        try:
            event = SESSION_EVENT.validate_json(msg.data)
        except ValidationError:
            return
        if not isinstance(event, SessionEnded) or event.reason == "disconnected":
            return
        link = self.hub.sessions.get(event.session_id)
        if link is not None:
            await self.end_session(link, event.reason)

    async def on_staff_message(self, msg: Msg) -> None:
        try:
            message = InternalMessage.model_validate_json(msg.data)
        except ValidationError:
            return
        text = domain.internal_frame(message).model_dump_json()
        for link in domain.internal_recipients(message, self.hub.staff_of(message.institution)):
            link.outbox.send_text(text)

    async def on_ticket_notice(self, msg: Msg) -> None:
        try:
            notice = TicketNotice.model_validate_json(msg.data)
        except ValidationError:
            return
        staff = self.hub.staff_of(notice.ticket.institution)
        recipients = domain.ticket_recipients(notice, staff)
        if recipients:
            text = domain.ticket_frame(notice).model_dump_json()
            for link in recipients:
                link.outbox.send_text(text)

    async def on_announcement(self, msg: Msg) -> None:
        try:
            announcement = Announcement.model_validate_json(msg.data)
        except ValidationError:
            return
        text = AnnouncementFrame(
            id=announcement.id, from_=announcement.from_, body=announcement.body, ts=announcement.ts
        ).model_dump_json(by_alias=True)
        for link in list(self.hub.sessions.values()):
            link.outbox.send_text(text)


class FrameLoop:
    """The read loop shared by both socket kinds: limits, parsing, dispatch, ack or error."""

    kind = "client"
    adapter: TypeAdapter[Any]

    def __init__(self, gw: Gateway, outbox: Outbox) -> None:
        self.gw = gw
        self.outbox = outbox
        s = gw.settings
        self.bucket = domain.TokenBucket(s.frames_per_second, s.frame_burst, time.monotonic())
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
        loop = asyncio.get_running_loop()
        settings = self.gw.settings
        inbox: asyncio.Queue[tuple[float, str | bytes] | None] = asyncio.Queue(settings.frame_inbox)

        async def read() -> None:
            try:
                while True:
                    raw = _frame_data(await ws.receive())
                    if raw is None:
                        break
                    try:
                        inbox.put_nowait((loop.time(), raw))
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
                if loop.time() - arrived > settings.max_frame_wait_s:
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
        started = time.perf_counter()
        ref: str | None = None
        try:
            # The limit comes before any parsing, so a flood costs one counter each; a frame
            # refused for it is answered without its ref. The transport caps frames at
            # 64 KiB, so an oversized one is still parsed for its ref.
            if not self.bucket.take(time.monotonic()):
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


def _readable(msg: Msg) -> RecordEvents | None:
    child(metrics.RECORDS_IN, msg.subject.split(".", 1)[0]).inc()
    try:
        return parse_record_events(msg.data)
    except ValidationError:
        log.warning("unreadable chat record on %s", msg.subject)
        return None


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


class PatronSocket(FrameLoop):
    kind = "patron"
    adapter = PATRON_FRAME

    def __init__(self, gw: Gateway, outbox: Outbox, widget: Widget, address: str) -> None:
        super().__init__(gw, outbox)
        self.widget = widget
        self.address = address
        self.link: PatronLink | None = None
        self.handlers = {"hello": self.hello}

    @property
    def _link(self) -> PatronLink:
        if self.link is None:
            raise Refusal("unauthorized", "say hello first")
        return self.link

    def _sender(self) -> Sender:
        return Sender(kind="patron", name=self._link.name, id=self._link.guest_id)

    async def hello(self, frame: Hello) -> Reply:
        if self.link is not None:
            raise Refusal("invalid", "hello was already said on this socket")
        guest_id = None
        if frame.token:
            try:
                claims = self.gw.tokens.guest(frame.token)
                if claims.widget == self.widget.id:
                    guest_id = claims.guest_id
            except Refusal:
                guest_id = None
        returning = guest_id is not None
        guest_id = guest_id or uuid.uuid4().hex
        token = self.gw.tokens.issue_guest(
            GuestClaims(guest_id, self.widget.id), self.gw.clock.now()
        )
        link = PatronLink(self.outbox, self.widget.institution, self.widget.id, guest_id)
        self.link = link
        await self.gw.add_patron(link)
        self.handlers = {
            "hello": self.hello,
            "chat.start": self.start,
            "message": self.message,
            "typing": self.typing,
            "chat.end": self.end,
        }
        await self.gw.guests.saw_guest(link.institution, guest_id, link.widget, self.gw.clock.now())
        status = await self.gw.widget_status(self.widget)
        info = WidgetInfo(online=status.online, queue=status.queue, reason=status.reason)
        welcome = Welcome(guest_id=guest_id, token=token, widget=info)
        then: list[Model] = [welcome]
        if returning:
            then += await self._resume(link)
        return Reply(ack=HelloAck(guest_id=guest_id), then=then)

    async def _resume(self, link: PatronLink) -> list[Model]:
        """The returning guest's open chat, if any, with its whole history."""
        resumed = await self.gw.bus.request(
            subjects.routing(link.institution, "resume"),
            ResumeChat(institution=link.institution, guest_id=link.guest_id),
            ResumeResult,
        )
        if resumed.chat is None:
            return []
        link.name = resumed.chat.patron.name or link.name
        self.gw.hub.follow_chat(link, resumed.chat.id)
        messages = await self.gw.follow_chat(link.institution, resumed.chat.id)
        return [
            ChatResumed(
                chat=domain.patron_chat(resumed.chat),
                messages=[domain.for_patron(m) for m in messages],
            )
        ]

    async def start(self, frame: PatronChatStart) -> Reply:
        link = self._link
        if link.chats:
            raise Refusal("conflict", "you already have an open chat")
        # Counted across replicas: new guest ids cost nothing, so the address is the limit.
        started = await self.gw.counters.add(counter_key("chatstart", self.address))
        if started > self.gw.settings.chat_starts_per_minute:
            raise Refusal("rate_limited", "too many chats started from here; wait a minute")
        domain.check_body(frame.question, self.gw.settings.max_body_bytes)
        chat_id = uuid.uuid4().hex
        if frame.name:
            link.name = frame.name
        self.gw.hub.follow_chat(link, chat_id)
        # Subscribed before the chat exists, so that its first record is not missed.
        await self.gw.feeds.follow(link.institution, chat_id, start_n=0)
        try:
            result = await self.gw.bus.request(
                subjects.routing(link.institution, "start"),
                StartChat(
                    institution=link.institution,
                    chat_id=chat_id,
                    widget=link.widget,
                    queue=self.widget.queue,
                    guest_id=link.guest_id,
                    question=frame.question,
                    name=frame.name,
                    email=frame.email,
                    page=frame.page,
                ),
                StartChatResult,
            )
        except Refusal:
            self.gw.hub.unfollow_chat(link, chat_id)
            await self.gw.refresh_interest(chat_id)
            raise
        queued = ChatQueuedFrame(
            chat_id=chat_id,
            queue=result.chat.queue,
            position=result.position,
            estimated_wait_s=result.estimated_wait_s,
        )
        return Reply(ack=ChatStartAck(chat_id=chat_id), then=[queued])

    def _own_chat(self, chat_id: str) -> None:
        if chat_id not in self._link.chats:
            raise Refusal("forbidden", "this is not your chat")

    async def message(self, frame: SendMessage) -> Reply:
        self._own_chat(frame.chat_id)
        return await self.gw.post_message(self._link.institution, frame, self._sender())

    async def typing(self, frame: Typing) -> Reply:
        self._own_chat(frame.chat_id)
        return await self.gw.send_typing(self._link.institution, frame.chat_id, self._sender())

    async def end(self, frame: PatronChatEnd) -> Reply:
        self._own_chat(frame.chat_id)
        result = await self.gw.close_chat(self._link.institution, frame.chat_id, self._sender(), [])
        return Reply(ack=StateAck(state=result.chat.state))

    async def closed(self) -> None:
        """The socket is gone: for each chat no other socket here follows, the patron may
        have left, which starts the patron grace period in routing."""
        if self.link is None:
            return
        link = self.link
        for chat_id in await self.gw.remove_patron(link):
            try:
                await self.gw.bus.request(
                    subjects.routing(link.institution, "patron_left"),
                    PatronPresence(
                        institution=link.institution, chat_id=chat_id, guest_id=link.guest_id
                    ),
                    ChatResult,
                )
            except Refusal as refusal:
                log.info("patron of %s left: %s", chat_id, refusal.message)


class OperatorSocket(FrameLoop):
    kind = "operator"
    adapter = OPERATOR_FRAME

    def __init__(self, gw: Gateway, outbox: Outbox) -> None:
        super().__init__(gw, outbox)
        self.link: OperatorLink | None = None
        self.handlers = {"auth": self.auth}
        self._expiry: asyncio.Task[None] | None = None

    async def _expire(self, link: OperatorLink, at: datetime) -> None:
        """The socket ends when its token does: signing in again issues a new one."""
        await self.gw.clock.sleep_until(at)
        if link.session_id in self.gw.hub.sessions:
            await self.gw.end_session(link, "token_expired")

    @property
    def _link(self) -> OperatorLink:
        if self.link is None:
            raise Refusal("unauthorized", "authenticate first")
        return self.link

    def _ref(self) -> SessionRef:
        return _session_ref(self._link)

    def _sender(self) -> Sender:
        return Sender(kind="operator", name=self._link.name, id=self._link.username)

    async def auth(self, frame: Auth) -> Reply:
        if self.link is not None:
            raise Refusal("invalid", "already authenticated on this socket")
        claims = self.gw.tokens.staff(frame.token)
        user = domain.current_account(self.gw.view.account(claims.username), claims)
        if frame.elsewhere == "ask":
            found = await self.gw.bus.request(
                subjects.presence(claims.institution, "get"),
                SessionQuery(institution=claims.institution, operator=claims.username),
                SessionLookup,
            )
            if found.session is not None:
                raise Refusal(
                    "conflict",
                    f"signed in elsewhere since {found.session.started_at}; "
                    'authenticate with "elsewhere": "end" to end that session',
                )
        session = await self.gw.bus.request(
            subjects.presence(claims.institution, "open"),
            OpenSession(
                institution=claims.institution,
                operator=claims.username,
                name=user.display_name,
                session_id=uuid.uuid4().hex,
                max_chats=user.max_chats,
            ),
            Session,
        )
        self.link = OperatorLink(
            self.outbox,
            claims.institution,
            claims.username,
            user.display_name,
            claims.role,
            session.session_id,
            session.status,
            max_chats=user.max_chats,
            generation=claims.generation,
        )
        await self.gw.add_operator(self.link)
        if claims.expires is not None:
            self._expiry = asyncio.create_task(self._expire(self.link, claims.expires))
        self.handlers = {
            "auth": self.auth,
            "status.set": self.status,
            "monitor.set": self.monitor,
            "chat.claim": self.claim,
            "message": self.message,
            "typing": self.typing,
            "chat.tag": self.tag,
            "chat.close": self.close,
            "chat.transfer": self.transfer,
            "transfer.accept": self.accept,
            "transfer.decline": self.decline,
            "transfer.cancel": self.cancel_transfer,
            "chat.take": self.take,
            "chat.start_proactive": self.start_proactive,
            "internal.send": self.internal_send,
        }
        session = await self._restore_desk(session)
        owned = await self._owned_chats()
        then: list[Model] = [_session_frame(session, [f.chat.id for f in owned])]
        if session.monitoring:
            then.append(await self.snapshot())
        then += owned
        return Reply(ack=AuthAck(session_id=session.session_id), then=then)

    async def _restore_desk(self, session: Session) -> Session:
        """The session starts at the operator's desk as they left it; a queue they may no
        longer monitor (deleted, or moved out of their reach) is dropped from it."""
        kept = [q for q in session.monitoring if self._may_monitor(q)]
        if kept != session.monitoring:
            session = await self.gw.bus.request(
                subjects.presence(session.institution, "monitor"),
                SetMonitoring(**self._ref().model_dump(), queues=kept),
                Session,
            )
        await self.gw.set_monitoring(self._link, frozenset(session.monitoring))
        return session

    async def _owned_chats(self) -> list[ChatResumed]:
        """Chats this operator still owns (a reconnect within the grace period), with their
        history, so the client can carry on where it was."""
        link = self._link
        owned = await self.gw.bus.request(
            subjects.routing(link.institution, "owned"),
            OwnedChats(institution=link.institution, operator=link.username),
            OwnedChatsResult,
        )
        frames: list[ChatResumed] = []
        for chat in owned.chats:
            messages = await self.gw.own_chat(link, chat.institution, chat.id)
            frames.append(ChatResumed(chat=chat, messages=messages))
        return frames

    async def status(self, frame: StatusSet) -> Reply:
        ref = self._ref()
        session = await self.gw.bus.request(
            subjects.presence(ref.institution, "status"),
            SetStatus(**ref.model_dump(), status=frame.status),
            Session,
        )
        self._link.status = session.status
        return Reply(ack=StatusAck(status=session.status))

    def _may_monitor(self, queue: str) -> bool:
        config = self.gw.view.queues.get(queue)
        link = self._link
        return config is not None and (
            config.institution == link.institution
            or link.role == "consortium_admin"
            or config.institution in self.gw.view.partners_of(link.institution)
        )

    async def _check_monitorable(self, queue: str) -> None:
        if self.gw.view.queues.get(queue) is None:
            raise Refusal("not_found", f"no queue {queue}")
        if not self._may_monitor(queue):
            raise Refusal("forbidden", f"{queue} belongs to another institution")

    async def monitor(self, frame: MonitorSet) -> Reply:
        for queue in frame.queues:
            await self._check_monitorable(queue)
        ref = self._ref()
        session = await self.gw.bus.request(
            subjects.presence(ref.institution, "monitor"),
            SetMonitoring(**ref.model_dump(), queues=frame.queues),
            Session,
        )
        await self.gw.set_monitoring(self._link, frozenset(session.monitoring))
        snapshot = await self.snapshot()
        return Reply(ack=MonitorAck(monitoring=session.monitoring), then=[snapshot])

    async def snapshot(self) -> QueueSnapshot:
        by_institution: dict[str, list[str]] = {}
        for queue in sorted(self._link.monitoring):
            config = self.gw.view.queues.get(queue)
            if config is not None:
                by_institution.setdefault(config.institution, []).append(queue)
        chats: list[WaitingChatView] = []
        for institution, queues in by_institution.items():
            listing = await self.gw.bus.request(
                subjects.routing(institution, "queue"),
                ListQueues(institution=institution, queues=queues),
                QueueListing,
            )
            chats.extend(
                WaitingChatView(chat=w.chat, position=w.position, wait_s=w.wait_s)
                for w in listing.chats
            )
        return QueueSnapshot(chats=chats)

    def _must_be_online(self, doing: str) -> OperatorLink:
        link = self._link
        if link.status != "online":
            raise Refusal("forbidden", f"set your status to online to {doing}")
        return link

    async def _own(self, action: subjects.RoutingAction, chat_id: str) -> Reply:
        """Claim, take over or accept a chat; the ack carries the chat and its history."""
        link = self._must_be_online("take chats")
        request: Model
        if action in ("claim", "take"):
            request = ClaimChat(
                institution=link.institution,
                chat_id=chat_id,
                operator=link.username,
                operator_name=link.name,
                monitoring=sorted(link.monitoring),
                max_chats=link.max_chats,
            )
        else:
            request = AnswerOffer(
                institution=link.institution,
                chat_id=chat_id,
                operator=link.username,
                operator_name=link.name,
                max_chats=link.max_chats,
            )
        result = await self.gw.bus.request(
            subjects.routing(link.institution, action), request, ChatResult
        )
        # Known now, before the event comes round, so typing works at once. The chat's
        # history lives under its home library, which may not be ours.
        messages = await self.gw.own_chat(link, result.chat.institution, chat_id)
        return Reply(ack=OwnedAck(chat=result.chat, messages=messages))

    async def claim(self, frame: ChatClaim) -> Reply:
        return await self._own("claim", frame.chat_id)

    async def take(self, frame: ChatTake) -> Reply:
        return await self._own("take", frame.chat_id)

    async def accept(self, frame: TransferAccept) -> Reply:
        return await self._own("accept", frame.chat_id)

    async def decline(self, frame: TransferDecline) -> Reply:
        return await self._end_offer("decline", frame.chat_id)

    async def cancel_transfer(self, frame: TransferCancel) -> Reply:
        return await self._end_offer("cancel", frame.chat_id)

    async def _end_offer(self, action: Literal["decline", "cancel"], chat_id: str) -> Reply:
        """A target's no, or the owner's taking an offer back: the chat's state after."""
        link = self._link
        result = await self.gw.bus.request(
            subjects.routing(link.institution, action),
            AnswerOffer(
                institution=link.institution,
                chat_id=chat_id,
                operator=link.username,
                operator_name=link.name,
            ),
            ChatResult,
        )
        return Reply(ack=StateAck(state=result.chat.state))

    async def transfer(self, frame: ChatTransfer) -> Reply:
        link = self._link
        result = await self.gw.bus.request(
            subjects.routing(link.institution, "transfer"),
            TransferChat(
                institution=link.institution,
                chat_id=frame.chat_id,
                by=link.username,
                to_operator=frame.to.operator,
                to_queue=frame.to.queue,
                note=frame.note,
                cross_institution=frame.cross_institution,
            ),
            TransferResult,
        )
        return Reply(ack=TransferAck(chat=result.chat, targets=result.targets))

    async def start_proactive(self, frame: ChatStartProactive) -> Reply:
        link = self._must_be_online("start chats")
        body = domain.check_body(frame.body, self.gw.settings.max_body_bytes)
        since = self.gw.clock.now() - timedelta(seconds=self.gw.settings.proactive_window_s)
        widget_id = await self.gw.guests.guest_widget(link.institution, frame.guest_id, since)
        if widget_id is None:
            raise Refusal("not_found", "no such guest on your widgets in the last 24 hours")
        queue = frame.queue
        if queue is None:
            widget = self.gw.view.widget(widget_id)
            if widget is None:
                raise Refusal("not_found", "no such widget")
            queue = widget.queue
        chat_id = uuid.uuid4().hex
        result = await self.gw.bus.request(
            subjects.routing(link.institution, "proactive"),
            StartProactive(
                institution=link.institution,
                chat_id=chat_id,
                queue=queue,
                guest_id=frame.guest_id,
                widget=widget_id,
                operator=link.username,
                operator_name=link.name,
                body=body,
                patron_connected=self.gw.hub.guest_connected(frame.guest_id),
                max_chats=link.max_chats,
            ),
            ChatResult,
        )
        await self.gw.own_chat(link, result.chat.institution, chat_id)
        return Reply(ack=ProactiveAck(chat_id=chat_id, chat=result.chat))

    async def internal_send(self, frame: InternalSend) -> Reply:
        link = self._link
        body = domain.check_body(frame.body, self.gw.settings.max_body_bytes)
        target = frame.to
        if target.operator is not None:
            await self._check_colleague(target.operator)
        if target.queue is not None:
            await self._check_monitorable(target.queue)
        message = InternalMessage(
            id=uuid.uuid4().hex,
            institution=link.institution,
            conversation=domain.conversation_of(link.username, target),
            from_=self._sender(),
            to_operator=target.operator,
            to_queue=target.queue,
            to_all=bool(target.all),
            body=body,
            ts=iso(self.gw.clock.now()),
        )
        # Stored before it is delivered: what staff saw is always in the record.
        await self.gw.bus.request(
            subjects.transcripts(link.institution, "internal_save"), message, Done
        )
        await self.gw.bus.publish(subjects.staff_messages(link.institution), message)
        return Reply(ack=InternalSendAck(id=message.id, conversation=message.conversation))

    async def _check_colleague(self, username: str) -> None:
        link = self._link
        user = self.gw.view.account(username)
        if user is None or user.institution != link.institution:
            raise Refusal("not_found", f"no operator {username}")
        if username == link.username:
            raise Refusal("invalid", "that is you")
        lookup = await self.gw.bus.request(
            subjects.presence(link.institution, "get"),
            SessionQuery(institution=link.institution, operator=username),
            SessionLookup,
        )
        if lookup.session is None or lookup.session.status == "offline":
            raise Refusal("unavailable", f"{username} is not signed in")

    async def message(self, frame: OperatorMessage) -> Reply:
        body = frame.body if frame.body is not None else self._snippet(frame.snippet or "")
        sent = SendMessage(
            type="message", chat_id=frame.chat_id, body=body, client_id=frame.client_id
        )
        return await self.gw.post_message(self._link.institution, sent, self._sender())

    def _snippet(self, name: str) -> str:
        """A snippet's text, if it is the operator's library's or the consortium's."""
        found = self.gw.view.snippets.get(name)
        if found is None or found.institution not in (
            self._link.institution,
            self.gw.settings.consortium,
        ):
            raise Refusal("not_found", f"no snippet {name}")
        return found.body

    async def typing(self, frame: Typing) -> Reply:
        home = self.gw.feeds.home_of(frame.chat_id)
        if home is None or self.gw.hub.chat_owners.get(frame.chat_id) != self._link.username:
            raise Refusal("forbidden", "only the chat's owner may type in it")
        return await self.gw.send_typing(home, frame.chat_id, self._sender())

    async def tag(self, frame: ChatTag) -> Reply:
        link = self._link
        result = await self.gw.bus.request(
            subjects.routing(link.institution, "tag"),
            TagChat(
                institution=link.institution,
                chat_id=frame.chat_id,
                by=self._sender(),
                tags=frame.tags,
                remove=frame.remove,
            ),
            ChatResult,
        )
        return Reply(ack=ChatAck(chat=result.chat))

    async def close(self, frame: ChatClose) -> Reply:
        result = await self.gw.close_chat(
            self._link.institution, frame.chat_id, self._sender(), frame.tags
        )
        return Reply(ack=CloseAck(chat=result.chat, changed=result.changed))

    async def closed(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        if self.link is None:
            return
        link = self.link
        await self.gw.remove_operator(link)
        try:
            await self.gw.bus.request(
                subjects.presence(link.institution, "close"), self._ref(), Done
            )
        except Refusal:
            log.warning("could not close session of %s", link.username)


def _session_ref(link: OperatorLink) -> SessionRef:
    return SessionRef(
        institution=link.institution, operator=link.username, session_id=link.session_id
    )


def _session_frame(session: Session, chats: list[str]) -> SessionFrame:
    return SessionFrame(
        operator=session.operator,
        session_id=session.session_id,
        status=session.status,
        monitoring=session.monitoring,
        chats=chats,
    )
