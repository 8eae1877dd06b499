"""Binds presence's NATS endpoints to the session rules."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, get_args

from services.presence import domain, metrics
from services.presence.store import DeskStore, SessionStore
from shared import subjects
from shared.bus import Bus, Endpoint
from shared.clock import Clock
from shared.errors import Refusal
from shared.retries import until_written
from shared.schemas.requests import (
    Done,
    EndReason,
    EndSession,
    OpenSession,
    OperatorStatus,
    Session,
    SessionChanged,
    SessionEnded,
    SessionLookup,
    SessionQuery,
    SessionRef,
    SessionStarted,
    SetMonitoring,
    SetStatus,
    Staffing,
    StaffingQuery,
)

ATTEMPTS = 8


class PresenceHandlers:
    def __init__(self, bus: Bus, sessions: SessionStore, desks: DeskStore, clock: Clock) -> None:
        self.bus = bus
        self.sessions = sessions
        self.desks = desks
        self.clock = clock

    def endpoints(self) -> list[Endpoint[Any]]:
        return [
            Endpoint.of("open", subjects.presence_endpoint("open"), self.open),
            Endpoint.of("heartbeat", subjects.presence_endpoint("heartbeat"), self.heartbeat),
            Endpoint.of("status", subjects.presence_endpoint("status"), self.status),
            Endpoint.of("monitor", subjects.presence_endpoint("monitor"), self.monitor),
            Endpoint.of("close", subjects.presence_endpoint("close"), self.close),
            Endpoint.of("end", subjects.presence_endpoint("end"), self.end),
            Endpoint.of("staffing", subjects.presence_endpoint("staffing"), self.staffing),
            Endpoint.of("get", subjects.presence_endpoint("get"), self.get),
        ]

    async def _change(self, ref: SessionRef, change: Callable[[Session], Session]) -> Session:
        """Apply `change` to the operator's current session with a compare-and-set, so a
        heartbeat or status change can never write back a session a new sign-in replaced."""

        async def attempt(_: int) -> Session:
            existing, revision = await self.sessions.get(ref.institution, ref.operator)
            session = change(domain.require_current(existing, ref))
            await self.sessions.write(session, revision)
            return session

        session = await until_written(
            attempt, ATTEMPTS, "your session is changing too fast; try again"
        )
        self._count_online()
        return session

    async def open(self, req: OpenSession) -> Session:
        desk = await self.desks.get(req.institution, req.operator)

        async def attempt(_: int) -> tuple[Session, SessionEnded | None]:
            existing, revision = await self.sessions.get(req.institution, req.operator)
            session, ended = domain.open_session(existing, req, self.clock.now(), desk)
            # A sign-in elsewhere winning the race is read again, and ended instead.
            await self.sessions.write(session, revision)
            return session, ended

        session, ended = await until_written(
            attempt, ATTEMPTS, "signing in too often at once; try again"
        )
        metrics.SESSIONS_OPENED.inc()
        events = subjects.presence_events(req.institution)
        if ended is not None:
            metrics.SESSIONS_REPLACED.inc()
            await self.bus.publish(events, ended)
        started = SessionStarted(
            institution=req.institution, operator=req.operator, session_id=req.session_id
        )
        await self.bus.publish(events, started)
        self._count_online()
        return session

    async def heartbeat(self, req: SessionRef) -> Session:
        return await self._change(req, lambda session: session)

    async def status(self, req: SetStatus) -> Session:
        session = await self._change(req, lambda s: domain.set_status(s, req.status))
        await self._changed(session)
        return session

    async def monitor(self, req: SetMonitoring) -> Session:
        session = await self._change(req, lambda s: domain.set_monitoring(s, req.queues))
        await self._changed(session)
        return session

    async def _changed(self, session: Session) -> None:
        """Who staffs which queue may have changed: routing re-evaluates widgets at once.
        The operator's desk keeps the choice for their next sign-in."""
        await self.desks.keep(session)
        changed = SessionChanged(
            institution=session.institution,
            operator=session.operator,
            session_id=session.session_id,
        )
        await self.bus.publish(subjects.presence_events(session.institution), changed)

    async def close(self, req: SessionRef) -> Done:
        async def attempt(_: int) -> Session | None:
            existing, revision = await self.sessions.get(req.institution, req.operator)
            if existing is None or existing.session_id != req.session_id:
                return None  # already gone, or replaced by a newer sign-in: nothing to close
            await self.sessions.remove(existing, revision)
            return existing

        closed = await until_written(attempt, ATTEMPTS, "your session is changing; try again")
        if closed is not None:
            await self._ended(closed, "disconnected")
        self._count_online()
        return Done()

    async def end(self, req: EndSession) -> Done:
        """End whatever session the operator has now, from outside it; its gateway closes
        the socket when it hears `session.ended`."""
        domain.check_may_end(req)

        async def attempt(_: int) -> Session:
            existing, revision = await self.sessions.get(req.institution, req.operator)
            if existing is None:
                raise Refusal("not_found", f"{req.operator} is not signed in")
            await self.sessions.remove(existing, revision)
            return existing

        ended = await until_written(attempt, ATTEMPTS, "the session is changing; try again")
        await self._ended(ended, req.reason)
        metrics.SESSIONS_ENDED.labels(req.reason).inc()
        self._count_online()
        return Done()

    async def staffing(self, req: StaffingQuery) -> Staffing:
        sessions = domain.staffing(self.sessions.live(), req.queue)
        return Staffing(
            queue=req.queue,
            operators=[s.operator for s in sessions],
            limits={s.operator: s.max_chats for s in sessions if s.max_chats is not None},
        )

    async def get(self, req: SessionQuery) -> SessionLookup:
        session, _ = await self.sessions.get(req.institution, req.operator)
        return SessionLookup(session=session)

    async def session_expired(self, session: Session) -> None:
        """A session's heartbeats stopped (its gateway died, or the network did): say so,
        so that routing starts the owner grace period of its chats."""
        await self._ended(session, "expired")
        self._count_online()

    async def _ended(self, session: Session, reason: EndReason) -> None:
        ended = SessionEnded(
            institution=session.institution,
            operator=session.operator,
            session_id=session.session_id,
            reason=reason,
        )
        await self.bus.publish(subjects.presence_events(session.institution), ended)

    def _count_online(self) -> None:
        by_status = Counter(s.status for s in self.sessions.live())
        for status in get_args(OperatorStatus):
            metrics.OPERATORS.labels(status).set(by_status.get(status, 0))
