"""Binds routing's NATS endpoints to the state machine: load, decide, compare-and-set, publish."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from services.routing import domain, metrics
from services.routing.store import ChatStore, QueueDirectory, StaleRevision
from shared import subjects
from shared.bus import Bus, Endpoint
from shared.clock import Clock
from shared.errors import Refusal
from shared.schemas.chat import ChatState
from shared.schemas.requests import (
    ChatResult,
    ClaimChat,
    CloseChat,
    ListQueues,
    MessageResult,
    PostMessage,
    QueueListing,
    Staffing,
    StaffingQuery,
    StartChat,
    StartChatResult,
    TagChat,
    WaitingChat,
)


class RoutingHandlers:
    def __init__(
        self, bus: Bus, chats: ChatStore, queues: QueueDirectory, clock: Clock, cas_attempts: int
    ) -> None:
        self.bus = bus
        self.chats = chats
        self.queues = queues
        self.clock = clock
        self.cas_attempts = cas_attempts

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint("start", subjects.routing_endpoint("start"), StartChat, self.start),
            Endpoint("claim", subjects.routing_endpoint("claim"), ClaimChat, self.claim),
            Endpoint("message", subjects.routing_endpoint("message"), PostMessage, self.message),
            Endpoint("tag", subjects.routing_endpoint("tag"), TagChat, self.tag),
            Endpoint("close", subjects.routing_endpoint("close"), CloseChat, self.close),
            Endpoint("queue", subjects.routing_endpoint("queue"), ListQueues, self.list_queues),
        ]

    async def _apply(
        self, institution: str, chat_id: str, decide: Callable[[ChatState], domain.Transition]
    ) -> domain.Transition:
        """Decide on the freshest state we can see; on a lost race, re-read and decide again."""
        for attempt in range(self.cas_attempts):
            state, revision = await self.chats.load(institution, chat_id, fresh=attempt > 0)
            transition = decide(state)
            if not transition.changed:
                return transition
            try:
                await self.chats.replace(transition.state, revision)
            except StaleRevision:
                metrics.CAS_RETRIES.inc()
                continue
            for event in transition.events:
                await self.bus.publish_event(event)
            return transition
        raise Refusal("conflict", "the chat is changing too fast; try again")

    async def start(self, req: StartChat) -> StartChatResult:
        queue = await self.queues.get(req.institution, req.queue)
        staffing = await self.bus.request(
            subjects.presence(req.institution, "staffing"),
            StaffingQuery(institution=req.institution, queue=queue.name),
            Staffing,
        )
        if not staffing.operators:
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
        await self.chats.create(transition.state)
        for event in transition.events:
            await self.bus.publish_event(event)
        metrics.ROUTING_DECISIONS.labels(reason).inc()
        metrics.CHATS_STARTED.labels(req.institution, queue.name).inc()
        chat = transition.state.chat
        waiting = self.chats.waiting(req.institution, queue.name)
        return StartChatResult(
            chat=chat,
            position=domain.queue_position(waiting, chat.id),
            estimated_wait_s=domain.estimate_wait(self.chats.recent_waits(queue.name)),
        )

    async def claim(self, req: ClaimChat) -> ChatResult:
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

    async def message(self, req: PostMessage) -> MessageResult:
        now = self.clock.now()
        transition = await self._apply(
            req.institution,
            req.chat_id,
            lambda state: domain.post_message(state, req.sender, req.body, now),
        )
        metrics.MESSAGES.labels(req.sender.kind).inc()
        event = transition.events[0]
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
            waiting = sorted(
                self.chats.waiting(req.institution, queue), key=lambda c: (c.created_at, c.id)
            )
            for position, chat in enumerate(waiting, start=1):
                wait = (now - datetime.fromisoformat(chat.created_at)).total_seconds()
                listing.append(WaitingChat(chat=chat, position=position, wait_s=round(wait, 1)))
        return QueueListing(chats=listing)
