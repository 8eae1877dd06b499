"""Start the routing service: `python -m services.routing`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.routing.handlers import RoutingHandlers
from services.routing.settings import RoutingSettings
from services.routing.store import ChatStore, QueueDirectory
from shared import subjects
from shared.runtime import Runtime, run_service
from shared.store import TenantCollection

VERSION = "0.1.0"


@asynccontextmanager
async def start(runtime: Runtime) -> AsyncIterator[None]:
    settings = runtime.settings
    assert isinstance(settings, RoutingSettings)
    kv = await runtime.bus.key_value(subjects.CHAT_BUCKET, replicas=settings.stream_replicas)
    chats = ChatStore(kv)
    await chats.start_watching()
    handlers = RoutingHandlers(
        runtime.bus,
        chats,
        QueueDirectory(TenantCollection(runtime.db.queues)),
        runtime.clock,
        settings.cas_attempts,
    )
    await runtime.bus.serve("routing", VERSION, handlers.endpoints())
    try:
        yield
    finally:
        await chats.stop()


if __name__ == "__main__":
    run_service("routing", RoutingSettings(), start)
