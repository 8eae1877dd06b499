"""A patron's socket on a widget: `hello` (a new guest, or a returning one with their open
chat), then starting a chat, messages, typing and ending it."""

from __future__ import annotations

import logging
import uuid
from collections import Counter

from starlette.datastructures import State
from starlette.websockets import WebSocket

from services.gateway import domain, metrics
from services.gateway.auth import GuestClaims
from services.gateway.core import Gateway
from services.gateway.frames import FrameLoop, Reply
from services.gateway.hub import Outbox, PatronLink
from services.gateway.settings import GatewaySettings
from services.gateway.throttle import counter_key
from shared import subjects
from shared.errors import Refusal
from shared.schemas.base import Model
from shared.schemas.chat import Sender
from shared.schemas.protocol import (
    PATRON_FRAME,
    ChatQueuedFrame,
    ChatResumed,
    ChatStartAck,
    Error,
    Hello,
    HelloAck,
    PatronChatEnd,
    PatronChatStart,
    SendMessage,
    StateAck,
    Typing,
    Welcome,
    WidgetInfo,
)
from shared.schemas.records import Widget
from shared.schemas.requests import (
    ChatResult,
    PatronPresence,
    ResumeChat,
    ResumeResult,
    StartChat,
    StartChatResult,
)

log = logging.getLogger(__name__)


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


class PatronSockets:
    """The patron socket endpoint, /ws/patron?widget=<id>: a socket is let in for a known
    widget, from a page the widget is for, and while its address has fewer than
    `patron_sockets_per_address` open here; then served until it closes."""

    def __init__(self, state: State, settings: GatewaySettings) -> None:
        # The application's state: its lifespan puts the Gateway there before any socket.
        self.state = state
        self.settings = settings
        self.own_origin = domain.origin_of(settings.public_url)
        self.open: Counter[str] = Counter()

    async def __call__(self, ws: WebSocket) -> None:
        settings = self.settings
        await ws.accept()
        widget = ws.query_params.get("widget", "")
        gw: Gateway = self.state.gateway
        outbox = Outbox(ws, "patron", settings.outbox_limit)
        config = gw.view.widget(widget)
        address = ws.client.host if ws.client else "?"
        refusal = domain.patron_socket_refusal(
            config,
            ws.headers.get("origin"),
            self.own_origin,
            self.open[address],
            settings.patron_sockets_per_address,
        )
        if refusal is not None:
            error, code = refusal
            outbox.send(Error(code=error.code, message=error.message))
            await outbox.finish(code)
            return
        assert config is not None
        self.open[address] += 1
        socket = PatronSocket(gw, outbox, config, address)
        metrics.CONNECTIONS.labels("patron").inc()
        try:
            await socket.run(ws)
        finally:
            self.open[address] -= 1
            if self.open[address] <= 0:
                del self.open[address]  # the count stays as small as what is open
            metrics.CONNECTIONS.labels("patron").dec()
            await socket.closed()
            await outbox.stop()
