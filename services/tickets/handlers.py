"""Binds tickets' NATS endpoints to its rules and store."""

from __future__ import annotations

import uuid

from services.tickets import domain, metrics
from services.tickets.store import TicketStore
from shared import subjects
from shared.bus import Endpoint
from shared.clock import Clock
from shared.errors import Refusal
from shared.schemas.privacy import ErasePatron, TicketsErased
from shared.schemas.requests import CreateTicket, GetTicket, Ticket


class TicketHandlers:
    def __init__(self, store: TicketStore, clock: Clock, consortium: str) -> None:
        self.store = store
        self.clock = clock
        self.consortium = consortium

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint("create", subjects.tickets_endpoint("create"), CreateTicket, self.create),
            Endpoint("get", subjects.tickets_endpoint("get"), GetTicket, self.get),
            Endpoint("erase", subjects.tickets_endpoint("erase"), ErasePatron, self.erase),
        ]

    async def erase(self, req: ErasePatron) -> TicketsErased:
        """A patron's tickets, erased on request by an admin of the institution (the
        consortium's name: every institution's, by a consortium admin)."""
        return TicketsErased(tickets=await self.store.erase(req, req.scope(self.consortium)))

    async def create(self, req: CreateTicket) -> Ticket:
        ticket = domain.new_ticket(req, uuid.uuid4().hex, self.clock.now())
        await self.store.add(ticket)
        metrics.TICKETS_CREATED.labels(req.institution).inc()
        return ticket

    async def get(self, req: GetTicket) -> Ticket:
        ticket = await self.store.get(req.institution, req.ticket_id)
        if ticket is None:
            raise Refusal("not_found", f"no ticket {req.ticket_id}")
        return ticket
