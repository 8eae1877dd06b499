"""Binds routing's NATS endpoints to the state machine: load, decide, compare-and-set, publish."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from services.routing import coverage, domain, metrics
from services.routing.placement import Placement
from services.routing.store import ChatStore, QueueDirectory
from shared import subjects
from shared.bus import Bus, Endpoint
from shared.clock import Clock
from shared.endpoints import Q
from shared.errors import Refusal, StaleRevision
from shared.meters import child
from shared.retries import KeyedLocks, until_written
from shared.schemas.base import Model
from shared.schemas.chat import ChatState, SkippedQueue
from shared.schemas.records import Queue
from shared.schemas.requests import (
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
    SessionChanged,
    SessionEnded,
    SessionEvent,
    StartChat,
    StartChatResult,
    StartProactive,
    TagChat,
    TransferChat,
    TransferResult,
    WaitingChat,
)

log = logging.getLogger(__name__)

# Why a chat stays put when the chain, as configured now, has no queue after its own.
ROLLOVER_OFF = "no later queue in the chain"
# Events after which the other chats of the queue have moved up (or down).
QUEUE_MOVES = frozenset({"claimed", "missed", "requeued", "rolled_over"})
Staffed = Callable[[Queue], Awaitable[bool]]


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
        self.placement = Placement(bus, chats, queues, clock)
        # Told of every sign-in, sign-out, status and monitoring change (widget availability).
        self.on_staffing_change: Callable[[], None] | None = None
        self._turns = KeyedLocks()

    def endpoints(self) -> list[Endpoint[Any]]:
        def bind(
            action: subjects.RoutingAction, handler: Callable[[Q], Awaitable[Model]]
        ) -> Endpoint[Q]:
            return Endpoint.of(action, subjects.routing_endpoint(action), handler)

        return [
            bind("start", self.start),
            bind("claim", self.claim),
            bind("message", self.message),
            bind("tag", self.tag),
            bind("close", self.close),
            bind("queue", self.list_queues),
            bind("transfer", self.transfer),
            bind("accept", self.accept),
            bind("decline", self.decline),
            bind("cancel", self.cancel),
            bind("take", self.take),
            bind("patron_left", self.patron_left),
            bind("resume", self.resume),
            bind("owned", self.owned),
            bind("proactive", self.proactive),
            bind("coverage", self.placement.coverage_of),
            bind("widget", self.placement.widget),
        ]

    # --- the one way a chat changes ----------------------------------------------------------

    async def _apply(
        self,
        institution: str,
        chat_id: str,
        decide: Callable[[ChatState], domain.Transition],
        answering_offer: bool = False,
    ) -> domain.Transition:
        """Decide on the freshest state we can see and write the result as one record; on
        a lost race, re-read and decide again.

        The first try may use this replica's cached copy, which can lag another replica's
        write by a moment. A write from it is safe (the append is conditional on the
        chat's last record), but a refusal or a no-op is only answered once it stands on
        a fresh read.

        `institution` is the asker's: a chat is found by id and answered only to an
        institution it is visible to (see `Chat.visible_to`), or, `answering_offer`, one
        it has been offered to.
        """

        async def attempt(n: int) -> domain.Transition:
            if n > 0:
                return await decide_and_write(fresh=True)
            async with self._turns.hold(chat_id):
                return await decide_and_write(fresh=False)

        async def decide_and_write(fresh: bool) -> domain.Transition:
            cached = not fresh and self.chats.is_cached(chat_id)
            state, seq = await self.chats.load(chat_id, fresh=fresh)
            told = answering_offer and institution in state.offered_to
            if not (told or self._may_act(state, institution)):
                raise Refusal("not_found", f"no chat {chat_id}")
            try:
                transition = decide(state)
            except Refusal:
                if cached:
                    raise StaleRevision(chat_id) from None  # stands only on a fresh read
                raise
            if not transition.changed:
                if cached:
                    raise StaleRevision(chat_id)
                return transition
            try:
                await self.chats.append(transition, seq)
            except StaleRevision:
                metrics.CAS_RETRIES.inc()
                raise
            await self._announce_moves(transition)
            return transition

        return await until_written(
            attempt, self.cas_attempts, "the chat is changing too fast; try again"
        )

    def _may_act(self, state: ChatState, institution: str) -> bool:
        chat = state.chat
        partners = self.queues.partners_of(chat.queue_institution or chat.institution)
        return domain.may_act(chat, institution, partners)

    async def _opened(self, transition: domain.Transition) -> None:
        """A new chat: its first record is written only if the chat has none yet."""
        await self.chats.create(transition)
        await self._announce_moves(transition)
        chat = transition.state.chat
        metrics.CHATS_STARTED.labels(chat.institution, chat.queue).inc()

    async def _announce_moves(self, transition: domain.Transition) -> None:
        """Count the events, and tell the patrons of queues the transition moved where
        they now stand."""
        moved: set[str] = set()
        for event in transition.events:
            metrics.count(event)
            if event.type in QUEUE_MOVES:
                moved.add(event.chat.queue)
            if event.type == "rolled_over":
                moved.add(event.from_queue)
        for queue in sorted(moved):
            await self._announce_positions(queue)

    async def _announce_positions(self, queue: str) -> None:
        """Tell every patron still waiting in the queue where they now stand."""
        waiting = domain.queue_order(self.chats.waiting(queue))
        estimate = domain.estimate_wait(self.chats.recent_waits(queue))
        for position, chat in enumerate(waiting, start=1):
            update = QueuePosition(
                institution=chat.institution,
                chat_id=chat.id,
                position=position,
                estimated_wait_s=estimate,
            )
            await self.bus.publish(subjects.chat_position(chat.institution, chat.id), update)

    # --- patron side --------------------------------------------------------------------------

    async def start(self, req: StartChat) -> StartChatResult:
        """The chat goes to the first queue of the widget queue's chain that is open and
        staffed now; none is: `unavailable`, and the widget offers the message form."""
        directory, home = await self.placement.home_queue(req.institution, req.queue)
        chain = directory.chain(home.name)
        choice = await self.placement.walk(directory, chain, self.placement.is_staffed)
        self.placement.count("start", choice, moved=choice.queue != home.name)
        if choice.queue is None:
            raise Refusal(
                "unavailable", f"nobody is answering {home.display_name} now ({choice.reason})"
            )
        target = directory.queues[choice.queue]
        transition = domain.start_chat(
            domain.NewChat(
                chat_id=req.chat_id,
                institution=req.institution,
                widget=req.widget,
                queue=target.name,
                guest_id=req.guest_id,
                question=req.question,
                name=req.name,
                email=req.email,
                page=req.page,
                reason=choice.reason,
                queue_institution=target.institution,
                chain=tuple(chain),
                rollover_after_s=target.rollover_after_s,
                skipped=tuple(_skipped(choice)),
            ),
            self.clock.now(),
        )
        await self._opened(transition)
        chat = transition.state.chat
        waiting = self.chats.waiting(target.name)
        return StartChatResult(
            chat=chat,
            position=domain.queue_position(waiting, chat.id),
            estimated_wait_s=domain.estimate_wait(self.chats.recent_waits(target.name)),
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
        self.placement.check_limit(req.operator, req.max_chats)
        now = self.clock.now()
        try:
            transition = await self._apply(
                req.institution,
                req.chat_id,
                lambda state: domain.claim(
                    state, req.operator, req.operator_name, req.monitoring, now, req.institution
                ),
            )
        except Refusal as refusal:
            if refusal.code == "conflict":
                metrics.CLAIM_CONFLICTS.inc()
            raise
        chat = transition.state.chat
        metrics.CHAT_WAIT.labels(chat.queue).observe(
            (now - datetime.fromisoformat(chat.created_at)).total_seconds()
        )
        return ChatResult(chat=chat)

    async def take(self, req: ClaimChat) -> ChatResult:
        self.placement.check_limit(req.operator, req.max_chats)
        now = self.clock.now()
        transition = await self._apply(
            req.institution,
            req.chat_id,
            lambda state: domain.take(
                state, req.operator, req.operator_name, req.monitoring, now, req.institution
            ),
        )
        return ChatResult(chat=transition.state.chat)

    async def message(self, req: PostMessage) -> MessageResult:
        now = self.clock.now()
        transition = await self._apply(
            req.institution,
            req.chat_id,
            lambda state: domain.post_message(state, req.sender, req.body, now, req.client_id),
        )
        if not transition.changed:
            sent = domain.sent_before(transition.state, req.sender, req.client_id)
            if sent is None:
                raise Refusal("conflict", "the message was not posted; send it again")
            return MessageResult(
                id=domain.message_id(req.chat_id, sent.seq), seq=sent.seq, repeated=True
            )
        child(metrics.MESSAGES, req.sender.kind).inc()
        event = transition.events[-1]
        assert event.type == "message"
        return MessageResult(id=event.message.id, seq=event.message.seq)

    def _tag_rules(self, institution: str) -> domain.TagRules:
        """The tagging rules of the library whose staff member tags or closes."""
        found = self.queues.view.institutions.get(institution)
        if found is None:
            return domain.NO_RULES
        return domain.TagRules(frozenset(found.tags), found.require_tag)

    async def tag(self, req: TagChat) -> ChatResult:
        now = self.clock.now()
        rules = self._tag_rules(req.institution)
        transition = await self._apply(
            req.institution,
            req.chat_id,
            lambda state: domain.tag(state, req.by, req.tags, now, req.remove, rules),
        )
        return ChatResult(chat=transition.state.chat, changed=transition.changed)

    async def close(self, req: CloseChat) -> ChatResult:
        now = self.clock.now()
        rules = self._tag_rules(req.institution)
        transition = await self._apply(
            req.institution,
            req.chat_id,
            lambda state: domain.close(state, req.by, req.tags, now, rules),
        )
        return ChatResult(chat=transition.state.chat, changed=transition.changed)

    async def list_queues(self, req: ListQueues) -> QueueListing:
        now = self.clock.now()
        listing: list[WaitingChat] = []
        for queue in req.queues:
            waiting = domain.queue_order(self.chats.waiting(queue))
            for position, chat in enumerate(waiting, start=1):
                wait = (now - datetime.fromisoformat(chat.created_at)).total_seconds()
                listing.append(WaitingChat(chat=chat, position=position, wait_s=round(wait, 1)))
        return QueueListing(chats=listing)

    async def owned(self, req: OwnedChats) -> OwnedChatsResult:
        return OwnedChatsResult(chats=self.chats.owned_by(req.operator))

    async def proactive(self, req: StartProactive) -> ChatResult:
        queue = await self.queues.get(req.institution, req.queue)
        if self.chats.open_chat_of_guest(req.institution, req.guest_id) is not None:
            raise Refusal("conflict", "this guest is already in a chat")
        self.placement.check_limit(req.operator, req.max_chats)
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

    async def _transfer_targets(self, req: TransferChat, home: str) -> tuple[str, list[str]]:
        """The institution the chat is offered into and the operators it is offered to.

        Within the operator's own institution always; outside it only with
        `cross_institution`, and only to the patron's library, partners and backup services
        (`domain.check_transfer_reach`).
        """
        if (req.to_operator is None) == (req.to_queue is None):
            raise Refusal("invalid", "transfer to exactly one operator or one queue")
        view = self.queues.view
        if req.to_queue is not None:
            queue = view.queues.get(req.to_queue)
            if queue is None:
                raise Refusal("not_found", f"no queue {req.to_queue}")
            self._check_reach(req, home, queue.institution)
            return queue.institution, await self.placement.staffing(queue.institution, queue.name)
        assert req.to_operator is not None
        account = view.account(req.to_operator)
        if account is None or account.disabled:
            raise Refusal("not_found", f"no operator {req.to_operator}")
        institution = account.institution
        self._check_reach(req, home, institution)
        session = (await self.placement.session(institution, req.to_operator)).session
        if session is None or session.status != "online":
            raise Refusal("unavailable", f"{req.to_operator} is not online")
        if self.placement.at_limit(req.to_operator, session.max_chats):
            raise Refusal("unavailable", f"{req.to_operator} is at their chat limit")
        return institution, [req.to_operator]

    def _check_reach(self, req: TransferChat, home: str, target: str) -> None:
        try:
            domain.check_transfer_reach(
                req.institution,
                home,
                target,
                req.cross_institution,
                self.queues.partners_of(req.institution),
                self.queues.view.backups(),
            )
        except Refusal as refusal:
            if refusal.code == "not_found":  # name what was asked for, as if it did not exist
                what = f"queue {req.to_queue}" if req.to_queue else f"operator {req.to_operator}"
                raise Refusal("not_found", f"no {what}") from None
            raise

    async def transfer(self, req: TransferChat) -> TransferResult:
        state, _ = await self.chats.load(req.chat_id)
        # Another library's chat: say nothing of its queues to anyone it is hidden from.
        if not self._may_act(state, req.institution):
            raise Refusal("not_found", f"no chat {req.chat_id}")
        home = state.chat.institution
        into, targets = await self._transfer_targets(req, home)
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
                to_queue_institution=into,
                to_institution=into,
                note=req.note,
            ),
        )
        offer = transition.state.offer
        assert offer is not None
        return TransferResult(chat=transition.state.chat, targets=offer.targets)

    async def accept(self, req: AnswerOffer) -> ChatResult:
        self.placement.check_limit(req.operator, req.max_chats)
        now = self.clock.now()
        transition = await self._apply(
            req.institution,
            req.chat_id,
            lambda state: domain.accept_transfer(
                state, req.operator, req.operator_name, now, req.institution
            ),
            answering_offer=True,
        )
        return ChatResult(chat=transition.state.chat)

    async def decline(self, req: AnswerOffer) -> ChatResult:
        now = self.clock.now()
        transition = await self._apply(
            req.institution,
            req.chat_id,
            lambda state: domain.decline_transfer(state, req.operator, now),
            answering_offer=True,
        )
        return ChatResult(chat=transition.state.chat, changed=transition.changed)

    async def cancel(self, req: AnswerOffer) -> ChatResult:
        now = self.clock.now()
        transition = await self._apply(
            req.institution,
            req.chat_id,
            lambda state: domain.cancel_transfer(state, req.operator, now),
        )
        return ChatResult(chat=transition.state.chat, changed=transition.changed)

    # --- what time and presence decide --------------------------------------------------------

    async def run_due(self, institution: str, chat_id: str) -> domain.Transition:
        """Apply whatever has come due for the chat. A disconnected owner found signed in
        again (their sign-in event may have been missed) keeps the chat instead of losing it."""
        state, _ = await self.chats.load(chat_id)
        owner = state.chat.owner
        if state.owner_left_at is not None and owner is not None:
            if (await self.placement.session(institution, owner)).session is not None:
                now = self.clock.now()
                await self._apply(
                    institution, chat_id, lambda s: domain.owner_returned(s, owner, now)
                )
        transition = await self._apply(
            institution, chat_id, lambda s: domain.due(s, self.clock.now(), self.timing)
        )
        if domain.rollover_due(transition.state, self.clock.now()):
            return await self._roll_over(transition.state)
        return transition

    async def _roll_over(self, state: ChatState) -> domain.Transition:
        """A chat unclaimed past its queue's rollover timeout moves to the next queue of
        its chain that is open and staffed; when none is, it stays and waits another
        timeout. Either way the decision is recorded on the chat."""
        directory = await self.queues.directory()
        chain = directory.current(state.chain)
        candidates = domain.rollover_candidates(state, chain)
        choice = await self.placement.walk(directory, candidates, self.placement.is_staffed)
        self.placement.count("rollover", choice, moved=choice.queue is not None)
        chat, now, skipped = state.chat, self.clock.now(), _skipped(choice)
        if choice.queue is None:
            reason = f"rollover held: {choice.reason if candidates else ROLLOVER_OFF}"
            return await self._apply(
                chat.institution,
                chat.id,
                lambda s: domain.hold_rollover(s, reason, skipped, now, chain),
            )
        target = directory.queues[choice.queue]
        reason = f"rollover timeout {state.rollover_after_s}s"
        return await self._apply(
            chat.institution,
            chat.id,
            lambda s: domain.roll_over(
                s,
                target.name,
                target.institution,
                target.rollover_after_s,
                reason,
                skipped,
                now,
                chain,
            ),
        )

    async def on_presence_event(self, event: SessionEvent) -> None:
        """Sessions starting and ending move the owner grace period of their chats."""
        if self.on_staffing_change is not None:
            self.on_staffing_change()
        if isinstance(event, SessionChanged):
            return
        institution, operator = event.institution, event.operator
        if isinstance(event, SessionEnded):
            if event.reason == "signed_in_elsewhere":
                return  # the operator is still here, in a newer session
            if (await self.placement.session(institution, operator)).session is not None:
                return  # already signed in again
        mark = domain.owner_left if isinstance(event, SessionEnded) else domain.owner_returned
        now = self.clock.now()
        for chat in self.chats.owned_by(operator):
            try:
                await self._apply(institution, chat.id, lambda s: mark(s, operator, now))
            except Refusal as refusal:
                log.warning("could not mark owner of %s: %s", chat.id, refusal.message)


def _skipped(choice: coverage.Choice) -> list[SkippedQueue]:
    return [SkippedQueue(queue=skip.queue, reason=skip.reason) for skip in choice.skipped]
