"""Binds tickets' NATS endpoints to its rules and store."""

from __future__ import annotations

import uuid

from services.tickets import domain, metrics
from services.tickets.store import TicketStore
from shared import subjects
from shared.bus import Endpoint
from shared.clock import Clock
from shared.errors import Refusal
from shared.schemas.requests import CreateTicket, GetTicket, Ticket


class TicketHandlers:
    def __init__(self, store: TicketStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint("create", subjects.tickets_endpoint("create"), CreateTicket, self.create),
            Endpoint("get", subjects.tickets_endpoint("get"), GetTicket, self.get),
        ]

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
