"""Tickets' mail against a real SMTP server (aiosmtpd, started here), a real nats-server and
MongoDB: the acknowledgement and a staff reply arrive with the right recipient, reference
and body; no subject, however made, adds a header or a recipient (the bytes the server
received, and the `.eml` files of the outbox folder); a patron's answer by email lands in
its ticket; an SMTP outage is retried on the service's clock and, across a restart of the
tickets service, nothing is lost."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
import pytest_asyncio
from aiosmtpd.smtp import SMTP, Envelope, Session
from prometheus_client import REGISTRY

from deploy.local.processes import free_port
from services.tickets import inbound
from services.tickets.handlers import TicketHandlers
from services.tickets.mail import Backoff, FolderTransport, MailSender, SmtpTransport, Transport
from services.tickets.retention import TicketRetention
from services.tickets.store import TicketStore
from shared import store, subjects
from shared.bus import Bus
from shared.clock import FixedClock
from shared.configuration import ConfigView
from shared.counters import Counters
from shared.schemas.records import Institution, Principal
from shared.schemas.tickets import CreateTicket, GetTicket, ReplyToTicket, Ticket, UpdateTicket
from tests.client import assert_a_letter_of, eventually
from tests.factories import T0
from tests.servers import Servers

ANN = Principal(username="demo-hill-ann", institution="hill", role="operator")
PATRON = "Pat.Doe@example.org"
BACKOFF = Backoff(timedelta(seconds=30), timedelta(minutes=10), attempts=5)
ACKNOWLEDGEMENTS_PER_RECIPIENT = 3


@dataclass(frozen=True)
class Received:
    """A mail as the SMTP server had it: the envelope and the bytes of the DATA."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    message: EmailMessage


class Inbox:
    """An SMTP server that keeps what it is sent."""

    def __init__(self) -> None:
        self.mail: asyncio.Queue[Received] = asyncio.Queue()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content
        assert isinstance(content, bytes) and isinstance(envelope.mail_from, str)
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        await self.mail.put(Received(envelope.mail_from, list(envelope.rcpt_tos), content, parsed))
        return "250 OK"

    async def received(self) -> Received:
        return await asyncio.wait_for(self.mail.get(), 10)

    async def next(self) -> EmailMessage:
        return (await self.received()).message


async def smtp_server(handler: Any, port: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: SMTP(handler), "127.0.0.1", port)


@dataclass
class Service:
    """The tickets service's parts, as its __main__ puts them together."""

    handlers: TicketHandlers
    mailer: MailSender
    view: ConfigView


@dataclass
class Setting:
    bus: Bus
    db: Any
    clock: FixedClock
    smtp_port: int
    # This test's own acknowledgements bucket (what replicas share; no other test counts).
    acknowledgements: str
    # Where mail goes instead of the SMTP server, as with no SMTP host configured.
    outbox: Path | None = None

    async def start(self) -> Service:
        view = ConfigView(await self.bus.key_value(subjects.CONFIG_BUCKET))
        await view.start()
        tickets = TicketStore(self.db)
        await tickets.ensure_indexes()
        counters = Counters(await self.bus.key_value(self.acknowledgements, ttl=3600))
        handlers = TicketHandlers(
            self.bus,
            tickets,
            view,
            self.clock,
            "demo",
            "Hill <desk@hill.example>",
            None,
            counters,
            ACKNOWLEDGEMENTS_PER_RECIPIENT,
        )
        transport: Transport = (
            SmtpTransport("127.0.0.1", self.smtp_port, security="none", timeout_s=5)
            if self.outbox is None
            else FolderTransport(self.outbox)
        )
        mailer = MailSender(tickets, transport, self.clock, handlers.mail_reported, BACKOFF)
        handlers.mailer = mailer
        mailer.start()
        return Service(handlers, mailer, view)

    async def stop(self, service: Service) -> None:
        await service.mailer.stop()
        await service.view.stop()


@pytest_asyncio.fixture
async def setting(bus: Bus, servers: Servers) -> AsyncIterator[Setting]:
    client = store.connect(servers.mongodb_uri, "tests")
    db = client[f"t{uuid.uuid4().hex[:10]}"]
    acknowledgements = f"acks_{uuid.uuid4().hex[:10]}"
    yield Setting(bus, db, FixedClock(T0), free_port(), acknowledgements)
    await bus.js.delete_key_value(acknowledgements)
    await client.drop_database(db.name)
    await client.close()


