"""Binds presence's NATS endpoints to the session rules."""

from __future__ import annotations

from services.presence import domain, metrics
from services.presence.store import SessionStore
from shared import subjects
from shared.bus import Bus, Endpoint
from shared.clock import Clock
from shared.schemas.requests import (
    Done,
    OpenSession,
    Session,
    SessionRef,
    SetMonitoring,
    SetStatus,
    Staffing,
    StaffingQuery,
)


class PresenceHandlers:
    def __init__(self, bus: Bus, sessions: SessionStore, clock: Clock) -> None:
        self.bus = bus
        self.sessions = sessions
        self.clock = clock

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint("open", subjects.presence_endpoint("open"), OpenSession, self.open),
            Endpoint(
                "heartbeat", subjects.presence_endpoint("heartbeat"), SessionRef, self.heartbeat
            ),
            Endpoint("status", subjects.presence_endpoint("status"), SetStatus, self.status),
            Endpoint("monitor", subjects.presence_endpoint("monitor"), SetMonitoring, self.monitor),
            Endpoint("close", subjects.presence_endpoint("close"), SessionRef, self.close),
            Endpoint(
                "staffing", subjects.presence_endpoint("staffing"), StaffingQuery, self.staffing
            ),
        ]

    async def _current(self, ref: SessionRef) -> Session:
        return domain.require_current(await self.sessions.get(ref.institution, ref.operator), ref)

    async def open(self, req: OpenSession) -> Session:
        existing = await self.sessions.get(req.institution, req.operator)
        session, ended = domain.open_session(existing, req, self.clock.now())
        await self.sessions.put(session)
        metrics.SESSIONS_OPENED.inc()
        if ended is not None:
            metrics.SESSIONS_REPLACED.inc()
            await self.bus.publish(subjects.presence_events(req.institution), ended)
        self._count_online()
        return session

    async def heartbeat(self, req: SessionRef) -> Session:
        session = await self._current(req)
        await self.sessions.put(session)
        return session

    async def status(self, req: SetStatus) -> Session:
        session = domain.set_status(await self._current(req), req.status)
        await self.sessions.put(session)
        self._count_online()
        return session

    async def monitor(self, req: SetMonitoring) -> Session:
        session = domain.set_monitoring(await self._current(req), req.queues)
        await self.sessions.put(session)
        return session

    async def close(self, req: SessionRef) -> Done:
        existing = await self.sessions.get(req.institution, req.operator)
        if existing is not None and existing.session_id == req.session_id:
            await self.sessions.remove(existing)
        self._count_online()
        return Done()

    async def staffing(self, req: StaffingQuery) -> Staffing:
        operators = domain.staffing(self.sessions.live(), req.queue)
        return Staffing(queue=req.queue, operators=operators)

    def _count_online(self) -> None:
        metrics.OPERATORS_ONLINE.set(sum(1 for s in self.sessions.live() if s.status == "online"))
