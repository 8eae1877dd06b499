"""Where a chat can go: who is there to take it (presence's staffing, each operator's chat
limit) and which queue of a chain is open and staffed now (widget status, a new chat's
queue, a rollover's next queue), and who answers a queue over a span (coverage)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from services.routing import coverage, metrics
from services.routing.store import ChatStore, QueueDirectory
from shared import subjects
from shared.bus import Bus
from shared.clock import Clock, iso
from shared.errors import Refusal
from shared.schemas.records import Queue
from shared.schemas.requests import (
    MAX_COVERAGE_DAYS,
    Coverage,
    CoverageInterval,
    CoverageQuery,
    SessionLookup,
    SessionQuery,
    Staffing,
    StaffingQuery,
    WidgetStatus,
    WidgetStatusQuery,
)

Staffed = Callable[[Queue], Awaitable[bool]]


class Placement:
    def __init__(self, bus: Bus, chats: ChatStore, queues: QueueDirectory, clock: Clock) -> None:
        self.bus = bus
        self.chats = chats
        self.queues = queues
        self.clock = clock

    # --- who is there ---------------------------------------------------------------------

    async def staffing(self, institution: str, queue: str) -> list[str]:
        """Operators who can take one more chat of the queue now."""
        staffing = await self.bus.request(
            subjects.presence(institution, "staffing"),
            StaffingQuery(institution=institution, queue=queue),
            Staffing,
        )
        return [op for op in staffing.operators if not self.at_limit(op, staffing.limits.get(op))]

    async def session(self, institution: str, operator: str) -> SessionLookup:
        return await self.bus.request(
            subjects.presence(institution, "get"),
            SessionQuery(institution=institution, operator=operator),
            SessionLookup,
        )

    def at_limit(self, operator: str, max_chats: int | None) -> bool:
        return max_chats is not None and len(self.chats.owned_by(operator)) >= max_chats

    def check_limit(self, operator: str, max_chats: int | None) -> None:
        if self.at_limit(operator, max_chats):
            raise Refusal("forbidden", f"you are at your limit of {max_chats} open chats")

    # --- coverage: hours, calendars and who is there ------------------------------------

    async def is_staffed(self, queue: Queue) -> bool:
        return bool(await self.staffing(queue.institution, queue.name))

    async def walk(
        self, directory: coverage.Directory, names: list[str], staffed: Staffed
    ) -> coverage.Choice:
        """The first queue of `names` open now and staffed takes the chat. Staffing is
        asked only of open queues, and no further than the first that can take it."""
        now = self.clock.now()
        tried: list[tuple[str, str | None]] = []
        for name in names:
            queue = directory.queues.get(name)
            if queue is None:
                continue
            why_not = directory.schedule(name).closed_reason(now)
            if why_not is None and not await staffed(queue):
                why_not = coverage.UNSTAFFED
            tried.append((name, why_not))
            if why_not is None:
                break
        return coverage.choose(tried)

    async def home_queue(self, institution: str, name: str) -> tuple[coverage.Directory, Queue]:
        directory = await self.queues.directory()
        queue = directory.queues.get(name)
        if queue is None or queue.institution != institution:
            raise Refusal("not_found", f"no queue {name}")
        return directory, queue

    async def widget(self, req: WidgetStatusQuery) -> WidgetStatus:
        directory = await self.queues.directory()
        found = directory.widgets.get(req.widget)
        if found is None or found.institution != req.institution:
            raise Refusal("not_found", f"no widget {req.widget}")
        return await self.widget_status(directory, req.widget, self.is_staffed)

    async def widget_status(
        self, directory: coverage.Directory, widget_id: str, staffed: Staffed
    ) -> WidgetStatus:
        """A widget is online when a queue of its chain is open and staffed now."""
        found = directory.widgets[widget_id]
        choice = await self.walk(directory, directory.chain(found.queue), staffed)
        return WidgetStatus(
            institution=found.institution,
            widget=found.id,
            online=choice.queue is not None,
            queue=choice.queue,
            reason=choice.reason,
            at=iso(self.clock.now()),
        )

    async def coverage_of(self, req: CoverageQuery) -> Coverage:
        """Who answers a queue's chats over a span, by hours and calendars alone."""
        directory = await self.queues.directory()
        queue = directory.queues.get(req.queue)
        everyone = req.principal.role == "consortium_admin"
        if queue is None or not (everyone or queue.institution == req.institution):
            raise Refusal("not_found", f"no queue {req.queue}")
        zone = directory.schedule(queue.name).zone
        try:
            start = coverage.parse_instant(req.start, zone)
            end = coverage.parse_instant(req.end, zone)
        except ValueError as exc:
            raise Refusal("invalid", f"from/to: {exc}") from exc
        if end <= start:
            raise Refusal("invalid", "to: must be after from")
        if end - start > timedelta(days=MAX_COVERAGE_DAYS):
            raise Refusal("invalid", f"to: a span may cover at most {MAX_COVERAGE_DAYS} days")
        chain = [directory.schedule(name) for name in directory.chain(queue.name)]
        return Coverage(
            queue=queue.name,
            intervals=[
                CoverageInterval(start=iso(i.start), end=iso(i.end), queue=i.queue, reason=i.reason)
                for i in coverage.timeline(chain, start, end)
            ],
        )

    @staticmethod
    def count(trigger: str, choice: coverage.Choice, moved: bool) -> None:
        if choice.queue is None:
            outcome = "unavailable" if trigger == "start" else "held"
        elif trigger == "rollover":
            outcome = "rolled_over"
        else:
            outcome = "fallback" if moved else "home"
        first = choice.skipped[0].reason if choice.skipped else ""
        metrics.ROUTING_DECISIONS.labels(
            trigger, outcome, coverage.cause(first) if first else "none"
        ).inc()
