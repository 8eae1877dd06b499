"""Rollover in the pure state machine: a chat unclaimed past its queue's timeout moves to
the next queue of its chain; who answers it is recorded, and who may see it follows."""

from __future__ import annotations

from datetime import timedelta

from services.routing import domain
from shared.schemas.chat import SkippedQueue
from tests.factories import T0, started

TIMING = domain.Timing()
CHAIN = ("demo-river", "demo-backup", "demo-overnight")


def river_chat(rollover_after_s: int | None = 60) -> domain.Transition:
    return started(institution="river", chain=CHAIN, rollover_after_s=rollover_after_s)


def after(seconds: float):  # type: ignore[no-untyped-def]
    return T0 + timedelta(seconds=seconds)


def test_a_waiting_chat_rolls_over_at_its_queues_timeout_and_not_before():
    start = river_chat()
    assert domain.deadlines(start.state, TIMING) == [after(60)]
    assert domain.rollover_candidates(start.state) == ["demo-backup", "demo-overnight"]
    early = domain.roll_over(start.state, "demo-backup", "backup", 300, "r", [], after(59))
    assert not early.changed
    moved = domain.roll_over(
        start.state, "demo-backup", "backup", 300, "rollover timeout 60s", [], after(60)
    )
    assert [e.type for e in moved.events] == ["rolled_over"]
    chat = moved.state.chat
    assert (chat.queue, chat.queue_institution, chat.institution) == (
        "demo-backup",
        "backup",
        "river",
    )
    # The backup queue's own timeout starts now, towards the last queue of the chain.
    assert domain.deadlines(moved.state, TIMING) == [after(360)]
    # A replica that fires late, on the state it read before the move, changes nothing.
    again = domain.roll_over(moved.state, "demo-backup", "backup", 300, "r", [], after(61))
    assert not again.changed


def test_the_backup_answers_and_the_chat_is_visible_to_home_and_backup_only():
    moved = domain.roll_over(river_chat().state, "demo-backup", "backup", None, "r", [], after(60))
    assert moved.state.chat.visible_to("backup") and moved.state.chat.visible_to("river")
    claimed = domain.claim(moved.state, "demo-backup-dan", "Dan", ["demo-backup"], after(70))
    chat = claimed.state.chat
    assert (chat.answered_institution, chat.answered_queue) == ("backup", "demo-backup")
    assert not chat.visible_to("hill")
    assert domain.deadlines(claimed.state, TIMING) == []
    late = domain.roll_over(claimed.state, "demo-overnight", "x", None, "r", [], after(999))
    assert not late.changed


def test_the_backup_hands_the_chat_back_to_the_library_and_keeps_sight_of_it():
    moved = domain.roll_over(river_chat().state, "demo-backup", "backup", None, "r", [], after(60))
    claimed = domain.claim(moved.state, "demo-backup-dan", "Dan", ["demo-backup"], after(70))
    offered = domain.offer_transfer(
        claimed.state,
        "demo-backup-dan",
        ["demo-river-rae"],
        after(80),
        120,
        to_queue="demo-river",
        to_queue_institution="river",
    )
    back = domain.accept_transfer(offered.state, "demo-river-rae", "Rae", after(90))
    chat = back.state.chat
    assert (chat.queue, chat.queue_institution, chat.owner) == (
        "demo-river",
        "river",
        "demo-river-rae",
    )
    # Who first answered it stays on record, so Dan's service can still read the chat.
    assert (chat.answered_institution, chat.answered_queue) == ("backup", "demo-backup")
    assert chat.visible_to("backup") and chat.visible_to("river")
    assert not chat.visible_to("hill")


def test_nowhere_to_go_holds_the_chat_and_starts_the_timeout_again():
    start = river_chat()
    skipped = [SkippedQueue(queue="demo-backup", reason="outside hours")]
    assert not domain.hold_rollover(start.state, "held", skipped, after(30)).changed
    held = domain.hold_rollover(start.state, "rollover held: closed", skipped, after(60))
    assert [e.type for e in held.events] == ["rollover_held"]
    assert held.events[0].skipped == skipped  # type: ignore[union-attr]
    assert held.state.chat.queue == "demo-river"
    assert domain.deadlines(held.state, TIMING) == [after(120)]


