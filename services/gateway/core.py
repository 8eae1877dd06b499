"""The gateway's core, one per process: its settings, bus, view of the configuration,
stores and tokens; the sockets open here (`hub`) and the chats they follow (`feeds`); and
what every socket asks of the rest of the system (following a chat, posting, typing,
closing, ending a session).

Around it: `fanout` hands what comes in from NATS to the sockets that should see it;
`frames` reads a socket's frames; `patron_socket`, `operator_socket` and `operator_chats`
handle them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import timedelta

from services.gateway import domain
from services.gateway.auth import Tokens
from services.gateway.fanout import FanOut
from services.gateway.feeds import ChatFeeds, SharedSubscriptions
from services.gateway.frames import Reply
from services.gateway.hub import Hub, OperatorLink, PatronLink
from services.gateway.idle_pages import Invitations, PageViewAllowance
from services.gateway.settings import GatewaySettings
from services.gateway.store import GuestStore, RevokedTokens
from services.gateway.throttle import Counters
from shared import subjects
from shared.bus import Bus, InFlight
from shared.clock import Clock, iso
from shared.configuration import ConfigView
from shared.errors import Refusal
from shared.schemas.chat import Message, Sender
from shared.schemas.protocol import MessageAck, SendMessage, SessionEndedFrame
from shared.schemas.records import Widget
from shared.schemas.requests import (
    ChatResult,
    CloseChat,
    EndReason,
    MessageResult,
    PostMessage,
    Session,
    SessionRef,
    TypingNotice,
    WidgetStatus,
    WidgetStatusQuery,
)

log = logging.getLogger(__name__)


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
        self.fanout = FanOut(self)
        self.feeds = ChatFeeds(self.bus, self.fanout.on_chat_events, self.fanout.on_ephemeral)
        self.subscriptions = SharedSubscriptions(self.bus)
        self.in_flight = InFlight(self.settings.max_frames_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self.view.listeners.append(self._config_changed)
        s = self.settings
        self.invitations = Invitations(self.clock, s.patron_grace_s)
        self.page_views = PageViewAllowance(self.clock, s.page_views_per_second, s.page_view_burst)

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
        self.hold_widget_status(status)
        return status

    def hold_widget_status(self, status: WidgetStatus) -> bool:
        """Keep the newest status of a widget; True when it differs from the one held."""
        held = self.widgets.get(status.widget)
        if held is not None and held.at > status.at:
            return False  # an older announcement, overtaken (replicas announce apart)
        self.widgets[status.widget] = status
        return held is None or domain.widget_changed(held, status)

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
        ref = session_ref(link)
        try:
            await self.bus.request(subjects.presence(ref.institution, "heartbeat"), ref, Session)
        except Refusal as refusal:
            return refusal.code != "gone"
        return True

    async def heartbeats(self) -> None:
        """Keep this replica's operator sessions alive in presence; end those it says are
        gone. Every `heartbeat_s` by the injected clock."""
        while True:
            await self.clock.sleep_until(
                self.clock.now() + timedelta(seconds=self.settings.heartbeat_s)
            )
            for link in list(self.hub.sessions.values()):
                try:
                    alive = await self.heartbeat(link)
                except Exception:
                    log.exception("heartbeat failed for %s", link.username)
                    continue
                if not alive:
                    await self.end_session(link, "expired")

    async def end_session(self, link: OperatorLink, reason: EndReason) -> None:
        link.outbox.send(SessionEndedFrame(reason=reason))
        link.outbox.close(4001)
        await self.remove_operator(link)

    # --- what this replica's sockets watch ---------------------------------------------------

    async def add_operator(self, link: OperatorLink) -> None:
        self.hub.add_operator(link)
        await self.subscriptions.hold(
            subjects.operator_records(link.username), self.fanout.operator_handler(link.username)
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
            await self.subscriptions.hold(
                subjects.queue_records(queue), self.fanout.queue_handler(queue)
            )
        for queue in sorted(before - queues):
            await self.subscriptions.release(subjects.queue_records(queue))

    async def add_patron(self, link: PatronLink) -> None:
        self.hub.add_patron(link)
        await self.subscriptions.hold(
            subjects.guest_records(link.institution, link.guest_id), self.fanout.on_guest_record
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


def session_ref(link: OperatorLink) -> SessionRef:
    return SessionRef(
        institution=link.institution, operator=link.username, session_id=link.session_id
    )
