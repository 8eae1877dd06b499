"""Operator sessions as pure rules: one active session per operator, who staffs a queue."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from shared.clock import iso
from shared.errors import Refusal
from shared.schemas.requests import (
    Desk,
    EndSession,
    OpenSession,
    OperatorStatus,
    Session,
    SessionEnded,
    SessionRef,
)


def open_session(
    existing: Session | None, request: OpenSession, now: datetime, desk: Desk | None = None
) -> tuple[Session, SessionEnded | None]:
    """A new sign-in replaces any older session of the same operator, which is told why.

    It starts at the operator's desk as they last left it (status and monitored queues);
    the very first session starts offline and monitoring nothing.
    """
    desk = desk or Desk()
    session = Session(
        institution=request.institution,
        operator=request.operator,
        name=request.name,
        session_id=request.session_id,
        started_at=iso(now),
        max_chats=request.max_chats,
        status=desk.status,
        monitoring=desk.monitoring,
    )
    ended = None
    if existing is not None and existing.session_id != request.session_id:
        ended = SessionEnded(
            institution=existing.institution,
            operator=existing.operator,
            session_id=existing.session_id,
            reason="signed_in_elsewhere",
        )
    return session, ended


def require_current(existing: Session | None, ref: SessionRef) -> Session:
    if existing is None or existing.session_id != ref.session_id:
        raise Refusal("gone", "this session has ended; sign in again")
    return existing


def desk_of(session: Session) -> Desk:
    return Desk(status=session.status, monitoring=session.monitoring)


def set_status(session: Session, status: OperatorStatus) -> Session:
    return session.model_copy(update={"status": status})


def set_monitoring(session: Session, queues: list[str]) -> Session:
    return session.model_copy(update={"monitoring": sorted(set(queues))})


def staffing(sessions: Iterable[Session], queue: str) -> list[Session]:
    """Sessions online and monitoring the queue: they may take a new chat now (routing
    leaves out those at their chat limit, which it alone knows)."""
    found = [s for s in sessions if s.status == "online" and queue in s.monitoring]
    return sorted(found, key=lambda s: s.operator)


def check_may_end(request: EndSession) -> None:
    """An operator signs themselves out; an admin ends the sessions of their institution's
    operators (a consortium admin anyone's). Anyone else is told there is no such session."""
    own = request.principal.username == request.operator
    if request.reason == "signed_out" and not own:
        raise Refusal("forbidden", "only the operator signs themselves out")
    if request.reason == "ended_by_admin" and not request.principal.may_manage(request.institution):
        raise Refusal("not_found", "no such session")
