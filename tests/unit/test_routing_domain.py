"""The chat state machine, without servers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.routing import domain
from shared.errors import Refusal
from shared.schemas.chat import RECENT_CLIENT_IDS, ChatState, Sender
from tests.factories import ANN, BOB, PATRON, T0, started


def new_chat() -> ChatState:
    return started(chat_id="c" * 32).state


def claimed(by: Sender = ANN) -> ChatState:
    assert by.id is not None
    return domain.claim(new_chat(), by.id, by.name, ["demo-hill"], T0 + timedelta(seconds=30)).state


def test_start_records_question_as_first_message_and_queues():
    transition = started(question="Hi")
    assert [e.type for e in transition.events] == ["created", "message", "queued"]
    assert [e.n for e in transition.events] == [1, 2, 3]
    assert transition.state.chat.state == "queued"
    assert transition.state.last_seq == 1
    message = transition.events[1]
    assert message.type == "message" and message.message.seq == 1
    assert message.message.body == "Hi"


def test_claim_makes_operator_owner_and_reports_wait():
    transition = domain.claim(
        new_chat(), "demo-hill-ann", "Ann", ["demo-hill"], T0 + timedelta(seconds=42)
    )
    chat = transition.state.chat
    assert chat.state == "active" and chat.owner == "demo-hill-ann"
    event = transition.events[0]
    assert event.type == "claimed" and event.wait_s == 42.0


def test_second_claim_is_conflict_naming_owner():
    with pytest.raises(Refusal) as refused:
        domain.claim(claimed(ANN), "demo-hill-bob", "Bob", ["demo-hill"], T0)
    assert refused.value.code == "conflict"
    assert refused.value.owner == "demo-hill-ann"


def test_claim_requires_monitoring_the_queue():
    with pytest.raises(Refusal) as refused:
        domain.claim(new_chat(), "demo-hill-ann", "Ann", ["demo-other"], T0)
    assert refused.value.code == "forbidden"


def test_messages_are_numbered_without_gaps():
    state = claimed()
    seqs = []
    for sender in (PATRON, ANN, PATRON, ANN):
        transition = domain.post_message(state, sender, "hello", T0)
        state = transition.state
        event = transition.events[0]
        assert event.type == "message"
        seqs.append(event.message.seq)
    assert seqs == [2, 3, 4, 5]


def test_only_owner_and_own_patron_may_write():
    state = claimed(ANN)
    for intruder in (BOB, Sender(kind="patron", name="Eve", id="guest2")):
        with pytest.raises(Refusal) as refused:
            domain.post_message(state, intruder, "hi", T0)
        assert refused.value.code == "forbidden"


def test_queued_chat_takes_patron_messages_but_not_operator_ones():
    state = new_chat()
    assert domain.post_message(state, PATRON, "still there?", T0).state.last_seq == 2
    with pytest.raises(Refusal):
        domain.post_message(state, ANN, "hi", T0)


def test_close_by_owner_merges_tags_and_is_idempotent():
    state = domain.tag(claimed(), ANN, ["Theses"], T0).state
    closed = domain.close(state, ANN, ["directions", "theses"], T0)
    assert closed.state.chat.state == "closed"
    assert closed.state.chat.tags == ["theses", "directions"]
    again = domain.close(closed.state, ANN, [], T0)
    assert not again.changed and again.state == closed.state


def test_closed_chat_takes_no_message():
    state = domain.close(claimed(), ANN, [], T0).state
    with pytest.raises(Refusal) as refused:
        domain.post_message(state, PATRON, "wait", T0)
    assert refused.value.code == "gone"


def test_patron_leaving_unclaimed_chat_makes_it_missed():
    transition = domain.close(new_chat(), PATRON, [], T0)
    assert transition.state.chat.state == "missed"
    assert transition.events[0].type == "missed"


def test_operator_cannot_close_a_queued_chat():
    with pytest.raises(Refusal):
        domain.close(new_chat(), ANN, [], T0)


def test_tags_normalize_and_reject_blank():
    assert domain.normalize_tags([" Theses ", "theses", "Inter  Library"]) == [
        "theses",
        "inter library",
    ]
    with pytest.raises(Refusal):
        domain.normalize_tags(["   "])


def test_a_chat_holds_at_most_twenty_plain_tags_however_many_frames_add_them():
    state = claimed()
    for batch in range(4):  # each frame is within the frame's own limit of 20
        state = domain.tag(state, ANN, [f"t{batch}-{i}" for i in range(5)], T0).state
    assert len(state.chat.tags) == 20
    with pytest.raises(Refusal, match="at most 20"):
        domain.tag(state, ANN, ["one more"], T0)
    with pytest.raises(Refusal, match="at most 20"):
        domain.close(state, ANN, ["one more"], T0)
    assert not domain.tag(state, ANN, ["t0-0"], T0).changed  # a repeat still fits
    with pytest.raises(Refusal, match="tags"):
        domain.tag(claimed(), ANN, ["<script>"], T0)


def test_repeating_a_tag_changes_nothing():
    state = domain.tag(claimed(), ANN, ["theses"], T0).state
    assert not domain.tag(state, ANN, ["Theses"], T0).changed


def test_queue_position_and_wait_estimate():
    a = new_chat().chat.model_copy(update={"id": "a", "created_at": "2026-01-01T00:00:01.000Z"})
    b = new_chat().chat.model_copy(update={"id": "b", "created_at": "2026-01-01T00:00:00.000Z"})
    assert domain.queue_position([a, b], "a") == 2
    assert domain.queue_position([a, b], "zz") == 0
    assert domain.estimate_wait([]) is None
    assert domain.estimate_wait([10, 30, 20]) == 20


actions = st.lists(st.sampled_from(["patron", "ann", "bob", "tag", "close"]), max_size=40)


@given(actions)
def test_any_sequence_keeps_seq_gapless_and_events_numbered(steps: list[str]):
    state = claimed(ANN)
    posted: list[int] = []
    event_numbers = list(range(1, state.events + 1))
    for step in steps:
        senders = {"patron": PATRON, "ann": ANN, "bob": BOB}
        try:
            if step in senders:
                transition = domain.post_message(state, senders[step], "x", T0)
            elif step == "tag":
                transition = domain.tag(state, ANN, [f"t{len(posted)}"], T0)
            else:
                transition = domain.close(state, ANN, [], T0)
        except Refusal:
            continue
        for event in transition.events:
            event_numbers.append(event.n)
            if event.type == "message":
                posted.append(event.message.seq)
        state = transition.state
    assert posted == list(range(2, 2 + len(posted)))
    assert event_numbers == list(range(1, len(event_numbers) + 1))
    assert state.events == len(event_numbers)
    if state.chat.state == "closed":
        assert steps.count("close") >= 1


def test_a_resent_client_id_is_posted_once_and_answered_with_the_original():
    state = claimed()
    first = domain.post_message(state, PATRON, "is it open?", T0, client_id="c-1")
    assert [e.type for e in first.events] == ["message"]
    seq = first.events[0].message.seq  # type: ignore[union-attr]
    again = domain.post_message(first.state, PATRON, "is it open?", T0, client_id="c-1")
    assert not again.changed and again.state == first.state
    original = domain.sent_before(again.state, PATRON, "c-1")
    assert original is not None and original.seq == seq
    # The same id from someone else is their own message.
    reply = domain.post_message(first.state, ANN, "yes", T0, client_id="c-1")
    assert reply.changed and reply.state.last_seq == seq + 1
    # A resend after the chat closed still gets the original, not `gone`.
    closed = domain.close(first.state, ANN, [], T0).state
    assert not domain.post_message(closed, PATRON, "is it open?", T0, client_id="c-1").changed


def test_a_chat_remembers_only_its_most_recent_client_ids():
    state = claimed()
    for i in range(RECENT_CLIENT_IDS + 5):
        state = domain.post_message(state, PATRON, f"m{i}", T0, client_id=f"c{i}").state
    assert len(state.sent) == RECENT_CLIENT_IDS
    assert domain.sent_before(state, PATRON, "c0") is None
    assert domain.sent_before(state, PATRON, f"c{RECENT_CLIENT_IDS + 4}") is not None


def test_an_institution_tag_list_and_required_tag_bind_its_staff():
    rules = domain.TagRules(frozenset({"reference", "directions"}), required=True)
    with pytest.raises(Refusal, match=r"^tags: 'printing' is not in your library's tag list"):
        domain.tag(claimed(), ANN, ["Printing"], T0, rules=rules)
    with pytest.raises(Refusal, match=r"^tags: your library asks for at least one tag"):
        domain.close(claimed(), ANN, [], T0, rules)
    closed = domain.close(claimed(), ANN, [" Reference "], T0, rules)
    assert closed.state.chat.state == "closed" and closed.state.chat.tags == ["reference"]
    # A patron's own close is never held back by staff rules.
    assert domain.close(claimed(), PATRON, [], T0, rules).state.chat.state == "closed"


def test_nobody_tags_a_missed_chat():
    missed = domain.close(new_chat(), PATRON, [], T0).state
    with pytest.raises(Refusal) as refused:
        domain.tag(missed, ANN, ["followup"], T0)
    assert refused.value.code == "forbidden"


@pytest.mark.parametrize(
    ("institution", "partners", "sees"),
    [
        ("hill", frozenset(), True),  # the patron's library
        ("backup", frozenset(), True),  # held it
        ("river", frozenset({"river"}), True),  # a partner of the queue's institution
        ("river", frozenset(), False),
        ("lake", frozenset({"river"}), False),
    ],
)
def test_who_may_act_on_a_chat(institution, partners, sees):
    chat = started().state.chat.model_copy(update={"handled_by": ["hill", "backup"]})
    assert domain.may_act(chat, institution, partners) is sees
