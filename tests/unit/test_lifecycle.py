"""Disconnects, grace periods, take-over and proactive chats in the pure state machine."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.routing import domain
from shared.errors import Refusal
from tests.factories import ANN, BOB, PATRON, T0, claimed, started

TIMING = domain.Timing(offer_timeout_s=120, owner_grace_s=60, patron_grace_s=600)


def types(transition: domain.Transition) -> list[str]:
    return [e.type for e in transition.events]


def after(seconds: float):  # type: ignore[no-untyped-def]
    return T0 + timedelta(seconds=seconds)


def test_disconnected_owner_keeps_chat_through_grace_then_it_goes_to_the_front():
    left = domain.owner_left(claimed(ANN).state, "demo-hill-ann", T0)
    assert types(left) == ["owner_left"]
    assert domain.deadlines(left.state, TIMING) == [after(60)]
    assert not domain.due(left.state, after(59), TIMING).changed
    requeued = domain.due(left.state, after(60), TIMING)
    assert types(requeued) == ["requeued"]
    chat = requeued.state.chat
    assert chat.state == "queued" and chat.owner is None and chat.requeued_at is not None
    newer = started(chat_id="0" * 32).state.chat.model_copy(update={"created_at": T0.isoformat()})
    older = newer.model_copy(
        update={"id": "1" * 32, "created_at": (T0 - timedelta(hours=1)).isoformat()}
    )
    assert [c.id for c in domain.queue_order([newer, older, chat])] == [chat.id, older.id, newer.id]
    again = domain.claim(requeued.state, "demo-hill-bob", "Bob", ["demo-hill"], after(61))
    assert again.state.chat.owner == "demo-hill-bob"


def test_owner_back_within_grace_keeps_the_chat():
    left = domain.owner_left(claimed(ANN).state, "demo-hill-ann", T0)
    back = domain.owner_returned(left.state, "demo-hill-ann", after(30))
    assert types(back) == ["owner_returned"] and back.state.owner_left_at is None
    assert domain.deadlines(back.state, TIMING) == []
    assert not domain.due(back.state, after(600), TIMING).changed
    # Someone else's sign-in, or a repeat, changes nothing.
    assert not domain.owner_left(back.state, "demo-hill-bob", T0).changed
    assert not domain.owner_returned(back.state, "demo-hill-ann", T0).changed


def test_patron_writing_to_an_ownerless_chat_requeues_it_at_once():
    left = domain.owner_left(claimed(ANN).state, "demo-hill-ann", T0)
    wrote = domain.post_message(left.state, PATRON, "Hello? Anyone?", after(5))
    assert types(wrote) == ["requeued", "message"]
    assert wrote.state.chat.state == "queued" and wrote.events[0].reason == "patron_wrote"


def test_owner_writing_after_a_drop_is_back():
    left = domain.owner_left(claimed(ANN).state, "demo-hill-ann", T0)
    wrote = domain.post_message(left.state, ANN, "Sorry, lost my connection", after(5))
    assert types(wrote) == ["owner_returned", "message"]


def test_take_over_only_of_a_chat_whose_owner_is_gone():
    chat = claimed(ANN).state
    with pytest.raises(Refusal) as refused:
        domain.take(chat, "demo-hill-bob", "Bob", ["demo-hill"], T0)
    assert refused.value.code == "conflict" and refused.value.owner == "demo-hill-ann"
    left = domain.owner_left(chat, "demo-hill-ann", T0).state
    with pytest.raises(Refusal) as refused:
        domain.take(left, "demo-hill-bob", "Bob", ["demo-river"], T0)
    assert refused.value.code == "forbidden"
    taken = domain.take(left, "demo-hill-bob", "Bob", ["demo-hill"], T0)
    assert types(taken) == ["taken"]
    assert taken.state.chat.owner == "demo-hill-bob" and taken.state.owner_left_at is None
    with pytest.raises(Refusal) as late:
        domain.take(taken.state, "demo-hill-cat", "Cat", ["demo-hill"], T0)
    assert late.value.code == "conflict" and late.value.owner == "demo-hill-bob"


def test_take_over_during_an_offer_withdraws_it():
    offer = domain.offer_transfer(
        claimed(ANN).state, "demo-hill-ann", ["demo-hill-cat"], T0, 120, to_operator="demo-hill-cat"
    )
    left = domain.owner_left(offer.state, "demo-hill-ann", T0).state
    taken = domain.take(left, "demo-hill-bob", "Bob", ["demo-hill"], T0)
    assert types(taken) == ["transfer_expired", "taken"]
    with pytest.raises(Refusal) as late:
        domain.accept_transfer(taken.state, "demo-hill-cat", "Cat", T0)
    assert late.value.code == "conflict"


def test_patron_gone_past_grace_misses_an_unclaimed_chat_and_closes_a_claimed_one():
    queued = domain.patron_left(started().state, T0)
    assert domain.deadlines(queued.state, TIMING) == [after(600)]
    missed = domain.due(queued.state, after(600), TIMING)
    assert types(missed) == ["missed"] and missed.state.chat.state == "missed"
    active = domain.patron_left(claimed(ANN).state, T0)
    closed = domain.due(active.state, after(601), TIMING)
    assert types(closed) == ["closed"] and closed.events[0].reason == "patron_left"


def test_patron_back_within_grace_keeps_the_chat():
    left = domain.patron_left(claimed(ANN).state, T0)
    back = domain.patron_returned(left.state, after(100))
    assert types(back) == ["patron_returned"] and back.state.patron_present
    assert not domain.due(back.state, after(700), TIMING).changed
    wrote = domain.post_message(left.state, PATRON, "I'm back", after(100))
    assert types(wrote) == ["patron_returned", "message"]


def proactive(
    chat_id: str, guest_id: str, widget: str | None, body: str, patron_connected: bool
) -> domain.Transition:
    """Ann of hill invites a guest to chat in hill's queue."""
    chat = domain.NewProactiveChat(
        chat_id=chat_id,
        institution="hill",
        queue="demo-hill",
        guest_id=guest_id,
        widget=widget,
        operator="demo-hill-ann",
        operator_name="Ann",
        body=body,
        patron_connected=patron_connected,
    )
    return domain.start_proactive(chat, T0)


