"""How the tickets service writes mail headers: no text (a subject, however it was stored;
a configured name) becomes a header or a recipient, encoded words stay text, and the
check that every built or queued mail passes refuses anything but a letter."""

from __future__ import annotations

import base64
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.tickets import domain
from services.tickets.mail import Mailbox, MailRefused, Outgoing, check, mime, stored
from shared.errors import Refusal
from tests.client import assert_a_letter_of
from tests.factories import T0

SENDER = Mailbox.parse("Hill Library <desk@hill.example>")
REPLY_TO = Mailbox.parse('"Hill, Reference" <answers@hill.example>')
PATRON = "Pat.Doe@example.org"
INTRUDER = "intruder@evil.example"
# Every character that some reader takes for a line break.
LINE_BREAKS = [
    "\r\n",
    "\n",
    "\r",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x1d",
    "\x1e",
    "\x85",
    "\u2028",
    "\u2029",
]


def built(subject: str, to: str = PATRON) -> tuple[Outgoing, EmailMessage]:
    mail = mime(domain.Letter(to, subject, "Yes, 12 to 5.\n"), SENDER, REPLY_TO, T0)
    message = message_from_bytes(mail.data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return mail, message


def assert_a_letter(mail: Outgoing, message: EmailMessage) -> None:
    assert_a_letter_of(mail.data, PATRON, also=("reply-to",))
    assert (mail.sender, mail.recipient) == ("desk@hill.example", PATRON)


def test_header_text_is_one_line_whatever_was_stored():
    for line_break in LINE_BREAKS:
        assert domain.header_text(f" Hours?{line_break}Bcc: {INTRUDER} ") == (
            f"Hours? Bcc: {INTRUDER}"
        )
    assert domain.header_text("a\x00b\x7fc\x9fd\ud800e") == "a b c d e"
    assert domain.header_text("x" * 1000) == "x" * domain.HEADER_TEXT_MAX


@pytest.mark.parametrize(
    "word",
    [
        f"=?utf-8?q?a=0D=0ABcc:_{INTRUDER}?=",
        f"=?utf-8?q?=0ABcc:_{INTRUDER}?=",
        f"=?iso-8859-1?q?a=0DBcc:_{INTRUDER}?=",
        "=?utf-8?b?"
        + base64.b64encode(f"x\r\nBcc: {INTRUDER}\r\nContent-Type: text/html".encode()).decode()
        + "?=",
        f"=?utf-8?q?a=E2=80=A8Bcc:_{INTRUDER}?=",
        f"=?utf-8?q?a=C2=85Bcc:_{INTRUDER}?=",
        f"=?utf-8?q?a=E2=80=A9Bcc:_{INTRUDER}?=",
        f"=?utf-8?q?a=0B=0C=1C=1D=1EBcc:_{INTRUDER}?=",
    ],
)
def test_an_encoded_word_in_a_subject_stays_text(word: str):
    for subject in (f"[T0123ABCD] Re: {word} hours?", "[T0123ABCD] Re: " + "Hours " * 30 + word):
        mail, message = built(subject)
        assert_a_letter(mail, message)
        assert str(message["Subject"]) == " ".join(subject.split())


@pytest.mark.parametrize("line_break", LINE_BREAKS)
def test_a_stored_subject_with_a_line_break_makes_a_one_line_header(line_break: str):
    mail, message = built(f"[T0123ABCD] Re: Hours?{line_break}Bcc: {INTRUDER}")
    assert_a_letter(mail, message)
    assert str(message["Subject"]) == f"[T0123ABCD] Re: Hours? Bcc: {INTRUDER}"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=600))
def test_any_subject_makes_a_letter(subject: str):
    mail, message = built(subject)
    assert_a_letter(mail, message)
    assert str(message["Subject"]) == domain.header_text(subject)
    assert all(len(line) <= 998 for line in mail.data.split(b"\r\n"))


