"""What comes in from NATS, handed to the sockets of this replica that should see it: a
followed chat's events, typing and queue positions; queue, operator and guest records;
sessions ended elsewhere, staff messages, ticket notices, announcements and widget status.

A message that does not parse is dropped, never silently: logged, and counted in
`refdesk_gateway_unreadable_messages_total` by what it should have been."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from nats.aio.msg import Msg
from pydantic import ValidationError

from services.gateway import domain, metrics
from shared import subjects
from shared.audience import by_subject_of_operator
from shared.meters import child
from shared.schemas.events import (
    ChatEvent,
    MessagePosted,
    RecordEvents,
    TransferOffered,
    parse_record_events,
)
from shared.schemas.protocol import AnnouncementFrame, ChatStarted, QueuePositionFrame, TypingFrame
from shared.schemas.requests import (
    SESSION_EVENT,
    Announcement,
    InternalMessage,
    QueuePosition,
    SessionEnded,
    TypingNotice,
    WidgetStatus,
)
from shared.schemas.tickets import TicketNotice

if TYPE_CHECKING:
    from services.gateway.core import Gateway

log = logging.getLogger(__name__)


class FanOut:
    """This replica's subscriptions, and what each delivers to the sockets `gw` holds."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    async def subscribe(self) -> None:
        self.gw.bus.lag.start()
        await self.gw.bus.subscribe(subjects.presence_events(), self.on_presence_event)
        await self.gw.bus.subscribe(subjects.staff_messages(), self.on_staff_message)
        await self.gw.bus.subscribe(
            subjects.announcements(self.gw.settings.consortium), self.on_announcement
        )
        await self.gw.bus.subscribe(subjects.widget_status_all(), self.on_widget_status)
        await self.gw.bus.subscribe(subjects.ticket_notices(), self.on_ticket_notice)
        await self.gw.bus.subscribe(subjects.guest_records_all(), self.on_invitation)
        self.gw.bus.on_missed.append(self.gw.feeds.resync)

    def _deliver(self, to: domain.To, text: str, chat_id: str) -> int:
        """Hand a frame to the sockets it is for here; returns how many."""
        links: list[Any] = []
        if to.patron:
            links = list(self.gw.hub.patrons_by_chat.get(chat_id, ()))
        elif to.operator is not None:
            operator = self.gw.hub.owner(to.operator)
            links = [] if operator is None else [operator]
        elif to.queue is not None:
            links = list(self.gw.hub.watchers.get(to.queue, ()))
        for link in links:
            link.outbox.send_text(text)
        return len(links)

    async def on_chat_events(self, events: list[ChatEvent]) -> None:
        """A followed chat's events: for its patron, and for its owner while owning it."""
        for event in events:
            chat = event.chat
            self.gw.hub.track_owner(
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
                latency = (self.gw.clock.now() - sent).total_seconds()
                child(metrics.DELIVERY_SECONDS, way).observe(max(0.0, latency))
            if chat.state in ("closed", "missed"):
                self.gw.hub.end_chat(chat.id)
            await self.gw.refresh_interest(chat.id)

    async def on_ephemeral(self, kind: str, data: bytes) -> None:
        if kind == "typing":
            await self._on_typing(data)
        elif kind == "position":
            await self._on_position(data)

    def queue_handler(self, queue: str) -> Callable[[Msg], Awaitable[None]]:
        async def on_queue_record(msg: Msg) -> None:
            record = readable(msg)
            if record is None:
                return
            for event in record.events:
                for to, frame in domain.deliveries(event):
                    if to.queue == queue:
                        self._deliver(to, frame.model_dump_json(), event.chat.id)

        return on_queue_record

    def operator_handler(self, operator: str) -> Callable[[Msg], Awaitable[None]]:
        async def on_operator_record(msg: Msg) -> None:
            record = readable(msg)
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
        record = readable(msg)
        if record is None:
            return
        chat = record.events[0].chat
        links = [
            link
            for link in self.gw.hub.patrons_by_guest.get(chat.patron.guest_id, ())
            if link.institution == chat.institution
        ]
        if not links:
            return
        for link in links:
            self.gw.hub.follow_chat(link, chat.id)
            link.outbox.send(ChatStarted(chat=domain.patron_chat(chat)))
        await self.gw.feeds.follow(chat.institution, chat.id)
        await self.gw.feeds.take_record(chat.id, record)

    async def on_invitation(self, msg: Msg) -> None:
        """A proactive chat started, for a guest with or without a socket anywhere: listed
        in its widget's status, so the guest's page opens the widget on its next refresh
        (a socket here gets it at once, by `on_guest_record`)."""
        record = readable(msg)
        if record is None:
            return
        chat = record.events[0].chat
        if chat.origin == "proactive" and chat.widget is not None:
            self.gw.invitations.add(chat.widget, chat.patron.guest_id, chat.id)

    async def _offer(self, event: TransferOffered, operator: str) -> None:
        """Offer the chat, with its history, to a target connected to this replica."""
        link = self.gw.hub.owner(operator)
        if link is None:
            return
        messages = await self.gw.chat_messages(event.chat.institution, event.chat.id)
        link.outbox.send(domain.offer_frame(event, messages))

    async def _on_typing(self, data: bytes) -> None:
        try:
            notice = TypingNotice.model_validate_json(data)
        except ValidationError:
            unreadable("typing_notice", "a followed chat")
            return
        if notice.from_.kind == "patron":
            owner = self.gw.hub.owner(self.gw.hub.chat_owners.get(notice.chat_id))
            if owner is not None:
                owner.outbox.send(TypingFrame(chat_id=notice.chat_id, from_=notice.from_))
        else:
            links = self.gw.hub.patrons_by_chat.get(notice.chat_id, ())
            if links:
                text = domain.patron_typing(notice.chat_id, notice.from_).model_dump_json()
                for link in links:
                    link.outbox.send_text(text)

    async def _on_position(self, data: bytes) -> None:
        try:
            update = QueuePosition.model_validate_json(data)
        except ValidationError:
            unreadable("queue_position", "a followed chat")
            return
        links = self.gw.hub.patrons_by_chat.get(update.chat_id, ())
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
            unreadable("session_event", msg.subject)
            return
        if not isinstance(event, SessionEnded) or event.reason == "disconnected":
            return
        link = self.gw.hub.sessions.get(event.session_id)
        if link is not None:
            await self.gw.end_session(link, event.reason)

    async def on_staff_message(self, msg: Msg) -> None:
        try:
            message = InternalMessage.model_validate_json(msg.data)
        except ValidationError:
            unreadable("staff_message", msg.subject)
            return
        text = domain.internal_frame(message).model_dump_json()
        for link in domain.internal_recipients(message, self.gw.hub.staff_of(message.institution)):
            link.outbox.send_text(text)

    async def on_ticket_notice(self, msg: Msg) -> None:
        try:
            notice = TicketNotice.model_validate_json(msg.data)
        except ValidationError:
            unreadable("ticket_notice", msg.subject)
            return
        staff = self.gw.hub.staff_of(notice.ticket.institution)
        recipients = domain.ticket_recipients(notice, staff)
        if recipients:
            text = domain.ticket_frame(notice).model_dump_json()
            for link in recipients:
                link.outbox.send_text(text)

    async def on_announcement(self, msg: Msg) -> None:
        try:
            announcement = Announcement.model_validate_json(msg.data)
        except ValidationError:
            unreadable("announcement", msg.subject)
            return
        text = AnnouncementFrame(
            id=announcement.id, from_=announcement.from_, body=announcement.body, ts=announcement.ts
        ).model_dump_json(by_alias=True)
        for link in list(self.gw.hub.sessions.values()):
            link.outbox.send_text(text)

    async def on_widget_status(self, msg: Msg) -> None:
        try:
            status = WidgetStatus.model_validate_json(msg.data)
        except ValidationError:
            unreadable("widget_status", msg.subject)
            return
        if not self.gw.hold_widget_status(status):
            return
        links = self.gw.hub.patrons_by_widget.get(status.widget, ())
        if links:
            text = domain.widget_frame(status).model_dump_json()
            for link in links:
                link.outbox.send_text(text)


def readable(msg: Msg) -> RecordEvents | None:
    child(metrics.RECORDS_IN, msg.subject.split(".", 1)[0]).inc()
    try:
        return parse_record_events(msg.data)
    except ValidationError:
        unreadable("chat_record", msg.subject)
        return None


def unreadable(kind: str, where: str) -> None:
    """A message from the bus that does not parse (another version's, or forged) is
    dropped: nothing here could act on it. Never silently: it is logged and counted, so
    that a version mismatch shows before patrons notice what they no longer hear."""
    log.warning("unreadable %s on %s", kind.replace("_", " "), where)
    child(metrics.UNREADABLE, kind).inc()
