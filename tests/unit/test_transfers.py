"""Transfers in the pure state machine: offer, accept, decline, reclaim, expire."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.routing import domain
from shared.errors import Refusal
from shared.schemas.chat import ChatState
from tests.factories import ANN, BOB, PATRON, T0, claimed, started

CAT = "demo-hill-cat"


def offered(to: list[str] | None = None) -> ChatState:
    state = claimed(ANN).state
    return domain.offer_transfer(
        state, "demo-hill-ann", to or ["demo-hill-bob"], T0, 120, to_operator="demo-hill-bob"
    ).state


def test_offer_puts_chat_in_transferring_with_targets_and_deadline():
    transition = domain.offer_transfer(
        claimed(ANN).state,
        "demo-hill-ann",
        ["demo-hill-bob", CAT, "demo-hill-ann"],
        T0,
        120,
        to_queue="demo-hill",
        note="needs archives",
    )
    state = transition.state
    assert state.chat.state == "transferring" and state.chat.owner == "demo-hill-ann"
    assert state.offer is not None
    assert state.offer.targets == ["demo-hill-bob", CAT]  # sorted, and never the owner
    assert state.offer.expires_at == "2026-11-23T15:02:00.000Z"
    assert transition.events[0].type == "transfer_offered"


@pytest.mark.parametrize(
    ("by", "targets", "kwargs", "code"),
    [
        ("demo-hill-bob", ["demo-hill-bob"], {"to_operator": "demo-hill-bob"}, "forbidden"),
        ("demo-hill-ann", [], {"to_queue": "demo-hill"}, "unavailable"),
        ("demo-hill-ann", ["demo-hill-ann"], {"to_operator": "demo-hill-ann"}, "invalid"),
        ("demo-hill-ann", ["demo-hill-bob"], {}, "invalid"),
    ],
)
def test_offer_refusals(by, targets, kwargs, code):
    with pytest.raises(Refusal) as refused:
        domain.offer_transfer(claimed(ANN).state, by, targets, T0, 120, **kwargs)
    assert refused.value.code == code


def test_second_offer_while_one_is_open_is_conflict():
    with pytest.raises(Refusal) as refused:
        domain.offer_transfer(offered(), "demo-hill-ann", [CAT], T0, 120, to_operator=CAT)
    assert refused.value.code == "conflict"


def test_first_accept_wins_and_later_accept_is_conflict():
    won = domain.accept_transfer(offered([CAT, "demo-hill-bob"]), CAT, "Cat", T0)
    assert won.state.chat.owner == CAT and won.state.chat.state == "active"
    assert won.state.offer is None
    assert won.events[0].type == "transfer_accepted"
    with pytest.raises(Refusal) as late:
        domain.accept_transfer(won.state, "demo-hill-bob", "Bob", T0)
    assert late.value.code == "conflict" and late.value.owner == CAT


def test_only_targets_may_accept():
    with pytest.raises(Refusal) as refused:
        domain.accept_transfer(offered(), CAT, "Cat", T0)
    assert refused.value.code == "forbidden"


def test_owner_typing_during_offer_reclaims_and_late_accept_conflicts():
    reclaim = domain.post_message(offered(), ANN, "actually I have it", T0)
    assert [e.type for e in reclaim.events] == ["reclaimed", "message"]
    assert reclaim.state.chat.state == "active" and reclaim.state.offer is None
    with pytest.raises(Refusal) as late:
        domain.accept_transfer(reclaim.state, "demo-hill-bob", "Bob", T0)
    assert late.value.code == "conflict" and late.value.owner == "demo-hill-ann"


def test_the_owner_cancels_an_offer_and_a_late_accept_conflicts():
    cancelled = domain.cancel_transfer(offered([CAT]), "demo-hill-ann", T0)
    assert [e.type for e in cancelled.events] == ["reclaimed"]
    assert cancelled.state.chat.state == "active" and cancelled.state.offer is None
    assert not domain.cancel_transfer(cancelled.state, "demo-hill-ann", T0).changed  # again
    with pytest.raises(Refusal) as late:
        domain.accept_transfer(cancelled.state, CAT, "Cat", T0)
    assert late.value.code == "conflict"
    with pytest.raises(Refusal) as refused:
        domain.cancel_transfer(offered([CAT]), CAT, T0)  # a target cannot cancel it
    assert refused.value.code == "forbidden"


def test_patron_message_during_offer_keeps_it_open():
    kept = domain.post_message(offered(), PATRON, "hello?", T0)
    assert kept.state.offer is not None and [e.type for e in kept.events] == ["message"]


def test_every_target_declining_returns_chat_to_owner():
    state = offered([CAT, "demo-hill-bob"])
    once = domain.decline_transfer(state, CAT, T0)
    # A change routing must write (it used to be event-less, so no replica stored it).
    assert once.changed and [e.type for e in once.events] == ["transfer_declined"]
    assert once.state.offer is not None and once.state.offer.declined == [CAT]
    assert not domain.decline_transfer(once.state, CAT, T0).changed
    with pytest.raises(Refusal):
        domain.accept_transfer(once.state, CAT, "Cat", T0)  # said no, cannot take it now
    both = domain.decline_transfer(once.state, "demo-hill-bob", T0)
    assert both.events[0].type == "transfer_expired"
    assert both.events[0].reason == "declined"  # type: ignore[union-attr]
    assert both.state.chat.owner == "demo-hill-ann" and both.state.chat.state == "active"


def test_offer_expires_only_after_its_deadline_and_only_itself():
    state = offered()
    assert state.offer is not None
    stamp = state.offer.offered_at
    assert not domain.expire_transfer(state, stamp, T0 + timedelta(seconds=119)).changed
    assert not domain.expire_transfer(state, "an older offer", T0 + timedelta(hours=1)).changed
    expired = domain.expire_transfer(state, stamp, T0 + timedelta(seconds=120))
    assert expired.events[0].type == "transfer_expired"
    assert expired.state.chat.state == "active" and expired.state.chat.owner == "demo-hill-ann"


def test_chat_whose_patron_left_cannot_be_transferred():
    left = domain.patron_left(claimed(ANN).state, T0)
    assert [e.type for e in left.events] == ["patron_left"] and not left.state.patron_present
    with pytest.raises(Refusal) as refused:
        domain.offer_transfer(left.state, "demo-hill-ann", [CAT], T0, 120, to_operator=CAT)
    assert refused.value.code == "gone"


def test_patron_leaving_ends_an_open_offer():
    left = domain.patron_left(offered(), T0)
    assert [e.type for e in left.events] == ["transfer_expired", "patron_left"]
    assert left.state.chat.state == "active" and left.state.offer is None


def test_transferred_chat_is_closed_by_its_new_owner_only():
    won = domain.accept_transfer(offered(), "demo-hill-bob", "Bob", T0).state
    with pytest.raises(Refusal):
        domain.close(won, ANN, [], T0)
    assert domain.close(won, BOB, ["moved"], T0).state.chat.state == "closed"


def test_a_partner_who_claims_answers_for_their_own_library():
    queued = started().state
    by_partner = domain.claim(queued, "demo-river-cat", "Cat", ["demo-hill"], T0, "river")
    assert by_partner.state.chat.answered_institution == "river"
    assert by_partner.state.chat.visible_to("river") and by_partner.state.chat.visible_to("hill")
    at_home = domain.claim(queued, "demo-hill-ann", "Ann", ["demo-hill"], T0, "hill")
    assert at_home.state.chat.answered_institution == "hill"


def test_transfers_leave_the_library_only_on_purpose_and_only_to_those_who_cover_it():
    partners, backups = frozenset({"river"}), frozenset({"backup"})

    def reach(by: str, target: str, cross: bool) -> str:
        try:
            domain.check_transfer_reach(by, "hill", target, cross, partners, backups)
        except Refusal as refusal:
            return refusal.code
        return "ok"

    assert reach("hill", "hill", cross=False) == "ok"
    for target in ("river", "backup"):
        assert reach("hill", target, cross=False) == "forbidden"
        assert reach("hill", target, cross=True) == "ok"
    # Anyone else's library does not exist for this operator, flag or not.
    assert reach("hill", "lake", cross=True) == "not_found"
    # The backup service hands a chat back to the patron's own library.
    assert reach("backup", "hill", cross=True) == "ok"


def test_the_previous_owner_may_still_tag_after_a_transfer_and_after_close():
    won = domain.accept_transfer(offered(), "demo-hill-bob", "Bob", T0).state
    assert won.chat.operators == ["demo-hill-ann", "demo-hill-bob"]
    tagged = domain.tag(won, ANN, ["Citation Help"], T0).state
    assert tagged.chat.tags == ["citation help"]
    closed = domain.close(tagged, BOB, [], T0).state
    after = domain.tag(closed, ANN, ["apa"], T0, remove=["citation help"]).state
    assert after.chat.state == "closed" and after.chat.tags == ["apa"]
    with pytest.raises(Refusal) as refused:
        domain.tag(closed, CAT_SENDER, ["apa"], T0)
    assert refused.value.code == "forbidden"


CAT_SENDER = BOB.model_copy(update={"id": CAT, "name": "Cat"})
