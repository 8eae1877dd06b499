"""Tickets' mail against a real SMTP server (aiosmtpd, started here), a real nats-server and
MongoDB: the acknowledgement and a staff reply arrive with the right recipient, reference
and body; a patron's answer by email lands in its ticket; an SMTP outage is retried on
the service's clock and, across a restart of the tickets service, nothing is lost."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import pytest
import pytest_asyncio
from aiosmtpd.smtp import SMTP, Envelope, Session
from prometheus_client import REGISTRY

from deploy.local.processes import free_port
from services.tickets import inbound
from services.tickets.handlers import TicketHandlers
from services.tickets.mail import Backoff, MailSender, SmtpTransport
from services.tickets.retention import TicketRetention
from services.tickets.store import TicketStore
from shared import store, subjects
from shared.bus import Bus
from shared.clock import FixedClock
from shared.configuration import ConfigView
from shared.schemas.records import Institution, Principal
from shared.schemas.tickets import CreateTicket, GetTicket, ReplyToTicket, Ticket, UpdateTicket
from tests.client import eventually
from tests.factories import T0
from tests.servers import Servers

ANN = Principal(username="demo-hill-ann", institution="hill", role="operator")
PATRON = "Pat.Doe@example.org"
BACKOFF = Backoff(timedelta(seconds=30), timedelta(minutes=10), attempts=5)


class Inbox:
    """An SMTP server that keeps what it is sent."""

    def __init__(self) -> None:
        self.mail: asyncio.Queue[EmailMessage] = asyncio.Queue()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        assert isinstance(content, bytes)
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        await self.mail.put(parsed)
        return "250 OK"

    async def next(self) -> EmailMessage:
        return await asyncio.wait_for(self.mail.get(), 10)


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

    async def start(self) -> Service:
        view = ConfigView(await self.bus.key_value(subjects.CONFIG_BUCKET))
        await view.start()
        tickets = TicketStore(self.db)
        await tickets.ensure_indexes()
        handlers = TicketHandlers(
            self.bus, tickets, view, self.clock, "demo", "Hill <desk@hill.example>", None
        )
        transport = SmtpTransport("127.0.0.1", self.smtp_port, security="none", timeout_s=5)
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
    yield Setting(bus, db, FixedClock(T0), free_port())
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
        assert ack["Subject"].startswith(f"[{ticket.ref}] We have your question")
        assert "Is the library open on Sunday?" in ack.get_content()
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