def test_an_address_must_be_one_mail_can_reach_in_ascii():
    assert domain.mail_address(" Pat.Doe@Example.ORG ") == "Pat.Doe@example.org"
    assert domain.mail_address("pat@exämple.org") == "pat@xn--exmple-cua.org"
    for bad in (
        "=?utf-8?q?a=0D=0ABcc=3A_v1=40evil.example?=@example.org",
        "pät@example.org",
        "a\x00b@example.org",
        f"p@example.org\r\nBcc: {INTRUDER}",
        f"p@example.org, {INTRUDER}",
        "p@example",
    ):
        with pytest.raises(Refusal) as refused:
            domain.mail_address(bad)
        assert refused.value.code == "invalid" and "email" in refused.value.message
        with pytest.raises(Refusal):
            built("Hours?", to=bad)


def test_the_configured_sender_is_one_address():
    assert Mailbox.parse("refdesk@localhost") == Mailbox("", "refdesk@localhost")
    for name, text in (
        ("Bibliothèque Hill", "Bibliothèque Hill <desk@hill.example>"),
        ("Hill Library", "=?utf-8?q?Hill_Library?= <desk@hill.example>"),
    ):
        named = Mailbox.parse(text)
        assert named == Mailbox(name, "desk@hill.example")
        mail = mime(domain.Letter(PATRON, "Hours?", "Yes.\n"), named, None, T0)
        check(mail)
        message = message_from_bytes(mail.data, policy=policy.default)
        assert message["From"].addresses[0].display_name == name
    for bad in (
        f"desk@hill.example, {INTRUDER}",
        "Hill",
        "Hill <desk@hill.example> <x@evil.example>",
        "Hill <dësk@hill.example>",
        "group: a@x.example, b@y.example;",
        f"=?utf-8?q?Hill=0D=0ABcc:_{INTRUDER}?= <desk@hill.example>",
    ):
        with pytest.raises(ValueError):
            Mailbox.parse(bad)


def test_the_header_check_takes_a_letter_and_nothing_else():
    mail, _ = built("[T0123ABCD] Re: Hours?")
    head = mail.data.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    assert domain.header_fault(head) is None
    for forged in (
        head + f"Bcc: {INTRUDER}\r\n".encode(),
        head + b"Content-Type: text/html\r\n",
        head.replace(b"Subject: ", b"Subject: a\rBcc: x@evil.example "),
        head.replace(b"Subject: ", b"Subject: a\nBcc: x@evil.example "),
        head.replace(b"Subject: ", b"Subject: a\x0bBcc: x@evil.example "),
        head.replace(b"Subject: ", "Subject: a\u2028b ".encode()),
        head.replace(b"Subject: ", b"Subject: " + b"x" * 1000),
        head[:-2],
    ):
        assert domain.header_fault(forged) is not None, forged
    assert domain.addresses_fault(["d@h"], ["p@x"], "d@h", "p@x") is None
    assert domain.addresses_fault(["d@h"], ["p@x", "i@e"], "d@h", "p@x") is not None
    assert domain.addresses_fault(["d@h", "i@e"], ["p@x"], "d@h", "p@x") is not None
    assert domain.addresses_fault(["d@h"], ["i@e"], "d@h", "p@x") is not None
    # The envelope must be the mail's own: another recipient is refused.
    with pytest.raises(MailRefused):
        check(Outgoing(mail.sender, INTRUDER, mail.data))


def test_a_queued_mail_is_checked_again_before_it_is_sent():
    mail, _ = built("[T0123ABCD] Re: Hours?")
    document = {"message": mail.data.decode(), "sender": mail.sender, "recipient": PATRON}
    assert stored(document) == mail
    # Queued before envelopes were stored (LF line ends): its own From and To.
    legacy = {"message": mail.data.decode().replace("\r\n", "\n")}
    assert stored(legacy) == mail
    injected = mail.data.decode().replace("Subject: ", f"Bcc: {INTRUDER}\r\nSubject: ", 1)
    for forged in (
        {"message": injected},
        {"message": injected, "sender": mail.sender, "recipient": PATRON},
        {"message": mail.data.decode(), "sender": mail.sender, "recipient": INTRUDER},
        {"message": mail.data.decode().replace(f"To: {PATRON}", f"To: {PATRON}, {INTRUDER}")},
    ):
        with pytest.raises(MailRefused):
            stored(forged)
