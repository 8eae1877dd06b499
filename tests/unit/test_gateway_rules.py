"""The gateway's rules of who may see and do what, and of what a request may ask, as pure
functions (services/gateway/domain): the routes and sockets only call them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from services.gateway import domain
from shared.errors import Refusal
from shared.schemas.records import Account, Partnership, Queue, Snippet, Widget
from tests.factories import T0, started


@dataclass(frozen=True)
class Caller:
    username: str = "demo-hill-ann"
    institution: str = "hill"
    role: str = "operator"


ANN = Caller()
HILL_ADMIN = Caller("demo-hill-admin", "hill", "institution_admin")
CONSORTIUM_ADMIN = Caller("demo-admin", "demo", "consortium_admin")


@contextmanager
def refused(code: str, message: str) -> Iterator[None]:
    """The block is refused with exactly this code and message (what callers are told)."""
    with pytest.raises(Refusal) as refusal:
        yield
    assert (refusal.value.code, refusal.value.message) == (code, message)


def account(username: str, institution: str, role: str = "operator") -> Account:
    return Account(username=username, institution=institution, role=role, display_name="X")


def test_a_request_is_about_the_caller_s_institution_unless_an_admin_names_another():
    assert domain.scoped_institution(ANN, None) == "hill"
    assert domain.scoped_institution(ANN, "hill") == "hill"
    assert domain.scoped_institution(CONSORTIUM_ADMIN, "river") == "river"
    assert domain.scoped_institution(CONSORTIUM_ADMIN, None) == "demo"  # every institution
    with refused("forbidden", "you can only see your own institution"):
        domain.scoped_institution(HILL_ADMIN, "river")
    # Never a subject wildcard or a dotted name, whoever asks.
    for name in ("*", "a.b", ">"):
        with pytest.raises(Refusal) as bad:
            domain.scoped_institution(CONSORTIUM_ADMIN, name)
        assert bad.value.code == "invalid" and bad.value.message.startswith("institution: ")


def test_configuration_records_are_read_in_the_caller_s_institution_only():
    hill = Queue(name="demo-hill", institution="hill", display_name="Hill")
    river = Queue(name="demo-river", institution="river", display_name="River")
    assert domain.visible(hill, "queue demo-hill", ANN) is hill
    with refused("not_found", "no queue demo-river"):
        domain.visible(river, "queue demo-river", ANN)
    with refused("not_found", "no queue demo-none"):
        domain.visible(None, "queue demo-none", CONSORTIUM_ADMIN)
    assert domain.visible(river, "queue demo-river", CONSORTIUM_ADMIN) is river
    by_name = lambda q: q.name  # noqa: E731
    assert domain.in_scope([river, hill], ANN, by_name) == [hill]
    assert domain.in_scope([river, hill], CONSORTIUM_ADMIN, by_name) == [hill, river]


def test_snippets_are_a_library_s_and_the_consortium_s_partnerships_their_members():
    own = Snippet(name="hill (renewals)", institution="hill", body="...")
    shared = Snippet(name="demo (hours)", institution="demo", body="...")
    other = Snippet(name="river (fines)", institution="river", body="...")
    readable = [s.name for s in (own, shared, other) if domain.may_read_snippet(ANN, s, "demo")]
    assert readable == ["hill (renewals)", "demo (hours)"]
    assert domain.may_read_snippet(CONSORTIUM_ADMIN, other, "demo")
    pair = Partnership(
        name="hill-river",
        institution="demo",
        display_name="Hill and River",
        institutions=["hill", "river"],
    )
    assert domain.may_read_partnership(ANN, pair)
    assert not domain.may_read_partnership(Caller("demo-lake-lou", "lake"), pair)
    assert domain.may_read_partnership(CONSORTIUM_ADMIN, pair)


def test_an_admin_ends_sessions_of_their_own_institution_an_operator_nobody_s():
    bob = account("demo-hill-bob", "hill")
    rita = account("demo-river-rita", "river")
    assert domain.may_end_session(HILL_ADMIN, bob, bob.username) is bob
    assert domain.may_end_session(CONSORTIUM_ADMIN, rita, rita.username) is rita
    # Someone they may not see does not exist for them, before any question of role.
    with refused("not_found", "no user demo-river-rita"):
        domain.may_end_session(HILL_ADMIN, rita, rita.username)
    with refused("not_found", "no user demo-river-rita"):
        domain.may_end_session(ANN, rita, rita.username)
    with refused("not_found", "no user demo-hill-nobody"):
        domain.may_end_session(HILL_ADMIN, None, "demo-hill-nobody")
    with refused("forbidden", "only admins end other people's sessions"):
        domain.may_end_session(ANN, bob, bob.username)


def test_only_the_consortium_admin_announces():
    domain.may_announce(CONSORTIUM_ADMIN)
    for caller in (ANN, HILL_ADMIN):
        with refused("forbidden", "only a consortium admin sends announcements"):
            domain.may_announce(caller)


def test_a_direct_conversation_is_its_two_people_s_and_their_admins():
    dm = "dm:demo-hill-ann:demo-hill-bob"
    domain.may_read_conversation(ANN, dm)
    domain.may_read_conversation(HILL_ADMIN, dm)
    with refused("not_found", "no such conversation"):
        domain.may_read_conversation(Caller("demo-hill-cat"), dm)
    for conversation in ("all", "queue:demo-hill", "announcements"):
        domain.may_read_conversation(Caller("demo-hill-cat"), conversation)


def test_a_span_has_offsets_an_order_and_at_most_a_year_below_the_consortium():
    start = T0
    domain.check_span("operator", start, start + timedelta(days=366))
    domain.check_span("operator", None, None)
    domain.check_span("operator", start, None)  # open-ended
    with refused("invalid", "from: a span is at most a year (366 days)"):
        domain.check_span("institution_admin", start, start + timedelta(days=366, seconds=1))
    domain.check_span("consortium_admin", start, start + timedelta(days=3 * 366))
    with refused("invalid", "to: must be after from"):
        domain.check_span("consortium_admin", start, start)
    naive = datetime(2026, 11, 23, 15, 0)
    with refused("invalid", "from/to: give a time zone offset, e.g. Z"):
        domain.check_span("operator", naive, naive + timedelta(days=1))
    with refused("invalid", "from/to: give a time zone offset, e.g. Z"):
        domain.check_span("operator", None, naive)
    with refused("invalid", "since: give a time zone offset, e.g. Z"):
        domain.aware("since", naive)
    domain.aware("since", datetime(2026, 11, 23, tzinfo=UTC))


def test_reads_from_outside_a_library_are_audited_in_it():
    assert domain.reads_to_audit("demo", "hill", ["t1"])
    assert not domain.reads_to_audit("hill", "hill", ["t1"])
    assert not domain.reads_to_audit("demo", "hill", [])


def test_a_ticket_from_a_chat_takes_what_staff_left_out_from_the_chat():
    chat = started(question="Where  are\nthe theses?", email="pat@example.org").state.chat
    made = domain.follow_up(chat, None, None, None, None)
    assert made == domain.FollowUp(
        "chat", "pat@example.org", "Pat", "Where are the theses?", "Where  are\nthe theses?"
    )
    # What staff gave wins; a missed chat is told apart.
    missed = chat.model_copy(update={"state": "missed"})
    given = domain.follow_up(missed, "p@example.org", "P", "Theses", "Which theses?")
    assert given == domain.FollowUp("missed_chat", "p@example.org", "P", "Theses", "Which theses?")
    long = chat.model_copy(update={"question": "x" * 300})
    assert domain.follow_up(long, None, None, None, None).subject == "x" * 200
    silent = chat.model_copy(update={"question": None})
    assert domain.follow_up(silent, None, None, None, None).subject == "Follow-up"


def test_a_ticket_needs_the_patron_s_email_saying_where_it_would_have_come_from():
    no_email = started().state.chat
    with refused("invalid", "email: the chat has none; ask the patron for it"):
        domain.follow_up(no_email, None, None, None, None)
    with refused("invalid", "email: a ticket needs the patron's email address"):
        domain.follow_up(None, None, None, "Theses", "Which?")
    # Without a chat, staff's own: a missing subject or body is the tickets service's to refuse.
    assert domain.follow_up(None, "p@example.org", None, None, None) == domain.FollowUp(
        "staff", "p@example.org", None, "", ""
    )


def test_a_patron_socket_is_let_in_for_a_known_widget_an_allowed_page_and_a_few_per_address():
    widget = Widget(
        id="hill",
        institution="hill",
        queue="demo-hill",
        title="Ask",
        allowed_origins=["https://hill.example.org"],
    )
    own = "https://refdesk.example.org"
    assert domain.patron_socket_refusal(widget, "https://hill.example.org", own, 19, 20) is None
    assert domain.patron_socket_refusal(widget, own, own, 0, 20) is None
    assert domain.patron_socket_refusal(widget, None, own, 0, 20) is None  # not a browser page
    cases = [
        (None, "https://hill.example.org", 0, "not_found", "no such widget", 4404),
        (widget, "https://evil.example", 0, "forbidden", "this widget is not for this site", 4403),
        (
            widget,
            "https://hill.example.org",
            20,
            "rate_limited",
            "too many chat windows open from here",
            4429,
        ),
    ]
    for found, origin, open_here, code, message, close in cases:
        refusal = domain.patron_socket_refusal(found, origin, own, open_here, 20)
        assert refusal is not None
        error, closed_with = refusal
        assert (error.code, error.message, closed_with) == (code, message, close)


def test_an_operator_monitors_their_own_queues_their_partners_and_an_admin_any():
    hill = Queue(name="demo-hill", institution="hill", display_name="Hill")
    river = Queue(name="demo-river", institution="river", display_name="River")
    assert domain.may_monitor(ANN, hill, frozenset())
    assert not domain.may_monitor(ANN, river, frozenset())
    assert domain.may_monitor(ANN, river, frozenset({"river"}))
    assert domain.may_monitor(CONSORTIUM_ADMIN, river, frozenset())
    assert not domain.may_monitor(CONSORTIUM_ADMIN, None, frozenset())


def test_an_operator_sends_their_library_s_snippets_and_the_consortium_s():
    own = Snippet(name="hill (renewals)", institution="hill", body="Renew online.")
    shared = Snippet(name="demo (hours)", institution="demo", body="Open 9-5.")
    other = Snippet(name="river (fines)", institution="river", body="...")
    assert domain.usable_snippet(own, own.name, "hill", "demo") == "Renew online."
    assert domain.usable_snippet(shared, shared.name, "hill", "demo") == "Open 9-5."
    # Whatever the role: a consortium admin sends the consortium's, not another library's.
    with refused("not_found", "no snippet river (fines)"):
        domain.usable_snippet(other, other.name, "demo", "demo")
    with refused("not_found", "no snippet hill (none)"):
        domain.usable_snippet(None, "hill (none)", "hill", "demo")


def test_chats_are_taken_only_while_online():
    domain.must_be_online("online", "take chats")
    for status in ("away", "internal", "offline"):
        with refused("forbidden", "set your status to online to start chats"):
            domain.must_be_online(status, "start chats")


def test_an_operator_messages_someone_else_of_their_institution():
    domain.check_colleague(ANN, account("demo-hill-bob", "hill"), "demo-hill-bob")
    with refused("not_found", "no operator demo-river-rita"):
        domain.check_colleague(ANN, account("demo-river-rita", "river"), "demo-river-rita")
    with refused("not_found", "no operator demo-hill-nobody"):
        domain.check_colleague(ANN, None, "demo-hill-nobody")
    with refused("invalid", "that is you"):
        domain.check_colleague(ANN, account("demo-hill-ann", "hill"), "demo-hill-ann")
