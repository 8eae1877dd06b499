"""Binds routing's NATS endpoints to the state machine: load, decide, compare-and-set, publish."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from nats.aio.msg import Msg
from pydantic import ValidationError

from services.routing import domain, metrics
from services.routing.store import ChatStore, QueueDirectory, StaleRevision
from shared import subjects
from shared.bus import Bus, Endpoint
from shared.clock import Clock
from shared.errors import Refusal
from shared.schemas.chat import ChatState
from shared.schemas.requests import (
    SESSION_EVENT,
    AnswerOffer,
    ChatResult,
    ClaimChat,
    CloseChat,
    ListQueues,
    MessageResult,
    OwnedChats,
    OwnedChatsResult,
    PatronPresence,
    PostMessage,
    QueueListing,
    QueuePosition,
    ResumeChat,
    ResumeResult,
    SessionEnded,
    SessionLookup,
    SessionQuery,
    Staffing,
    StaffingQuery,
    StartChat,
    StartChatResult,
    StartProactive,
    TagChat,
    TransferChat,
    TransferResult,
    WaitingChat,
)

log = logging.getLogger(__name__)

# Events after which the other chats of the queue have moved up (or down).
QUEUE_MOVES = frozenset({"claimed", "missed", "requeued"})


class RoutingHandlers:
    def __init__(
        self,
        bus: Bus,
        chats: ChatStore,
        queues: QueueDirectory,
        clock: Clock,
        cas_attempts: int,
        timing: domain.Timing,
    ) -> None:
        self.bus = bus
        self.chats = chats
        self.queues = queues
        self.clock = clock
        self.cas_attempts = cas_attempts
        self.timing = timing

    def endpoints(self) -> list[Endpoint]:
        def bind(action: subjects.RoutingAction, request: type, handler: Callable) -> Endpoint:
            return Endpoint(action, subjects.routing_endpoint(action), request, handler)

        return [
            bind("start", StartChat, self.start),
            bind("claim", ClaimChat, self.claim),
            bind("message", PostMessage, self.message),
            bind("tag", TagChat, self.tag),
            bind("close", CloseChat, self.close),
            bind("queue", ListQueues, self.list_queues),
            bind("transfer", TransferChat, self.transfer),
            bind("accept", AnswerOffer, self.accept),
            bind("decline", AnswerOffer, self.decline),
            bind("take", ClaimChat, self.take),
            bind("patron_left", PatronPresence, self.patron_left),
            bind("resume", ResumeChat, self.resume),
            bind("owned", OwnedChats, self.owned),
            bind("proactive", StartProactive, self.proactive),
        ]

    # --- the one way a chat changes ----------------------------------------------------------

    async def _apply(
        self, institution: str, chat_id: str, decide: Callable[[ChatState], domain.Transition]
    ) -> domain.Transition:
        """Decide on the freshest state we can see; on a lost race, re-read and decide again.

        The first try may use this replica's cached copy, which can lag another replica's
        write by a moment. A write from it is safe (the compare-and-set refuses a stale
        revision), but a refusal or a no-op is only answered once it stands on a fresh read.
        """
        fresh = False
        for _ in range(self.cas_attempts):
            cached = not fresh and self.chats.is_cached(institution, chat_id)
            state, revision = await self.chats.load(institution, chat_id, fresh=fresh)
            try:
                transition = decide(state)
            except Refusal:
                if cached:
                    fresh = True
                    continue
                raise
            if not transition.changed:
                if cached:
                    fresh = True
                    continue
                return transition
            try:
                await self.chats.replace(transition.state, revision)
            except StaleRevision:
                metrics.CAS_RETRIES.inc()
                fresh = True
                continue
            await self._published(transition)
            return transition
        raise Refusal("conflict", "the chat is changing too fast; try again")

    async def _opened(self, transition: domain.Transition) -> None:
        """A new chat: its entry is created (never overwritten), then its events go out."""
        await self.chats.create(transition.state)
        await self._published(transition)
        chat = transition.state.chat
        metrics.CHATS_STARTED.labels(chat.institution, chat.queue).inc()

    async def _published(self, transition: domain.Transition) -> None:
        for event in transition.events:
            await self.bus.publish_event(event)
            metrics.TRANSITIONS.labels(event.type).inc()
        if any(event.type in QUEUE_MOVES for event in transition.events):
            await self._announce_positions(transition.state.chat.institution, transition)

    async def _announce_positions(self, institution: str, transition: domain.Transition) -> None:
        """Tell every patron still waiting in the queue where they now stand."""
        queue = transition.state.chat.queue
        waiting = domain.queue_order(self.chats.waiting(institution, queue))
        estimate = domain.estimate_wait(self.chats.recent_waits(queue))
        for position, chat in enumerate(waiting, start=1):
            update = QueuePosition(
                institution=institution,
                chat_id=chat.id,
                position=position,
                estimated_wait_s=estimate,
            )
            await self.bus.publish(subjects.chat_position(institution, chat.id), update)

    # --- who is there ---------------------------------------------------------------------

    async def _staffing(self, institution: str, queue: str) -> list[str]:
        """Operators who can take one more chat of the queue now."""
        staffing = await self.bus.request(
            subjects.presence(institution, "staffing"),
            StaffingQuery(institution=institution, queue=queue),
            Staffing,
        )
        return [
            op
            for op in staffing.operators
            if not self._at_limit(institution, op, staffing.limits.get(op))
        ]

    async def _session(self, institution: str, operator: str) -> SessionLookup:
        return await self.bus.request(
            subjects.presence(institution, "get"),
            SessionQuery(institution=institution, operator=operator),
            SessionLookup,
        )

    def _at_limit(self, institution: str, operator: str, max_chats: int | None) -> bool:
        return (
            max_chats is not None and len(self.chats.owned_by(institution, operator)) >= max_chats
        )

    def _check_limit(self, institution: str, operator: str, max_chats: int | None) -> None:
        if self._at_limit(institution, operator, max_chats):
            raise Refusal("forbidden", f"you are at your limit of {max_chats} open chats")

    # --- patron side --------------------------------------------------------------------------

    async def start(self, req: StartChat) -> StartChatResult:
        queue = await self.queues.get(req.institution, req.queue)
        if not await self._staffing(req.institution, queue.name):
            metrics.ROUTING_DECISIONS.labels("unstaffed").inc()
            raise Refusal("unavailable", f"nobody is answering {queue.display_name} right now")
        reason = "staffed"
        transition = domain.start_chat(
            domain.NewChat(
                chat_id=req.chat_id,
                institution=req.institution,
                widget=req.widget,
                queue=queue.name,
                guest_id=req.guest_id,
                question=req.question,
                name=req.name,
                email=req.email,
                reason=reason,
            ),
            self.clock.now(),
        )
        await self._opened(transition)
        metrics.ROUTING_DECISIONS.labels(reason).inc()
        chat = transition.state.chat
        waiting = self.chats.waiting(req.institution, queue.name)
        return StartChatResult(
            chat=chat,
            position=domain.queue_position(waiting, chat.id),
            estimated_wait_s=domain.estimate_wait(self.chats.recent_waits(queue.name)),
        )

    async def patron_left(self, req: PatronPresence) -> ChatResult:
        now = self.clock.now()

        def decide(state: ChatState) -> domain.Transition:
            if state.chat.patron.guest_id != req.guest_id:
                raise Refusal("forbidden", "this is not your chat")
            return domain.patron_left(state, now)

        transition = await self._apply(req.institution, req.chat_id, decide)
        return ChatResult(chat=transition.state.chat, changed=transition.changed)

    async def resume(self, req: ResumeChat) -> ResumeResult:
        """The guest's open chat, if any, with the guest marked present again."""
        chat = self.chats.open_chat_of_guest(req.institution, req.guest_id)
        if chat is None:
            return ResumeResult()
        now = self.clock.now()
        transition = await self._apply(
            req.institution, chat.id, lambda state: domain.patron_returned(state, now)
        )
        resumed = transition.state.chat
        return ResumeResult(chat=resumed if resumed.state in domain.OPEN_STATES else None)

    # --- operator side ------------------------------------------------------------------------

    async def claim(self, req: ClaimChat) -> ChatResult:
        self._check_limit(req.institution, req.operator, req.max_chats)
        now = self.clock.now()
        transition = await self._apply(
            req.institution,
            req.chat_id,
            lambda state: domain.claim(state, req.operator, req.operator_name, req.monitoring, now),
        )
        chat = transition.state.chat
        metrics.CHAT_WAIT.labels(chat.queue).observe(
            (now - datetime.fromisoformat(chat.created_at)).total_seconds()
        )
        return ChatResult(chat=chat)

    async def take(self, req: ClaimChat) -> ChatResult:
        self._check_limit(req.institution, req.operator, req.max_chats)
        now = self.clock.now()
        transition = await self._apply(
            req.institution,
            req.chat_id,
            lambda state: domain.take(state, req.operator, req.operator_name, req.monitoring, now),
        )
        return ChatResult(chat=transition.state.chat)

    async def message(self, req: PostMessage) -> MessageResult:
        now = self.clock.now()
        transition = await self._apply(
            req.institution,
            req.chat_id,
            lambda state: domain.post_message(state, req.sender, req.body, now),
        )
        metrics.MESSAGES.labels(req.sender.kind).inc()
        event = transition.events[-1]
        assert event.type == "message"
        return MessageResult(message=event.message)

    async def tag(self, req: TagChat) -> ChatResult:
        now = self.clock.now()
        transition = await self._apply(
            req.institution, req.chat_id, lambda state: domain.tag(state, req.by, req.tags, now)
        )
        return ChatResult(chat=transition.state.chat, changed=transition.changed)

    async def close(self, req: CloseChat) -> ChatResult:
        now = self.clock.now()
        transition = await self._apply(
            req.institution, req.chat_id, lambda state: domain.close(state, req.by, req.tags, now)
        )
        return ChatResult(chat=transition.state.chat, changed=transition.changed)

    async def list_queues(self, req: ListQueues) -> QueueListing:
        now = self.clock.now()
        listing: list[WaitingChat] = []
        for queue in req.queues:
            waiting = domain.queue_order(self.chats.waiting(req.institution, queue))
            for position, chat in enumerate(waiting, start=1):
                wait = (now - datetime.fromisoformat(chat.created_at)).total_seconds()
                listing.append(WaitingChat(chat=chat, position=position, wait_s=round(wait, 1)))
        return QueueListing(chats=listing)

    async def owned(self, req: OwnedChats) -> OwnedChatsResult:
        return OwnedChatsResult(chats=self.chats.owned_by(req.institution, req.operator))

    async def proactive(self, req: StartProactive) -> ChatResult:
        queue = await self.queues.get(req.institution, req.queue)
        if self.chats.open_chat_of_guest(req.institution, req.guest_id) is not None:
            raise Refusal("conflict", "this guest is already in a chat")
        self._check_limit(req.institution, req.operator, req.max_chats)
        transition = domain.start_proactive(
            domain.NewProactiveChat(
                chat_id=req.chat_id,
                institution=req.institution,
                queue=queue.name,
                guest_id=req.guest_id,
                widget=req.widget,
                operator=req.operator,
                operator_name=req.operator_name,
                body=req.body,
                patron_connected=req.patron_connected,
            ),
            self.clock.now(),
        )
        await self._opened(transition)
        return ChatResult(chat=transition.state.chat)

    # --- transfers ----------------------------------------------------------------------------

    async def _transfer_targets(self, req: TransferChat) -> list[str]:
        if (req.to_operator is None) == (req.to_queue is None):
            raise Refusal("invalid", "transfer to exactly one operator or one queue")
        if req.to_queue is not None:
            queue = await self.queues.get(req.institution, req.to_queue)
            return await self._staffing(req.institution, queue.name)
        assert req.to_operator is not None
        if not await self.queues.user_exists(req.institution, req.to_operator):
            raise Refusal("not_found", f"no operator {req.to_operator}")
        session = (await self._session(req.institution, req.to_operator)).session
        if session is None or session.status != "online":
            raise Refusal("unavailable", f"{req.to_operator} is not online")
        if self._at_limit(req.institution, req.to_operator, session.max_chats):
            raise Refusal("unavailable", f"{req.to_operator} is at their chat limit")
        return [req.to_operator]

    async def transfer(self, req: TransferChat) -> TransferResult:
        targets = await self._transfer_targets(req)
        now = self.clock.now()
        transition = await self._apply(
            req.institution,
            req.chat_id,
            lambda state: domain.offer_transfer(
                state,
                req.by,
                targets,
                now,
                self.timing.offer_timeout_s,
                to_operator=req.to_operator,
                to_queue=req.to_queue,
                note=req.note,
            ),
        )
        offer = transition.state.offer
        assert offer is not None
        return TransferResult(chat=transition.state.chat, targets=offer.targets)

    async def accept(self, req: AnswerOffer) -> ChatResult:
        self._check_limit(req.institution, req.operator, req.max_chats)
        now = self.clock.now()
        transition = await self._apply(
            req.institution,
            req.chat_id,
            lambda state: domain.accept_transfer(state, req.operator, req.operator_name, now),
        )
        return ChatResult(chat=transition.state.chat)

    async def decline(self, req: AnswerOffer) -> ChatResult:
        now = self.clock.now()
        transition = await self._apply(
            req.institution,
            req.chat_id,
            lambda state: domain.decline_transfer(state, req.operator, now),
        )
        return ChatResult(chat=transition.state.chat, changed=transition.changed)

    # --- what time and presence decide --------------------------------------------------------

    async def run_due(self, institution: str, chat_id: str) -> domain.Transition:
        """Apply whatever has come due for the chat. A disconnected owner found signed in
        again (their sign-in event may have been missed) keeps the chat instead of losing it."""
        state, _ = await self.chats.load(institution, chat_id)
        owner = state.chat.owner
        if state.owner_left_at is not None and owner is not None:
            if (await self._session(institution, owner)).session is not None:
                now = self.clock.now()
                await self._apply(
                    institution, chat_id, lambda s: domain.owner_returned(s, owner, now)
                )
        return await self._apply(
            institution, chat_id, lambda s: domain.due(s, self.clock.now(), self.timing)
        )

    async def on_presence_event(self, msg: Msg) -> None:
        """Sessions starting and ending move the owner grace period of their chats."""
        try:
            event = SESSION_EVENT.validate_json(msg.data)
        except ValidationError:
            log.warning("unreadable presence event on %s", msg.subject)
            return
        institution, operator = event.institution, event.operator
        if isinstance(event, SessionEnded):
            if event.reason == "signed_in_elsewhere":
                return  # the operator is still here, in a newer session
            if (await self._session(institution, operator)).session is not None:
                return  # already signed in again
        mark = domain.owner_left if isinstance(event, SessionEnded) else domain.owner_returned
        now = self.clock.now()
        for chat in self.chats.owned_by(institution, operator):
            try:
                await self._apply(institution, chat.id, lambda s: mark(s, operator, now))
            except Refusal as refusal:
                log.warning("could not mark owner of %s: %s", chat.id, refusal.message)
