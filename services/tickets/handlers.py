"""Binds tickets' NATS endpoints, the mail sender's reports and patrons' emailed answers to
the ticket rules and the store. Every change is read, decided and written conditionally
(shared.retries), so two staff acting at once both count."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from services.tickets import domain, metrics
from services.tickets.mail import Mailbox, MailRefused, MailSender, mime, outbox_document
from services.tickets.store import TicketStore
from shared import subjects
from shared.bus import Bus, Endpoint
from shared.clock import Clock
from shared.configuration import ConfigView
from shared.counters import Counters, counter_key
from shared.errors import Refusal
from shared.retries import until_written
from shared.schemas.privacy import ErasePatron, TicketsErased
from shared.schemas.records import Principal
from shared.schemas.tickets import (
    CreateTicket,
    GetTicket,
    ListTickets,
    MailState,
    ReplyToTicket,
    Ticket,
    TicketNotice,
    TicketPage,
    UpdateTicket,
)
from shared.store import Document

log = logging.getLogger(__name__)

ATTEMPTS = 5
BUSY = "the ticket is changing; try again"


class TicketHandlers:
    def __init__(
        self,
        bus: Bus,
        store: TicketStore,
        view: ConfigView,
        clock: Clock,
        consortium: str,
        sender: str,
        reply_to: str | None,
        acknowledgements: Counters,
        acknowledgements_per_recipient: int,
    ) -> None:
        self.bus = bus
        self.store = store
        self.view = view
        self.clock = clock
        self.consortium = consortium
        # Read strictly once: a configured address that is not one refuses to start.
        self.sender = Mailbox.parse(sender)
        self.reply_to = Mailbox.parse(reply_to) if reply_to else None
        self.acknowledgements = acknowledgements
        self.acknowledgements_per_recipient = acknowledgements_per_recipient
        self.mailer: MailSender | None = None

    def endpoints(self) -> list[Endpoint[Any]]:
        return [
            Endpoint.of("create", subjects.tickets_endpoint("create"), self.create),
            Endpoint.of("get", subjects.tickets_endpoint("get"), self.get),
            Endpoint.of("list", subjects.tickets_endpoint("list"), self.list),
            Endpoint.of("update", subjects.tickets_endpoint("update"), self.update),
            Endpoint.of("reply", subjects.tickets_endpoint("reply"), self.reply),
            Endpoint.of("erase", subjects.tickets_endpoint("erase"), self.erase),
        ]

    def _library(self, institution: str) -> str:
        found = self.view.institutions.get(institution)
        return found.display_name if found else institution

    async def _notify(self, kind: str, ticket: Ticket, by: str) -> None:
        notice = TicketNotice.model_validate(
            {"kind": kind, "ticket": domain.summary(ticket), "by": by}
        )
        await self.bus.publish(subjects.ticket_notices(ticket.institution), notice)

    async def _mail(self, ticket: Ticket, entry_id: str | None, letter: domain.Letter) -> Ticket:
        """Queue a letter; the ticket as it now is. A letter that cannot be a mail (the
        address of a ticket stored before the address rules) is `failed` on the ticket,
        and what asked for it still succeeds."""
        try:
            mail = mime(letter, self.sender, self.reply_to, self.clock.now())
        except (Refusal, MailRefused) as refused:
            reason = f"not sent: {refused}"[:300]
            log.warning("mail for ticket %s not built: %s", ticket.id, reason)
            metrics.MAIL_FAILURES.labels("failed").inc()
            # As its staff would: the ticket's own institution.
            by = Principal(username="mail", institution=ticket.institution, role="operator")
            _, after = await self._change(
                ticket.institution,
                by,
                ticket.id,
                lambda t: domain.mail_state(t, entry_id, "failed", reason),
            )
            return after
        doc = outbox_document(ticket.institution, ticket.id, entry_id, mail, self.clock.now())
        await self.store.enqueue(doc)
        if self.mailer is not None:
            self.mailer.wake()
        return ticket

    async def _may_acknowledge(self, ticket: Ticket) -> bool:
        """Within the allowance of acknowledgements to the ticket's address, counted across
        replicas (a burst that outruns the counter's retries is not acknowledged)."""
        address = domain.mail_address(ticket.email).lower()
        try:
            asked = await self.acknowledgements.add(counter_key("recipient", address))
        except Refusal:
            return False
        return domain.may_acknowledge(asked, self.acknowledgements_per_recipient)

    async def create(self, req: CreateTicket) -> Ticket:
        ticket = domain.new_ticket(req, uuid.uuid4().hex, self.clock.now())
        if ticket.acknowledgement is not None and not await self._may_acknowledge(ticket):
            ticket = ticket.model_copy(update={"acknowledgement": None})
            metrics.ACKNOWLEDGEMENTS_WITHHELD.inc()
        await self.store.add(ticket)
        metrics.TICKETS_CREATED.labels(req.institution, req.source).inc()
        if ticket.acknowledgement is not None:
            ticket = await self._mail(
                ticket, None, domain.acknowledgement(ticket, self._library(ticket.institution))
            )
        await self._notify("created", ticket, req.created_by)
        return ticket

    async def _read(self, institution: str, principal: Principal, ticket_id: str) -> Ticket:
        if not principal.may_act_in(institution):
            raise Refusal("forbidden", "you can only see your own institution")
        ticket = await self.store.get(institution, ticket_id)
        if ticket is None:
            raise Refusal("not_found", f"no ticket {ticket_id}")
        return ticket

    async def get(self, req: GetTicket) -> Ticket:
        return await self._read(req.institution, req.principal, req.ticket_id)

    async def list(self, req: ListTickets) -> TicketPage:
        if not req.principal.may_act_in(req.institution):
            raise Refusal("forbidden", "you can only see your own institution")
        tickets, cursor = await self.store.page(req, req.principal.username)
        return TicketPage(tickets=[domain.summary(t) for t in tickets], next_cursor=cursor)

    async def _change(
        self,
        institution: str,
        principal: Principal,
        ticket_id: str,
        decide: Callable[[Ticket], Ticket],
    ) -> tuple[Ticket, Ticket]:
        """(before, after) of a change decided on the ticket as stored."""

        async def attempt(_: int) -> tuple[Ticket, Ticket]:
            before = await self._read(institution, principal, ticket_id)
            after = decide(before)
            if after == before:
                return before, before
            return before, await self.store.replace(after)

        return await until_written(attempt, ATTEMPTS, BUSY)

    async def update(self, req: UpdateTicket) -> Ticket:
        account = self.view.account(req.assignee) if req.assignee else None
        now = self.clock.now()
        before, after = await self._change(
            req.institution,
            req.principal,
            req.ticket_id,
            lambda t: domain.update(t, req, account, now),
        )
        for change in after.history[len(before.history) :]:
            metrics.TICKET_CHANGES.labels(change.what).inc()
        if after.assignee is not None and after.assignee != before.assignee:
            await self._notify("assigned", after, req.principal.username)
        return after

    async def reply(self, req: ReplyToTicket) -> Ticket:
        entry_id = uuid.uuid4().hex[:12]
        now = self.clock.now()
        _, after = await self._change(
            req.institution,
            req.principal,
            req.ticket_id,
            lambda t: domain.reply(t, req, entry_id, now),
        )
        metrics.TICKET_CHANGES.labels("note" if req.internal else "reply").inc()
        if not req.internal:
            entry = next(r for r in after.replies if r.id == entry_id)
            letter = domain.reply_letter(after, entry, self._library(after.institution))
            after = await self._mail(after, entry_id, letter)
        return after

    async def patron_mail(self, ref: str, sender: str, text: str) -> None:
        """A patron's answer by email, threaded into the ticket its subject names."""
        entry_id = uuid.uuid4().hex[:12]

        async def attempt(_: int) -> Ticket:
            ticket = await self.store.by_ref(ref)
            if ticket is None:
                raise Refusal("not_found", f"no ticket {ref}")
            changed = domain.patron_reply(ticket, sender, text, entry_id, self.clock.now())
            return await self.store.replace(changed)

        ticket = await until_written(attempt, ATTEMPTS, BUSY)
        metrics.TICKET_CHANGES.labels("patron_reply").inc()
        await self._notify("answered", ticket, "patron")

    async def mail_reported(self, mail: Document, state: MailState, error: str | None) -> None:
        """The sender's word on a mail, shown on its ticket (gone if erased meanwhile)."""
        # The sender acts within the mail's own institution, as its staff would.
        sender = Principal(username="mail", institution=mail["institution"], role="operator")
        try:
            await self._change(
                mail["institution"],
                sender,
                mail["ticket_id"],
                lambda t: domain.mail_state(t, mail["entry_id"], state, error),
            )
        except Refusal as refusal:
            if refusal.code != "not_found":
                raise

    async def erase(self, req: ErasePatron) -> TicketsErased:
        """A patron's tickets, erased on request by an admin of the institution (the
        consortium's name: every institution's, by a consortium admin)."""
        return TicketsErased(tickets=await self.store.erase(req, req.scope(self.consortium)))
