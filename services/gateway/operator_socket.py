"""A member of staff's socket: `auth` opens a session in presence and restores their desk
(the queues they monitored, the chats they still own); then status, monitoring, internal
messages to colleagues, and the chat frames of `operator_chats`."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime

from starlette.datastructures import State
from starlette.websockets import WebSocket

from services.gateway import domain, metrics
from services.gateway.core import Gateway, session_ref
from services.gateway.frames import FrameLoop, Reply
from services.gateway.hub import OperatorLink, Outbox
from services.gateway.operator_chats import OperatorChats
from services.gateway.settings import GatewaySettings
from shared import subjects
from shared.clock import iso
from shared.errors import Refusal
from shared.schemas.base import Model
from shared.schemas.chat import Sender
from shared.schemas.protocol import (
    OPERATOR_FRAME,
    Auth,
    AuthAck,
    ChatResumed,
    InternalSend,
    InternalSendAck,
    MonitorAck,
    MonitorSet,
    QueueSnapshot,
    SessionFrame,
    StatusAck,
    StatusSet,
    WaitingChatView,
)
from shared.schemas.requests import (
    Done,
    InternalMessage,
    ListQueues,
    OpenSession,
    OwnedChats,
    OwnedChatsResult,
    QueueListing,
    Session,
    SessionLookup,
    SessionQuery,
    SessionRef,
    SetMonitoring,
    SetStatus,
)

log = logging.getLogger(__name__)


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
        return session_ref(self._link)

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
        chats = OperatorChats(self.gw, self.link)
        self.handlers = {
            "auth": self.auth,
            "status.set": self.status,
            "monitor.set": self.monitor,
            "chat.claim": chats.claim,
            "message": chats.message,
            "typing": chats.typing,
            "chat.tag": chats.tag,
            "chat.close": chats.close,
            "chat.transfer": chats.transfer,
            "transfer.accept": chats.accept,
            "transfer.decline": chats.decline,
            "transfer.cancel": chats.cancel_transfer,
            "chat.take": chats.take,
            "chat.start_proactive": chats.start_proactive,
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
        link = self._link
        view = self.gw.view
        return domain.may_monitor(link, view.queues.get(queue), view.partners_of(link.institution))

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
        domain.check_colleague(link, self.gw.view.account(username), username)
        lookup = await self.gw.bus.request(
            subjects.presence(link.institution, "get"),
            SessionQuery(institution=link.institution, operator=username),
            SessionLookup,
        )
        if lookup.session is None or lookup.session.status == "offline":
            raise Refusal("unavailable", f"{username} is not signed in")

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


def _session_frame(session: Session, chats: list[str]) -> SessionFrame:
    return SessionFrame(
        operator=session.operator,
        session_id=session.session_id,
        status=session.status,
        monitoring=session.monitoring,
        chats=chats,
    )


class OperatorSockets:
    """The operator socket endpoint, /ws/operator: each socket served until it closes."""

    def __init__(self, state: State, settings: GatewaySettings) -> None:
        # The application's state: its lifespan puts the Gateway there before any socket.
        self.state = state
        self.settings = settings

    async def __call__(self, ws: WebSocket) -> None:
        await ws.accept()
        gw: Gateway = self.state.gateway
        outbox = Outbox(ws, "operator", self.settings.outbox_limit)
        socket = OperatorSocket(gw, outbox)
        metrics.CONNECTIONS.labels("operator").inc()
        try:
            await socket.run(ws)
        finally:
            metrics.CONNECTIONS.labels("operator").dec()
            await socket.closed()
            await outbox.stop()
