"""Start the routing service: `python -m services.routing`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.routing.domain import Timing
from services.routing.handlers import RoutingHandlers
from services.routing.settings import RoutingSettings
from services.routing.store import ChatStore, PauseHook, QueueDirectory
from services.routing.timers import DeadlineTimers
from services.routing.widgets import WidgetWatch
from shared import subjects
from shared.runtime import Runtime, run_service
from shared.schemas.requests import SESSION_EVENT
from shared.version import VERSION


@asynccontextmanager
async def start(runtime: Runtime, pause: PauseHook | None = None) -> AsyncIterator[None]:
    """Routing's replica. `pause`: a hook around each write, for fault tests only
    (tests/fault_routing.py starts routing with one)."""
    settings = runtime.settings
    assert isinstance(settings, RoutingSettings)
    chats = ChatStore(runtime.bus, pause)
    timing = Timing(
        offer_timeout_s=settings.offer_timeout_s,
        owner_grace_s=settings.owner_grace_s,
        patron_grace_s=settings.patron_grace_s,
    )
    view = await runtime.config_view()
    queues = QueueDirectory(view)
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
    await runtime.bus.subscribe_to(
        subjects.presence_events(),
        SESSION_EVENT.validate_json,
        handlers.on_presence_event,
        queue="routing",
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
    # A saved queue or widget can change what a widget shows: hours, chain, its queue.
    view.listeners.append(lambda kind, _: widgets.poke() if kind != "user" else None)
    widgets.start()
    try:
        yield
    finally:
        await widgets.stop()
        await timers.stop()
        await chats.stop()
        await view.stop()


if __name__ == "__main__":
    run_service("routing", RoutingSettings(), start)
