"""Pure rules of the gateway, presence, transcripts and tickets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from services.gateway import domain as gateway
from services.presence import domain as presence
from services.routing import domain as routing
from services.tickets import domain as tickets
from services.transcripts import domain as transcripts
from services.transcripts import privacy
from shared.audience import audience
from shared.errors import Refusal
from shared.schemas.events import ChatRecord
from shared.schemas.privacy import ErasePatron
from shared.schemas.protocol import InternalTarget, PatronTypingFrame
from shared.schemas.records import Account, Institution, Principal
from shared.schemas.requests import InternalMessage, OpenSession, SessionRef
from shared.schemas.tickets import CreateTicket, ReplyToTicket, Ticket, UpdateTicket
from tests.factories import ANN, PATRON, T0, started

# --- gateway ----------------------------------------------------------------------------


def test_token_bucket_allows_burst_then_refills():
    bucket = gateway.TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.5)
    assert not bucket.take(0.5)
    assert not bucket.available(0.6)
    assert bucket.available(1.0) and bucket.available(1.0)  # looking spends nothing


def test_size_limits_count_bytes():
    gateway.check_body("é" * 2048, 4096)
    with pytest.raises(Refusal) as refused:
        gateway.check_body("é" * 2049, 4096)
    assert refused.value.code == "too_large"
    with pytest.raises(Refusal) as blank:
        gateway.check_body("   ", 4096)
    assert blank.value.code == "invalid"


def test_a_patron_hears_who_types_by_name_never_by_login():
    frame = gateway.patron_typing("c1", ANN)
    assert frame.model_dump(by_alias=True)["from"] == {
        "kind": "operator",
        "name": "Ann",
        "id": None,
    }
    assert gateway.patron_typing("c1", PATRON).from_.id == "guest1"  # their own guest id
    with pytest.raises(ValueError, match="login"):
        PatronTypingFrame(chat_id="c1", from_=ANN.model_dump())


def seen_by(event, to: gateway.To) -> list[str]:  # type: ignore[no-untyped-def]
    return [frame.type for audience, frame in gateway.deliveries(event) if audience == to]


ANN_SEES = gateway.To(operator="demo-hill-ann")
WATCHERS = gateway.To(queue="demo-hill")


def test_frames_per_audience():
    _, question, queued = started(chat_id="c" * 32).events
    assert seen_by(question, gateway.PATRON) == []  # the patron's own words come back as acks
    assert seen_by(queued, WATCHERS) == ["queue.chat_added"]
    claim = routing.claim(started().state, "demo-hill-ann", "Ann", ["demo-hill"], T0)
    frames = [f for to, f in gateway.deliveries(claim.events[0]) if to == gateway.PATRON]
    assert frames[0].model_dump()["operator"] == "Ann"
    assert seen_by(claim.events[0], WATCHERS) == ["queue.chat_removed"]
    reply = routing.post_message(claim.state, ANN, "Hello", T0)
    assert seen_by(reply.events[0], ANN_SEES) == []
    assert seen_by(reply.events[0], gateway.PATRON) == ["message"]
    ask = routing.post_message(reply.state, PATRON, "Thanks", T0)
    assert seen_by(ask.events[0], ANN_SEES) == ["message"]


def test_transfer_frames_reach_patron_targets_and_owner():
    claim = routing.claim(started().state, "demo-hill-ann", "Ann", ["demo-hill"], T0)
    offer = routing.offer_transfer(
        claim.state,
        "demo-hill-ann",
        ["demo-hill-bob", "demo-hill-cat"],
        T0,
        60,
        to_queue="demo-hill",
    )
    assert seen_by(offer.events[0], gateway.PATRON) == ["chat.transferring"]
    # The targets hear of it on their own subjects (routing publishes it there).
    assert audience(ChatRecord(state=offer.state, events=offer.events)).operators == {
        "demo-hill-bob",
        "demo-hill-cat",
    }
    accepted = routing.accept_transfer(offer.state, "demo-hill-bob", "Bob", T0)
    event = accepted.events[0]
    assert seen_by(event, gateway.PATRON) == ["chat.transferred"]
    assert seen_by(event, ANN_SEES) == ["transfer.accepted"]
    assert seen_by(event, gateway.To(operator="demo-hill-cat")) == ["transfer.accepted"]
    assert seen_by(event, gateway.To(operator="demo-hill-bob")) == []
    reclaimed = routing.post_message(offer.state, ANN, "Still here", T0)
    assert seen_by(reclaimed.events[0], gateway.To(operator="demo-hill-cat")) == [
        "transfer.withdrawn"
    ]


def test_requeue_reaches_patron_watchers_and_old_owner():
    claim = routing.claim(started().state, "demo-hill-ann", "Ann", ["demo-hill"], T0)
    left = routing.owner_left(claim.state, "demo-hill-ann", T0)
    assert seen_by(left.events[0], WATCHERS) == ["chat.owner_left"]
    later = T0 + timedelta(seconds=61)
    requeued = routing.due(left.state, later, routing.Timing())
    event = requeued.events[-1]
    assert seen_by(event, gateway.PATRON) == ["chat.requeued"]
    assert seen_by(event, WATCHERS) == ["queue.chat_added", "chat.requeued"]
    assert seen_by(event, ANN_SEES) == ["chat.requeued"]


def test_internal_messages_reach_the_right_staff():
    @dataclass
    class Staff:
        username: str
        status: str
        monitoring: frozenset[str]

    ann = Staff("demo-hill-ann", "online", frozenset({"demo-hill"}))
    bob = Staff("demo-hill-bob", "internal", frozenset({"demo-hill"}))
    cat = Staff("demo-hill-cat", "away", frozenset({"demo-hill"}))
    dee = Staff("demo-hill-dee", "online", frozenset())
    staff = [ann, bob, cat, dee]

    def to(**target: object) -> list[str]:
        message = InternalMessage(
            id="m1",
            institution="hill",
            conversation="x",
            from_=ANN,
            body="hi",
            ts="2026-11-23T15:00:00+00:00",
            **target,  # type: ignore[arg-type]
        )
        return [s.username for s in gateway.internal_recipients(message, staff)]

    assert to(to_operator="demo-hill-cat") == ["demo-hill-cat"]  # direct: whatever the status
    assert to(to_queue="demo-hill") == ["demo-hill-bob"]  # not the sender, not away
    assert to(to_all=True) == ["demo-hill-bob", "demo-hill-dee"]
    assert gateway.conversation_of("b", InternalTarget(operator="a")) == "dm:a:b"
    assert gateway.conversation_of("a", InternalTarget(operator="b")) == "dm:a:b"


# --- presence ---------------------------------------------------------------------------


def test_new_sign_in_ends_older_session():
    first, ended = presence.open_session(
        None,
        OpenSession(institution="hill", operator="demo-hill-ann", name="Ann", session_id="s1"),
        T0,
    )
    assert ended is None and first.status == "offline"
    second, ended = presence.open_session(
        first,
        OpenSession(institution="hill", operator="demo-hill-ann", name="Ann", session_id="s2"),
        T0,
    )
    assert second.session_id == "s2"
    assert ended is not None and ended.session_id == "s1"
    assert ended.reason == "signed_in_elsewhere"
    with pytest.raises(Refusal) as refused:
        presence.require_current(
            second, SessionRef(institution="hill", operator="demo-hill-ann", session_id="s1")
        )
    assert refused.value.code == "gone"


def test_staffing_needs_online_and_monitoring():
    base, _ = presence.open_session(
        None,
        OpenSession(institution="hill", operator="demo-hill-ann", name="Ann", session_id="s1"),
        T0,
    )
    watching = presence.set_monitoring(base, ["demo-hill", "demo-hill"])
    assert watching.monitoring == ["demo-hill"]
    assert presence.staffing([watching], "demo-hill") == []
    online = presence.set_status(watching, "online")
    assert [s.operator for s in presence.staffing([online], "demo-hill")] == ["demo-hill-ann"]
    assert presence.staffing([presence.set_status(watching, "away")], "demo-hill") == []
    assert presence.staffing([online], "demo-river") == []


# --- transcripts ------------------------------------------------------------------------


def test_event_documents_are_keyed_for_idempotence():
    created, question, queued = started(chat_id="c" * 32).events
    assert transcripts.event_document(created)["_id"] == created.id
    doc = transcripts.message_document(question.message, "hill")  # type: ignore[union-attr]
    assert doc["_id"] == f"{'c' * 32}:1" and doc["from"]["kind"] == "patron"
    assert transcripts.message_from_document(doc) == question.message  # type: ignore[union-attr]
    chat = transcripts.chat_document(
        queued, transcripts.Members({"hill": "America/Chicago"}, frozenset())
    )
    assert chat["n"] == 3 and transcripts.chat_from_document(chat) == queued.chat
    # 15:00 UTC is 09:00 in Chicago on a Monday: the library's own day and hour.
    assert (chat["day"], chat["hour"]) == ("2026-11-23", "mon 09")
    decisions = transcripts.routing_from_events(
        [transcripts.event_document(e) for e in (queued, created, question)]
    )
    assert [(d.queue, d.reason) for d in decisions] == [("demo-hill", "staffed")]


# --- tickets ----------------------------------------------------------------------------


def test_retention_due_dates_and_what_the_stream_may_still_hold():
    hill = Institution(
        name="hill", institution="hill", display_name="Hill", timezone="UTC", retention_days=30
    )
    assert hill.retention_cutoff(T0) == T0 - timedelta(days=30)
    max_age = timedelta(hours=72)
    closed = (T0 - timedelta(hours=71)).isoformat()
    assert privacy.may_be_in_stream(closed, T0, max_age)
    assert not privacy.may_be_in_stream((T0 - timedelta(hours=73)).isoformat(), T0, max_age)
    assert privacy.may_be_in_stream(None, T0, max_age)  # not ended: its records are there


def test_an_erasure_matches_by_guest_or_email_in_its_scope_only():
    admin = Principal(username="demo-hill-admin", institution="hill", role="institution_admin")
    both = ErasePatron(institution="hill", principal=admin, guest_id="g1", email="Pat@X.org")
    assert privacy.patron_filter(both, "hill") == {
        "$or": [{"patron.guest_id": "g1"}, {"email_key": "pat@x.org"}],
        "institution": "hill",
    }
    assert "institution" not in privacy.patron_filter(both, None)
    assert both.scope("demo") == "hill"
    for institution, who in (("river", admin), ("demo", admin)):
        with pytest.raises(Refusal):
            both.model_copy(update={"institution": institution, "principal": who}).scope("demo")
    coordinator = admin.model_copy(update={"role": "consortium_admin", "institution": "demo"})
    assert (
        both.model_copy(update={"institution": "demo", "principal": coordinator}).scope("demo")
        is None
    )
    with pytest.raises(ValueError, match="guest_id or email"):
        ErasePatron(institution="hill", principal=admin)


def test_ticket_needs_email_subject_and_body():
    req = CreateTicket(
        institution="hill",
        email=" pat@example.org ",
        subject="Renewal",
        body="Please renew",
        created_by="demo-hill-ann",
    )
    ticket = tickets.new_ticket(req, "t1", T0)
    assert ticket.email == "pat@example.org" and ticket.status == "open"
    for field, value in (("email", "not-an-email"), ("subject", " "), ("body", "")):
        with pytest.raises(Refusal) as refused:
            tickets.new_ticket(req.model_copy(update={field: value}), "t1", T0)
        assert refused.value.code == "invalid" and field in refused.value.message


def _ticket() -> Ticket:
    req = CreateTicket(
        institution="hill",
        email="Pat@Example.org",
        subject="Renewal",
        body="Please renew",
        created_by="demo-hill-ann",
    )
    return tickets.new_ticket(req, "0123abcd" * 4, T0)


HILL_ANN = Principal(username="demo-hill-ann", institution="hill", role="operator")


def _account(username: str, institution: str, role: str = "operator") -> Account:
    return Account.model_validate(
        {"username": username, "institution": institution, "role": role, "display_name": "X"}
    )


def test_a_mail_header_can_never_start_another():
    ticket = _ticket()
    assert (
        ticket.ref == "T0123ABCD" and tickets.find_ref(f"Re: [{ticket.ref}] Renewal") == ticket.ref
    )
    req = CreateTicket(
        institution="hill", email="p@x.org", subject="s", body="b", created_by="demo-hill-ann"
    )
    for field, value in (
        ("subject", "Hello\r\nBcc: victim@example.org"),
        ("name", "Pat\nBcc: victim@example.org"),
        ("email", "p@x.org\r\nBcc: victim@example.org"),
    ):
        with pytest.raises(Refusal) as refused:
            tickets.new_ticket(req.model_copy(update={field: value}), "t1", T0)
        assert refused.value.code == "invalid" and field in refused.value.message


# Every Unicode line and paragraph break, and control characters C0, DEL and C1.
NOT_ONE_LINE = [
    *"\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
    *"\x00\x07\x1b\x1f\x7f\x80\x9b\x9f",
]


@pytest.mark.parametrize("character", NOT_ONE_LINE)
def test_a_subject_or_name_is_one_line_without_control_characters(character: str):
    req = CreateTicket(
        institution="hill", email="p@x.org", subject="s", body="b", created_by="demo-hill-ann"
    )
    for field in ("subject", "name"):
        value = f"Hours?{character}Bcc: victim@example.org"
        with pytest.raises(Refusal) as refused:
            tickets.new_ticket(req.model_copy(update={field: value}), "t1", T0)
        assert refused.value.code == "invalid" and refused.value.message.startswith(f"{field}:")
    # Letters of any script, a no-break space, emoji with joiners: one line all the same.
    fine = "Öffnungszeiten 日本語 \u00a0 \U0001f468\u200d\U0001f469 ?"
    assert tickets.new_ticket(req.model_copy(update={"subject": fine}), "t1", T0).subject == fine


def test_an_acknowledgement_says_nothing_the_sender_wrote_and_has_an_allowance():
    req = CreateTicket(
        institution="hill",
        source="offline_form",
        email="pat@example.org",
        name="Visit spam.example",
        subject="Cheap pills",
        body="Cheap pills at spam.example",
        created_by="widget:hill",
        acknowledge=True,
    )
    ticket = tickets.new_ticket(req, "0123abcd" * 4, T0)
    letter = tickets.acknowledgement(ticket, "Hill Library")
    assert letter.to == "pat@example.org"
    assert letter.subject == "[T0123ABCD] We have your question"
    assert "Hill Library" in letter.body and "[T0123ABCD]" in letter.body
    assert "spam" not in letter.body + letter.subject and "pills" not in letter.body
    assert [tickets.may_acknowledge(n, 3) for n in (1, 2, 3, 4, 50)] == [
        True,
        True,
        True,
        False,
        False,
    ]


def test_assignment_stays_within_the_institution_and_every_change_is_history():
    ticket = _ticket()
    bob = _account("demo-hill-bob", "hill")
    assign = UpdateTicket(
        institution="hill",
        principal=HILL_ANN,
        ticket_id=ticket.id,
        assign=True,
        assignee="demo-hill-bob",
    )
    later = T0 + timedelta(minutes=5)
    assigned = tickets.update(ticket, assign, bob, later)
    assert assigned.assignee == "demo-hill-bob" and assigned.updated_at != ticket.updated_at
    assert [(c.what, c.old, c.new, c.by) for c in assigned.history[1:]] == [
        ("assignee", None, "demo-hill-bob", "demo-hill-ann")
    ]
    for account, code in (
        (_account("demo-river-cat", "river"), "forbidden"),
        (None, "invalid"),
        (_account("demo-admin", "demo", "consortium_admin"), "forbidden"),
    ):
        with pytest.raises(Refusal) as refused:
            tickets.update(ticket, assign, account, later)
        assert refused.value.code == code
    close = UpdateTicket(
        institution="hill", principal=HILL_ANN, ticket_id=ticket.id, status="closed"
    )
    closed = tickets.update(assigned, close, None, later)
    assert closed.status == "closed" and closed.history[-1].what == "status"
    assert tickets.update(closed, close, None, later) == closed  # closing again: nothing
    river = Principal(username="demo-river-cat", institution="river", role="operator")
    with pytest.raises(Refusal) as refused:
        tickets.update(ticket, close.model_copy(update={"principal": river}), None, later)
    assert refused.value.code == "not_found"


def test_replies_notes_and_the_patrons_answer():
    ticket = _ticket()
    reply = ReplyToTicket(institution="hill", principal=HILL_ANN, ticket_id=ticket.id, body="Done.")
    answered = tickets.reply(ticket, reply, "r1", T0)
    assert answered.status == "pending" and answered.replies[-1].mail == "queued"
    noted = tickets.reply(answered, reply.model_copy(update={"internal": True}), "n1", T0)
    assert (
        noted.notes[-1].kind == "note"
        and noted.status == "pending"
        and noted.notes[-1].mail is None
    )
    with pytest.raises(Refusal) as refused:
        tickets.reply(ticket, reply.model_copy(update={"body": "x" * 20_001}), "r2", T0)
    assert refused.value.code == "too_large"
    back = tickets.patron_reply(answered, "pat@example.org", "Thanks!", "p1", T0)
    assert back.status == "open" and back.replies[-1].kind == "patron"
    with pytest.raises(Refusal) as refused:
        tickets.patron_reply(answered, "someone@else.org", "Hi", "p2", T0)
    assert refused.value.code == "forbidden"
    assert tickets.patron_sender(["pat@example.org"]) == "pat@example.org"
    for senders in ([], [""], ["pat@example.org", "someone@else.org"]):
        with pytest.raises(Refusal) as refused:
            tickets.patron_sender(senders)
        assert refused.value.code == "forbidden"
    quoted = "Thanks!\n\nOn Tue, Nov 24, 2026 Hill wrote:\n> Done.\n"
    assert tickets.fresh_text(quoted) == "Thanks!"
    assert tickets.fresh_text("> old\nnew") == "new"
    base, most = timedelta(seconds=30), timedelta(hours=1)
    assert [tickets.retry_after(n, base, most).total_seconds() for n in (1, 2, 3, 9)] == [
        30,
        60,
        120,
        3600,
    ]


def test_a_token_is_honoured_only_from_its_account_s_token_generation_on():
    @dataclass(frozen=True)
    class Claims:
        role: str = "operator"
        institution: str = "hill"
        generation: int = 2

    ann = Account(
        username="demo-hill-ann",
        institution="hill",
        role="operator",
        display_name="Ann",
        token_generation=2,
    )
    assert gateway.current_account(ann, Claims()) is ann
    assert gateway.session_end_reason(ann, Claims()) is None
    # Signed in since this replica's view last heard of the account: honoured.
    assert gateway.current_account(ann, Claims(generation=3)) is ann
    with pytest.raises(Refusal) as old:
        gateway.current_account(ann, Claims(generation=1))
    assert old.value.code == "unauthorized" and "sign in again" in old.value.message
    assert gateway.session_end_reason(ann, Claims(generation=1)) == "password_changed"
    disabled = ann.model_copy(update={"disabled": True})
    assert gateway.session_end_reason(disabled, Claims(generation=1)) == "account_disabled"
    assert gateway.session_end_reason(None, Claims()) == "account_disabled"
    assert gateway.session_end_reason(ann, Claims(role="institution_admin")) == "account_disabled"


def test_sign_in_limits_count_a_name_an_address_and_the_two_together():
    from services.gateway.domain import SignInLimits

    limits = SignInLimits(per_name_and_address=10, per_address=50, per_name=100)
    assert not limits.blocked(pair=9, address=49, name=99)
    assert limits.blocked(pair=10, address=0, name=10)  # one guesser, one name
    assert limits.blocked(pair=1, address=50, name=1)  # one address, many names
    assert limits.blocked(pair=1, address=1, name=100)  # many addresses, one name
    # Counted before it is checked: the tenth failure's own count is 10, and it is checked.
    assert limits.admits(pair=10, address=50, name=100)
    assert not limits.admits(pair=11, address=1, name=1)
    assert not limits.admits(pair=1, address=51, name=1)
    assert not limits.admits(pair=1, address=1, name=101)


@pytest.mark.parametrize(
    ("handled", "answered", "shared", "counted"),
    [
        ([], None, [], None),  # nobody answered: the library's alone
        (["hill"], "hill", [], "home"),
        (["hill", "river"], "river", ["river"], "partner"),  # handed to a partner
        (["hill", "backup"], "backup", ["backup"], "backup"),  # handed to the backup
        (["backup", "hill"], "backup", ["backup"], "backup"),  # the backup handed it home
        (["hill", "river", "backup"], "river", ["backup", "river"], "partner"),
    ],
)
def test_a_transcript_is_shared_with_every_institution_that_held_it(
    handled, answered, shared, counted
):
    chat = started().state.chat.model_copy(
        update={"handled_by": handled, "answered_institution": answered}
    )
    assert transcripts.shared_with(chat) == shared
    assert transcripts.answered_by(chat, frozenset({"backup"})) == counted


def test_the_audit_rule_logs_reads_of_a_library_s_patrons_from_outside_it():
    coordinator = Principal(username="demo-admin", institution="demo", role="consortium_admin")
    hill_admin = Principal(username="demo-hill-admin", institution="hill", role="institution_admin")
    backup = Principal(username="demo-night-nia", institution="night", role="operator")
    assert transcripts.audited_read(coordinator, "hill")
    assert not transcripts.audited_read(hill_admin, "hill")  # the library's own
    assert transcripts.audited_read(hill_admin, "river")
    # A chat a backup service answered is its own too; one it did not answer is not.
    assert not transcripts.audited_read(backup, "hill", ["night"])
    assert transcripts.audited_read(backup, "hill", [])
    assert transcripts.audited_read(coordinator, "hill", ["night"])
