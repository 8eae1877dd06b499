"""Start the routing service: `python -m services.routing`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.routing.domain import Timing
from services.routing.handlers import RoutingHandlers
from services.routing.settings import RoutingSettings
from services.routing.store import ChatStore, QueueDirectory, pause_on_marker
from services.routing.timers import DeadlineTimers
from services.routing.widgets import WidgetWatch
from shared import subjects
from shared.runtime import Runtime, run_service
from shared.store import TenantCollection

VERSION = "0.1.0"


@asynccontextmanager
async def start(runtime: Runtime) -> AsyncIterator[None]:
    settings = runtime.settings
    assert isinstance(settings, RoutingSettings)
    pause = pause_on_marker(settings.fault_pause_marker) if settings.fault_pause_marker else None
    chats = ChatStore(runtime.bus, pause)
    timing = Timing(
        offer_timeout_s=settings.offer_timeout_s,
        owner_grace_s=settings.owner_grace_s,
        patron_grace_s=settings.patron_grace_s,
    )
    db = runtime.db
    queues = QueueDirectory(
        TenantCollection(db.queues),
        TenantCollection(db.users),
        TenantCollection(db.institutions),
        TenantCollection(db.widgets),
        settings.config_cache_s,
    )
    handlers = RoutingHandlers(
        runtime.bus,
        chats,
        queues,
        runtime.clock,
        settings.cas_attempts,
        timing,
    )
    timers = DeadlineTimers(runtime.clock, timing, handlers.run_due)
    chats.on_change = timers.track
    await chats.start_watching()
    await runtime.bus.subscribe(
        subjects.presence_events(), handlers.on_presence_event, queue="routing"
    )
    await runtime.bus.serve("routing", VERSION, handlers.endpoints())
    widgets = WidgetWatch(
        handlers,
        queues,
        runtime.bus,
        runtime.clock,
        settings.widget_tick_s,
        settings.widget_republish_s,
    )
    handlers.on_staffing_change = widgets.poke
    widgets.start()
    try:
        yield
    finally:
        await widgets.stop()
        await timers.stop()
        await chats.stop()


if __name__ == "__main__":
    run_service("routing", RoutingSettings(), start)