def test_rollover_follows_the_chain_as_configured_when_it_comes_due():
    start = river_chat()
    # The coordinator took the backup service out of River's chain: the chat stays for
    # good, once recorded, with no timeout left to run.
    kept = domain.hold_rollover(start.state, "rollover held: off", [], after(60), ["demo-river"])
    assert [e.type for e in kept.events] == ["rollover_held"]
    assert kept.state.chain == ["demo-river"]
    assert domain.deadlines(kept.state, TIMING) == []
    # A queue no longer in the chain is refused; the new order is followed from here on.
    chain = ["demo-river", "demo-overnight"]
    assert not domain.roll_over(
        start.state, "demo-backup", "backup", None, "r", [], after(60), chain
    ).changed
    moved = domain.roll_over(
        start.state, "demo-overnight", "night", None, "r", [], after(60), chain
    )
    assert moved.state.chat.queue == "demo-overnight" and moved.state.chain == chain
    assert domain.rollover_candidates(moved.state) == []


def test_no_timeout_or_no_later_queue_means_no_rollover():
    assert domain.deadlines(river_chat(rollover_after_s=None).state, TIMING) == []
    last = domain.roll_over(river_chat().state, "demo-overnight", "x", None, "r", [], after(60))
    assert last.state.chat.queue == "demo-overnight"
    assert domain.rollover_candidates(last.state) == []
    assert domain.deadlines(last.state, TIMING) == []


def _offer(state, by: str, to: str, institution: str, seconds: float, **more):  # type: ignore[no-untyped-def]
    """`by` offers the chat to the operator `to` of `institution`."""
    return domain.offer_transfer(
        state, by, [to], after(seconds), 120, to_operator=to, to_institution=institution, **more
    )


def test_a_library_hands_a_chat_to_the_backup_service_which_answers_it_from_then_on():
    """The other direction: River's operator offers the chat to the backup service's
    operator (the chat stays in River's queue). The backup service may answer the offer,
    holds the chat after it, and counts as having answered it; both keep sight of it."""
    claimed = domain.claim(river_chat().state, "demo-river-rae", "Rae", ["demo-river"], after(5))
    assert claimed.state.chat.handled_by == ["river"]
    assert claimed.state.chat.answered_institution == "river"
    offered = _offer(claimed.state, "demo-river-rae", "demo-backup-dan", "backup", 10)
    assert offered.state.offer is not None and offered.state.offer.to_institution == "backup"
    assert offered.state.offered_to == ["backup"]
    taken = domain.accept_transfer(
        offered.state, "demo-backup-dan", "Dan", after(20), institution="backup"
    )
    chat = taken.state.chat
    assert (chat.owner, chat.queue, chat.queue_institution) == (
        "demo-backup-dan",
        "demo-river",
        "river",
    )
    assert chat.handled_by == ["river", "backup"]
    assert (chat.answered_institution, chat.answered_queue) == ("backup", "demo-river")
    assert chat.visible_to("backup") and chat.visible_to("river")
    assert not chat.visible_to("hill")
    # Handed back home, the backup service is still the one that answered it.
    again = _offer(taken.state, "demo-backup-dan", "demo-river-rae", "river", 30)
    home = domain.accept_transfer(again.state, "demo-river-rae", "Rae", after(40), "river")
    assert home.state.chat.handled_by == ["river", "backup"]
    assert home.state.chat.answered_institution == "backup"
    assert home.state.offered_to == ["backup", "river"]


def test_an_offer_to_an_operator_names_no_queue_institution():
    """Only a queue transfer moves the chat into the target's queue; an operator transfer
    records whose staff was offered it, and the chat stays where it was."""
    claimed = domain.claim(river_chat().state, "demo-river-rae", "Rae", ["demo-river"], after(5))
    offered = _offer(
        claimed.state,
        "demo-river-rae",
        "demo-backup-dan",
        "backup",
        10,
        to_queue_institution="backup",
    )
    assert offered.state.offer is not None
    assert offered.state.offer.to_queue_institution is None
