"""Start the tickets service: `python -m services.tickets`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.tickets.handlers import TicketHandlers
from services.tickets.settings import TicketsSettings
from services.tickets.store import TicketStore
from shared.runtime import Runtime, run_service

VERSION = "0.1.0"


@asynccontextmanager
async def start(runtime: Runtime) -> AsyncIterator[None]:
    handlers = TicketHandlers(TicketStore(runtime.db), runtime.clock, runtime.settings.consortium)
    await runtime.bus.serve("tickets", VERSION, handlers.endpoints())
    yield


if __name__ == "__main__":
    run_service("tickets", TicketsSettings(), start, chat_stream=False)