def offline(**fields: Any) -> CreateTicket:
    made = {
        "institution": "hill",
        "source": "offline_form",
        "email": PATRON,
        "name": "Pat",
        "subject": "Open on Sunday?",
        "body": "Is the library open on Sunday?",
        "created_by": "widget:hill",
        "acknowledge": True,
    }
    return CreateTicket.model_validate({**made, **fields})


async def ticket_now(service: Service, ticket_id: str) -> Ticket:
    return await service.handlers.get(
        GetTicket(institution="hill", principal=ANN, ticket_id=ticket_id)
    )


async def until(service: Service, ticket_id: str, check: Any) -> Ticket:
    async def there() -> Ticket | None:
        ticket = await ticket_now(service, ticket_id)
        return ticket if check(ticket) else None

    return await eventually(there, f"ticket {ticket_id} as expected")


@asynccontextmanager
async def running(s: Setting) -> AsyncIterator[tuple[Service, Inbox]]:
    """The service, and an SMTP server that takes its mail into an inbox; both stopped
    after."""
    inbox = Inbox()
    server = await smtp_server(inbox, s.smtp_port)
    service = await s.start()
    try:
        yield service, inbox
    finally:
        await s.stop(service)
        server.close()


async def test_acknowledgement_and_reply_arrive_and_a_patron_answer_is_threaded(setting):
    s = setting
    inbox = Inbox()
    server = await smtp_server(inbox, s.smtp_port)
    service = await s.start()
    inbound_port = free_port()
    listening = await inbound.serve(
        service.handlers.patron_mail, "127.0.0.1", inbound_port, 100_000
    )
    try:
        ticket = await service.handlers.create(offline())
        ack = await inbox.next()
        assert ack["To"] == PATRON and ack["From"] == "Hill <desk@hill.example>"
        assert ack["Subject"] == f"[{ticket.ref}] We have your question"
        assert "Sunday" not in ack.get_content() and "Pat" not in ack.get_content()
        await until(service, ticket.id, lambda t: t.acknowledgement == "sent")

        reply = ReplyToTicket(
            institution="hill", principal=ANN, ticket_id=ticket.id, body="Yes, 12 to 5."
        )
        replied = await service.handlers.reply(reply)
        assert replied.status == "pending"
        answer = await inbox.next()
        assert answer["To"] == PATRON and answer["Subject"] == f"[{ticket.ref}] Re: Open on Sunday?"
        assert answer.get_content().startswith("Yes, 12 to 5.")
        await until(service, ticket.id, lambda t: t.replies[0].mail == "sent")

        # The patron answers by email, quoting the reply: the new text is threaded in.
        patron_mail = EmailMessage()
        patron_mail["From"] = f"Pat <{PATRON.upper()}>"
        patron_mail["To"] = "desk@hill.example"
        patron_mail["Subject"] = f"Re: [{ticket.ref}] Re: Open on Sunday?"
        patron_mail.set_content("And on Monday?\n\nOn Tue, Hill wrote:\n> Yes, 12 to 5.\n")
        await aiosmtplib.send(patron_mail, hostname="127.0.0.1", port=inbound_port)
        threaded = await ticket_now(service, ticket.id)
        assert threaded.status == "open" and threaded.replies[-1].kind == "patron"
        assert threaded.replies[-1].body == "And on Monday?"

        # Mail from anyone else, or without a reference, is refused and changes nothing.
        for sender, subject in (
            ("mallory@example.org", f"Re: [{ticket.ref}] hello"),
            (PATRON, "Re: hello"),
        ):
            forged = EmailMessage()
            forged["From"], forged["To"], forged["Subject"] = sender, "desk@hill.example", subject
            forged.set_content("Close my ticket")
            with pytest.raises(aiosmtplib.SMTPDataError) as refused:
                await aiosmtplib.send(forged, hostname="127.0.0.1", port=inbound_port)
            assert refused.value.code == 550
        assert await ticket_now(service, ticket.id) == threaded
    finally:
        listening.close()
        await s.stop(service)
        server.close()