def test_proactive_chat_is_owned_from_the_start_and_transfers_like_any_other():
    start = proactive("p" * 32, "guest1", "hill", "Can I help you find something?", True)
    chat = start.state.chat
    assert types(start) == ["created", "message"]
    assert chat.state == "active" and chat.origin == "proactive" and chat.owner == "demo-hill-ann"
    # Answered at home from the start: statistics count it so, not as unanswered.
    assert (chat.answered_institution, chat.answered_queue) == ("hill", chat.queue)
    assert chat.queue_institution == "hill" and not chat.visible_to("backup")
    assert start.events[1].message.from_.kind == "operator" and start.events[1].message.seq == 1
    offer = domain.offer_transfer(
        start.state, "demo-hill-ann", ["demo-hill-bob"], T0, 120, to_operator="demo-hill-bob"
    )
    accepted = domain.accept_transfer(offer.state, "demo-hill-bob", "Bob", T0)
    assert accepted.state.chat.owner == "demo-hill-bob"
    assert accepted.state.chat.origin == "proactive"
    reply = domain.post_message(accepted.state, BOB, "I can take it from here", T0)
    assert reply.events[-1].message.seq == 2
    closed = domain.close(reply.state, BOB, [], T0)
    assert closed.state.chat.state == "closed"


def test_proactive_chat_with_an_absent_guest_starts_the_patron_grace():
    start = proactive("q" * 32, "guest9", None, "Hello!", False)
    assert not start.state.patron_present
    assert domain.deadlines(start.state, TIMING) == [after(600)]
