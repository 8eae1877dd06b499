"""Start the presence service: `python -m services.presence`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.presence.handlers import PresenceHandlers
from services.presence.settings import PresenceSettings
from services.presence.store import DeskStore, SessionStore
from shared import subjects
from shared.runtime import Runtime, run_service
from shared.version import VERSION


@asynccontextmanager
async def start(runtime: Runtime) -> AsyncIterator[None]:
    settings = runtime.settings
    assert isinstance(settings, PresenceSettings)
    kv = await runtime.bus.key_value(
        subjects.PRESENCE_BUCKET, replicas=settings.stream_replicas, ttl=settings.session_ttl_s
    )
    sessions = SessionStore(kv)
    desks = DeskStore(
        await runtime.bus.key_value(subjects.DESKS_BUCKET, replicas=settings.stream_replicas)
    )
    handlers = PresenceHandlers(runtime.bus, sessions, desks, runtime.clock)
    sessions.on_expired = handlers.session_expired
    await sessions.start_watching()
    await runtime.bus.serve("presence", VERSION, handlers.endpoints())
    try:
        yield
    finally:
        await sessions.stop()


if __name__ == "__main__":
    run_service("presence", PresenceSettings(), start, chat_stream=False)