INTRUDER = "intruder@evil.example"


def _b_word(text: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


_CRLF_BCC = f"=?utf-8?q?a=0D=0ABcc:_{INTRUDER}?="
# Encoded words that the standard library's header folding (Python 3.11.7) decodes into
# line breaks, headers and a second content type; every Unicode line break encoded; and
# subjects long enough to be folded, an encoded word at the fold.
ENCODED_SUBJECTS = [
    f"{_CRLF_BCC} hours?",
    f"=?utf-8?q?=0ABcc:_{INTRUDER}?=",
    f"=?iso-8859-1?q?a=0DBcc:_{INTRUDER}?=",
    _b_word(f"x\r\nBcc: {INTRUDER}\r\nContent-Type: text/html"),
    f"=?utf-8?q?a=E2=80=A8Bcc:_{INTRUDER}?=",  # U+2028
    f"=?utf-8?q?a=C2=85Bcc:_{INTRUDER}?=",  # U+0085
    f"=?utf-8?q?a=E2=80=A9Bcc:_{INTRUDER}?=",  # U+2029
    f"=?utf-8?q?a=0B=0C=1C=1D=1EBcc:_{INTRUDER}?=",
    "Opening hours " * 10 + _CRLF_BCC,
    " ".join([_CRLF_BCC] * 4),
    "é" * 60 + _CRLF_BCC + "é" * 60,
]


def staff_ticket(subject: str) -> CreateTicket:
    return offline(source="staff", created_by="demo-hill-ann", acknowledge=False, subject=subject)


def assert_a_letter(data: bytes, subject: str) -> None:
    message = assert_a_letter_of(data, PATRON, subject)
    assert message.get_content_type() == "text/plain"


async def arrivals(s: Setting, inbox: Inbox, count: int) -> dict[str, bytes]:
    """`count` mails by the reference in their subject: from the SMTP server, its
    envelope checked (the sender, and the patron alone), or from the outbox folder."""
    found: dict[str, bytes] = {}
    if s.outbox is None:
        for _ in range(count):
            got = await inbox.received()
            assert (got.mail_from, got.rcpt_tos) == ("desk@hill.example", [PATRON])
            found[_ref(str(got.message["Subject"]))] = got.data
    else:
        outbox = s.outbox

        async def written() -> list[Path] | None:
            files = sorted(outbox.glob("*.eml")) if outbox.exists() else []
            return files if len(files) >= count else None

        for path in await eventually(written, f"{count} mails in the outbox folder"):
            message = message_from_bytes(path.read_bytes(), policy=policy.default)
            found[_ref(str(message["Subject"]))] = path.read_bytes()
    assert len(found) == count and inbox.mail.empty()
    return found


def _ref(subject: str) -> str:
    return subject.split("]", 1)[0].removeprefix("[")


async def answered_by_mail(
    s: Setting, service: Service, inbox: Inbox, made: list[Ticket], subject: Callable[[Ticket], str]
) -> None:
    """Each ticket answered: the reply is queued, mailed as a letter whose subject is the
    ticket's reference and `subject`, and then marked sent."""
    for ticket in made:
        reply = ReplyToTicket(institution="hill", principal=ANN, ticket_id=ticket.id, body="Yes.")
        replied = await service.handlers.reply(reply)
        assert replied.replies[0].mail == "queued"
    mailed = await arrivals(s, inbox, len(made))
    for ticket in made:
        assert_a_letter(mailed[ticket.ref], f"[{ticket.ref}] {subject(ticket)}")
        await until(service, ticket.id, lambda t: t.replies[0].mail == "sent")


@pytest.mark.parametrize("where", ["smtp", "outbox"])
async def test_encoded_words_in_a_subject_stay_text_and_add_no_header_or_recipient(
    setting, tmp_path, where
):
    """A staff ticket's subject (a chat's question becomes one the same way) with encoded
    words: each reply is mailed to the patron alone with the subject as typed."""
    s = setting
    s.outbox = tmp_path / "outbox" if where == "outbox" else None
    async with running(s) as (service, inbox):
        made = [
            await service.handlers.create(staff_ticket(subject)) for subject in ENCODED_SUBJECTS
        ]
        await answered_by_mail(s, service, inbox, made, lambda t: f"Re: {t.subject}")


@pytest.mark.parametrize("where", ["smtp", "outbox"])
async def test_a_stored_subject_with_any_line_break_never_fails_a_reply(setting, tmp_path, where):
    """Subjects stored before the one-line rule refused them (every Unicode line break):
    each reply is taken (no error), mailed with the subject on one line, and sent."""
    s = setting
    s.outbox = tmp_path / "outbox" if where == "outbox" else None
    breaks = [
        "\r\n",
        "\n",
        "\r",
        "\u2028",
        "\x85",
        "\x0b",
        "\x0c",
        "\x1c",
        "\x1d",
        "\x1e",
        "\u2029",
    ]
    async with running(s) as (service, inbox):
        made = []
        for line_break in breaks:
            ticket = await service.handlers.create(staff_ticket("Placeholder"))
            stored = f"Hours?{line_break}Bcc: {INTRUDER}"
            await TicketStore(s.db).tickets.raw.update_one(
                {"_id": ticket.id}, {"$set": {"subject": stored}}
            )
            made.append(ticket)
        await answered_by_mail(s, service, inbox, made, lambda _: f"Re: Hours? Bcc: {INTRUDER}")


async def test_a_stored_address_no_mail_can_go_to_fails_the_mail_not_the_reply(setting):
    """An address stored before the address rules (an encoded word for a local part):
    the reply is taken, and its mail is `failed` on the ticket, never sent."""
    s = setting
    async with running(s) as (service, inbox):
        ticket = await service.handlers.create(staff_ticket("Hours?"))
        stored = f"=?utf-8?q?a=0D=0ABcc=3A_{INTRUDER.replace('@', '=40')}?=@example.org"
        await TicketStore(s.db).tickets.raw.update_one(
            {"_id": ticket.id}, {"$set": {"email": stored}}
        )
        reply = ReplyToTicket(institution="hill", principal=ANN, ticket_id=ticket.id, body="Yes.")
        replied = await service.handlers.reply(reply)
        assert replied.replies[0].mail == "failed" and "email" in (
            replied.replies[0].mail_error or ""
        )
        assert (await ticket_now(service, ticket.id)).replies[0].mail == "failed"
        assert await TicketStore(s.db).outbox.raw.count_documents({"ticket_id": ticket.id}) == 0
        assert inbox.mail.empty()


async def test_a_queued_mail_with_a_header_of_its_own_is_never_sent(setting):
    """A mail queued before these rules, with a `Bcc` that a subject made: the sender
    checks it again, sends it to nobody, and the ticket shows it failed."""
    s = setting
    async with running(s) as (service, inbox):
        ticket = await service.handlers.create(staff_ticket("Hours?"))
        forged = (
            f"From: Hill <desk@hill.example>\nTo: {PATRON}\nSubject: [{ticket.ref}] Re: a\r\n"
            f"Bcc: {INTRUDER} hours?\nDate: Mon, 23 Nov 2026 15:00:00 +0000\n"
            'Message-ID: <1@refdesk>\nContent-Type: text/plain; charset="utf-8"\n'
            "Content-Transfer-Encoding: 7bit\nMIME-Version: 1.0\n\nYes.\n"
        )
        await TicketStore(s.db).outbox.raw.insert_one(
            {
                "_id": f"{ticket.id}:ack",
                "institution": "hill",
                "ticket_id": ticket.id,
                "entry_id": None,
                "message": forged,
                "state": "queued",
                "attempts": 0,
                "next_ms": int(T0.timestamp() * 1000),
                "error": None,
            }
        )
        service.mailer.wake()
        failed = await until(service, ticket.id, lambda t: t.acknowledgement == "failed")
        assert failed.acknowledgement == "failed" and inbox.mail.empty()
        # A good mail queued after it is sent, and alone: the forged one went to nobody.
        reply = ReplyToTicket(institution="hill", principal=ANN, ticket_id=ticket.id, body="Yes.")
        await service.handlers.reply(reply)
        got = await inbox.received()
        assert got.rcpt_tos == [PATRON] and inbox.mail.empty()
        await until(service, ticket.id, lambda t: t.replies[0].mail == "sent")


async def test_acknowledgements_carry_no_sender_text_and_are_bounded_per_recipient(setting):
    """The offline form's acknowledgement says nothing the sender wrote, and one address
    gets at most the allowance of them, counted across two replicas sharing the bucket:
    past it the question is still a ticket, with no mail. Another address has its own."""
    s = setting
    inbox = Inbox()
    server = await smtp_server(inbox, s.smtp_port)
    replicas = [await s.start(), await s.start()]
    spam = "Cheap pills at http://spam.example/ now"
    try:
        made = [
            await replicas[n % 2].handlers.create(
                offline(name=spam[:40], subject=spam, body=spam, email=PATRON.upper())
            )
            for n in range(ACKNOWLEDGEMENTS_PER_RECIPIENT + 2)
        ]
        acknowledged, withheld = (
            made[:ACKNOWLEDGEMENTS_PER_RECIPIENT],
            made[ACKNOWLEDGEMENTS_PER_RECIPIENT:],
        )
        assert [t.acknowledgement for t in withheld] == [None, None]
        outbox = TicketStore(s.db).outbox.raw
        assert await outbox.count_documents({"ticket_id": {"$in": [t.id for t in withheld]}}) == 0
        other = await replicas[0].handlers.create(offline(email="someone@example.org"))
        arrived = [await inbox.received() for _ in range(ACKNOWLEDGEMENTS_PER_RECIPIENT + 1)]
        assert sorted(got.rcpt_tos[0] for got in arrived) == sorted(
            # The address as mail goes to it: its domain in lower case.
            ["PAT.DOE@example.org"] * ACKNOWLEDGEMENTS_PER_RECIPIENT + ["someone@example.org"]
        )
        for got in arrived:
            assert "pills" not in got.data.decode() and "spam" not in got.data.decode()
            # The library by its name where the configuration has it (another test may have
            # written Hill's record to the session's bucket), else by its abbreviation.
            said = got.message.get_content()
            assert any(
                f"{name} has a question sent from its website" in said
                for name in ("hill", "Hill College Library")
            ), said
        for ticket in [*acknowledged, other]:
            await until(replicas[0], ticket.id, lambda t: t.acknowledgement == "sent")
        assert inbox.mail.empty()
    finally:
        for service in replicas:
            await s.stop(service)
        server.close()


async def test_the_inbound_port_tells_nothing_of_which_references_exist(setting):
    """A reference no ticket has, the ticket's reference from another address, and a
    `From` with several addresses (the patron's among them, first or not) or two `From`
    headers or a group: one and the same refusal, and the ticket is unchanged."""
    s = setting
    service = await s.start()
    inbound_port = free_port()
    listening = await inbound.serve(
        service.handlers.patron_mail, "127.0.0.1", inbound_port, 100_000
    )
    try:
        ticket = await service.handlers.create(offline(acknowledge=False))
        unknown = "T" + ("0" if ticket.ref[1] != "0" else "1") + ticket.ref[2:]

        def mail(senders: list[str], ref: str) -> bytes:
            head = "".join(f"From: {sender}\r\n" for sender in senders)
            return (
                f"{head}To: desk@hill.example\r\nSubject: Re: [{ref}] Hours\r\n"
                "Message-ID: <1@example.org>\r\n\r\nAnd on Monday?\r\n"
            ).encode()

        answers = set()
        for senders, ref in (
            ([PATRON], unknown),
            (["mallory@example.org"], ticket.ref),
            ([f"{PATRON}, mallory@example.org"], ticket.ref),
            ([f"mallory@example.org, Pat <{PATRON}>"], ticket.ref),
            ([PATRON, "mallory@example.org"], ticket.ref),
            ([f"friends: {PATRON}, mallory@example.org;"], ticket.ref),
            (["friends:;"], ticket.ref),
        ):
            with pytest.raises(aiosmtplib.SMTPDataError) as refused:
                await aiosmtplib.send(
                    mail(senders, ref),
                    sender="mallory@example.org",
                    recipients=["desk@hill.example"],
                    hostname="127.0.0.1",
                    port=inbound_port,
                )
            answers.add((refused.value.code, refused.value.message))
        assert len(answers) == 1 and next(iter(answers))[0] == 550, answers
        assert await ticket_now(service, ticket.id) == ticket
        # The patron alone is still taken.
        await aiosmtplib.send(
            mail([f"Pat <{PATRON}>"], ticket.ref),
            sender=PATRON,
            recipients=["desk@hill.example"],
            hostname="127.0.0.1",
            port=inbound_port,
        )
        assert (await ticket_now(service, ticket.id)).replies[-1].body == "And on Monday?"
    finally:
        listening.close()
        await s.stop(service)


async def test_an_smtp_outage_is_retried_and_survives_a_restart(setting):
    s = setting
    failures = REGISTRY.get_sample_value("refdesk_mail_failures_total", {"state": "retrying"}) or 0
    service = await s.start()  # nothing listens on the SMTP port yet
    reply = ReplyToTicket(institution="hill", principal=ANN, ticket_id="", body="Found it.")
    try:
        ticket = await service.handlers.create(offline(acknowledge=False))
        await service.handlers.reply(reply.model_copy(update={"ticket_id": ticket.id}))
        failed = await until(service, ticket.id, lambda t: t.replies[0].mail == "retrying")
        assert "Connect" in (failed.replies[0].mail_error or "")
        assert (
            REGISTRY.get_sample_value("refdesk_mail_failures_total", {"state": "retrying"})
            == failures + 1
        )
        assert REGISTRY.get_sample_value("refdesk_mail_queue_depth") == 1
    finally:
        await s.stop(service)  # the tickets service goes down with the mail unsent

    inbox = Inbox()
    server = await smtp_server(inbox, s.smtp_port)  # the mail server is back
    service = await s.start()
    try:
        await s.clock.until_sleeping(1)  # the new sender waits for the retry's time
        assert inbox.mail.empty()
        s.clock.advance(BACKOFF.base.total_seconds())
        arrived = await inbox.next()
        assert arrived["Subject"] == f"[{ticket.ref}] Re: Open on Sunday?"
        assert arrived.get_content().startswith("Found it.")
        await until(service, ticket.id, lambda t: t.replies[0].mail == "sent")
    finally:
        await s.stop(service)
        server.close()


async def test_retention_deletes_closed_tickets_past_the_librarys_days_with_their_mail(setting):
    """Hill keeps a day: a closed ticket from two days ago goes with its queued mail, an
    open one as old stays (someone is working it), a newer closed one goes a day later."""
    s = setting
    tickets = TicketStore(s.db)
    hill = Institution(
        name="hill", institution="hill", display_name="Hill", timezone="UTC", retention_days=1
    )
    service = await s.start()  # nothing listens on the SMTP port: acknowledgements wait
    closing = UpdateTicket(institution="hill", principal=ANN, ticket_id="", status="closed")
    try:
        old_closed = await service.handlers.create(offline())
        old_open = await service.handlers.create(offline(subject="Still open"))
        await service.handlers.update(closing.model_copy(update={"ticket_id": old_closed.id}))
        s.clock.advance(2 * 86_400)
        newer = await service.handlers.create(offline(subject="Later", acknowledge=False))
        await service.handlers.update(closing.model_copy(update={"ticket_id": newer.id}))
        assert await tickets.outbox.raw.count_documents({"ticket_id": old_closed.id}) == 1

        clock = FixedClock(T0 + timedelta(days=2, hours=1))
        retention = TicketRetention(tickets, lambda: {"hill": hill}, clock, timedelta(hours=1))
        retention.start()
        try:
            await clock.until_sleeping(1)  # the first run is done
            assert await tickets.get("hill", old_closed.id) is None
            assert await tickets.outbox.raw.count_documents({"ticket_id": old_closed.id}) == 0
            assert await tickets.get("hill", old_open.id) is not None
            assert await tickets.get("hill", newer.id) is not None
            clock.advance(86_400)
            await clock.until_sleeping(1)  # the run a day later is done
            assert await tickets.get("hill", newer.id) is None
            assert await tickets.get("hill", old_open.id) is not None
        finally:
            await retention.stop()
        assert await retention.run_once() == 0  # nothing left that is due
    finally:
        await s.stop(service)
