"""Random interleavings of everything that can happen to a chat, checked against the
invariants the lifecycle promises (hypothesis stateful testing)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from services.gateway import domain as gateway_domain
from services.routing import domain
from shared.audience import audience, by_subject_of_operator
from shared.errors import Refusal
from shared.schemas.chat import Sender
from shared.schemas.events import ChatRecord, TransferOffered
from tests.factories import PATRON, T0, started

OPERATORS = ["demo-hill-ann", "demo-hill-bob", "demo-hill-cat"]
TIMING = domain.Timing(offer_timeout_s=120, owner_grace_s=60, patron_grace_s=600)
operators = st.sampled_from(OPERATORS)
# The chat may roll over from the library's queue to the backup service's after 60 s;
# everyone monitors both, so that claims and take-overs happen on either side.
CHAIN = ("demo-hill", "demo-backup")
MONITORING = list(CHAIN)
INSTITUTION_OF = {"demo-hill": "hill", "demo-backup": "backup"}


def staff(name: str) -> Sender:
    return Sender(kind="operator", name=name.rsplit("-", 1)[1].title(), id=name)


class ChatLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        start = started(chain=CHAIN, rollover_after_s=60)
        self.state = start.state
        self.log = list(start.events)  # every event of every accepted transition
        # What reaches the stream: one record per accepted transition.
        self.records = [ChatRecord(state=start.state, events=start.events)]
        self.now = T0

    def apply(self, decide) -> None:  # type: ignore[no-untyped-def]
        try:
            transition = decide()
        except Refusal:
            return
        if transition.changed:
            self.records.append(ChatRecord(state=transition.state, events=transition.events))
        self.log += transition.events
        self.state = transition.state

    @rule(op=operators)
    def claim(self, op: str) -> None:
        self.apply(lambda: domain.claim(self.state, op, op, MONITORING, self.now))

    @rule(op=operators)
    def operator_writes(self, op: str) -> None:
        self.apply(lambda: domain.post_message(self.state, staff(op), "hi", self.now))

    @rule()
    def patron_writes(self) -> None:
        self.apply(lambda: domain.post_message(self.state, PATRON, "hello", self.now))

    @rule(op=operators, offered_to=st.lists(operators, max_size=3), to_queue=st.booleans())
    def offer(self, op: str, offered_to: list[str], to_queue: bool) -> None:
        where = (
            {"to_queue": "demo-hill", "to_queue_institution": "hill"}
            if to_queue
            else {"to_operator": offered_to[0] if offered_to else op}
        )
        self.apply(
            lambda: domain.offer_transfer(self.state, op, offered_to, self.now, 120, **where)
        )

    def owns(self) -> bool:
        return self.state.chat.state == "active" and self.state.chat.owner is not None

    def owns_chat(self) -> bool:
        return self.state.chat.state in ("active", "transferring")

    def offer_open(self) -> bool:
        return self.state.offer is not None

    @precondition(owns)
    @rule(offered_to=st.lists(operators, min_size=1, max_size=3), to_queue=st.booleans())
    def owner_offers(self, offered_to: list[str], to_queue: bool) -> None:
        owner = self.state.chat.owner
        assert owner is not None
        if to_queue:
            where = {"to_queue": "demo-hill", "to_queue_institution": "hill"}
        else:
            where = {"to_operator": offered_to[0]}
        self.apply(
            lambda: domain.offer_transfer(self.state, owner, offered_to, self.now, 120, **where)
        )

    @precondition(offer_open)
    @rule(pick=st.integers(min_value=0, max_value=2))
    def target_accepts(self, pick: int) -> None:
        assert self.state.offer is not None
        targets = self.state.offer.targets
        op = targets[pick % len(targets)]
        self.apply(lambda: domain.accept_transfer(self.state, op, op, self.now))

    @precondition(offer_open)
    @rule(pick=st.integers(min_value=0, max_value=2))
    def target_declines(self, pick: int) -> None:
        assert self.state.offer is not None
        targets = self.state.offer.targets
        op = targets[pick % len(targets)]
        self.apply(lambda: domain.decline_transfer(self.state, op, self.now))

    @precondition(offer_open)
    @rule()
    def owner_reclaims_by_writing(self) -> None:
        owner = self.state.chat.owner
        assert owner is not None
        self.apply(lambda: domain.post_message(self.state, staff(owner), "mine", self.now))

    @rule(op=operators)
    def cancel(self, op: str) -> None:
        """Anyone tries to cancel an offer: only the owner can, and only an open one ends."""
        self.apply(lambda: domain.cancel_transfer(self.state, op, self.now))

    @rule(op=operators)
    def accept(self, op: str) -> None:
        self.apply(lambda: domain.accept_transfer(self.state, op, op, self.now))

    @rule(op=operators)
    def decline(self, op: str) -> None:
        self.apply(lambda: domain.decline_transfer(self.state, op, self.now))

    @rule(seconds=st.integers(min_value=1, max_value=200))
    def time_passes(self, seconds: int) -> None:
        """Whatever comes due (offer expiry, owner and patron grace) happens, as the
        routing timers would make it."""
        self.now += timedelta(seconds=seconds)
        self.apply(lambda: domain.due(self.state, self.now, TIMING))

    @rule(outcome=st.sampled_from(["moves", "held", "switched_off"]))
    def rollover_comes_due(self, outcome: str) -> None:
        """A minute passes unclaimed and the rollover timer fires: the backup service
        can take the chat, or nobody can, or the coordinator has taken the backup out of
        the chain (the chat then stays where it is for good)."""
        self.time_passes(60)
        if outcome == "moves":
            self.apply(
                lambda: domain.roll_over(
                    self.state, "demo-backup", "backup", None, "rollover", [], self.now
                )
            )
        elif outcome == "held":
            self.apply(lambda: domain.hold_rollover(self.state, "held", [], self.now))
        else:
            self.apply(lambda: domain.hold_rollover(self.state, "off", [], self.now, ["demo-hill"]))
            if self.state.chain == ["demo-hill"]:
                assert domain.rollover_at(self.state) is None

    @precondition(owns_chat)
    @rule()
    def owner_disconnects(self) -> None:
        owner = self.state.chat.owner
        assert owner is not None
        self.apply(lambda: domain.owner_left(self.state, owner, self.now))

    @precondition(owns_chat)
    @rule()
    def owner_reconnects(self) -> None:
        owner = self.state.chat.owner
        assert owner is not None
        self.apply(lambda: domain.owner_returned(self.state, owner, self.now))

    @rule(op=operators)
    def colleague_takes_over(self, op: str) -> None:
        self.apply(lambda: domain.take(self.state, op, op, MONITORING, self.now))

    @rule()
    def patron_reconnects(self) -> None:
        self.apply(lambda: domain.patron_returned(self.state, self.now))

    def has_history(self) -> bool:
        # Ending a chat is always possible; holding it back a little lets transfers,
        # declines and expiries happen before most runs end.
        return self.state.events >= 8

    @precondition(has_history)
    @rule()
    def patron_leaves(self) -> None:
        self.apply(lambda: domain.patron_left(self.state, self.now))

    @precondition(has_history)
    @rule(op=operators)
    def operator_closes(self, op: str) -> None:
        self.apply(lambda: domain.close(self.state, staff(op), [], self.now))

    @precondition(has_history)
    @rule()
    def patron_closes(self) -> None:
        self.apply(lambda: domain.close(self.state, PATRON, [], self.now))

    @invariant()
    def at_most_one_owner_and_owner_matches_state(self) -> None:
        chat = self.state.chat
        if chat.state in ("active", "transferring"):
            assert chat.owner in OPERATORS
        if chat.state == "queued":
            assert chat.owner is None
        assert (self.state.offer is not None) == (chat.state == "transferring")
        if self.state.offer is not None:
            assert chat.owner not in self.state.offer.targets
        if self.state.owner_left_at is not None:
            assert chat.state in ("active", "transferring")
        if chat.state in ("queued", "active", "transferring"):
            assert (self.state.patron_left_at is None) == self.state.patron_present

    @invariant()
    def rollover_moves_only_waiting_chats_along_the_chain(self) -> None:
        chat = self.state.chat
        assert chat.queue in CHAIN and chat.queue_institution == INSTITUTION_OF[chat.queue]
        assert chat.institution == "hill"  # the home library, whatever happens
        for event in self.log:
            if event.type in ("rolled_over", "rollover_held"):
                assert event.chat.state == "queued" and event.chat.owner is None
        if chat.state in ("active", "transferring"):
            assert chat.answered_queue in CHAIN
            assert chat.answered_institution == INSTITUTION_OF[chat.answered_queue]
        rolled = [i for i, e in enumerate(self.log) if e.type == "rolled_over"]
        if rolled:
            # The backup service keeps sight of a chat it held or answered, even after
            # its owner hands it back to the library's queue.
            assert chat.visible_to("backup")
            handed_back = any(
                e.type == "transfer_accepted" and e.chat.queue != "demo-backup"
                for e in self.log[rolled[-1] :]
            )
            assert chat.queue == ("demo-hill" if handed_back else "demo-backup")
        assert not chat.visible_to("river")

    @invariant()
    def nothing_happens_after_the_end(self) -> None:
        ends = [i for i, e in enumerate(self.log) if e.type in ("closed", "missed")]
        assert ends in ([], [len(self.log) - 1])

    @invariant()
    def seq_is_gapless(self) -> None:
        seqs = [e.message.seq for e in self.log if e.type == "message"]
        assert seqs == list(range(1, len(seqs) + 1))
        assert self.state.last_seq == len(seqs)

    @invariant()
    def every_accepted_transition_is_in_the_log(self) -> None:
        assert [e.n for e in self.log] == list(range(1, len(self.log) + 1))
        assert self.state.events == len(self.log)
        assert len({e.id for e in self.log}) == len(self.log)

    @invariant()
    def every_transition_is_one_record_and_its_events_reach_consumers_once(self) -> None:
        """Consumers (gateways, transcripts) see the records' events: each exactly once, in
        order, and the last record is the state."""
        seen = [e for record in self.records for e in record.events]
        assert [e.id for e in seen] == [e.id for e in self.log]
        assert self.records[-1].state == self.state
        for before, after in zip(self.records, self.records[1:], strict=False):
            assert after.first_n == before.events[-1].n + 1

    @invariant()
    def every_frame_travels_on_a_subject_its_audience_hears(self) -> None:
        """A gateway follows the chats its patrons and owners watch, the queues its
        operators monitor and each of its operators: every frame of every record must be
        on one of the subjects routing publishes it to."""
        for record in self.records:
            heard = audience(record)
            for event in record.events:
                for to, _frame in gateway_domain.deliveries(event):
                    if to.queue is not None:
                        assert to.queue in heard.queues, (event.type, to)
                    if to.operator is not None and by_subject_of_operator(event, to.operator):
                        assert to.operator in heard.operators, (event.type, to)
            offers = [e for e in record.events if isinstance(e, TransferOffered)]
            for offer in offers:
                assert set(offer.offer.targets) <= heard.operators

    @invariant()
    def a_closed_chat_takes_no_message(self) -> None:
        if self.state.chat.state in ("closed", "missed"):
            for sender in (PATRON, staff(self.state.chat.owner or OPERATORS[0])):
                try:
                    domain.post_message(self.state, sender, "late", self.now)
                except Refusal as refused:
                    assert refused.code == "gone"
                else:
                    raise AssertionError("a closed chat took a message")


TestChatLifecycle = ChatLifecycle.TestCase
TestChatLifecycle.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
