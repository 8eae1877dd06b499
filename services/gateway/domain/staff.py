"""Staff-only traffic: which conversation an internal message belongs to and who hears it,
whom an operator may message directly, and who hears of a ticket."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from services.gateway.domain.access import Caller
from shared.errors import Refusal
from shared.schemas.protocol import (
    InternalMessageFrame,
    InternalPeer,
    InternalTarget,
    TicketFrame,
)
from shared.schemas.records import Account
from shared.schemas.requests import InternalMessage
from shared.schemas.tickets import TicketNotice


class StaffView(Protocol):
    username: str
    status: str
    monitoring: frozenset[str]


S = TypeVar("S", bound=StaffView)

# Who hears messages sent to a queue or to everyone: `internal` status is for exactly this.
LISTENING = frozenset({"online", "internal"})


def conversation_of(sender: str, target: InternalTarget) -> str:
    """The thread an internal message belongs to; both sides of a direct one share it."""
    if target.operator is not None:
        first, second = sorted((sender, target.operator))
        return f"dm:{first}:{second}"
    if target.queue is not None:
        return f"queue:{target.queue}"
    return "all"


def internal_recipients(message: InternalMessage, staff: Sequence[S]) -> list[S]:
    """Who receives an internal message (never its sender): the named operator whatever
    their status; otherwise everyone online or `internal` who monitors the queue, or all of
    them."""
    sender = message.from_.id
    if message.to_operator is not None:
        return [s for s in staff if s.username == message.to_operator]
    listening = [s for s in staff if s.status in LISTENING and s.username != sender]
    if message.to_queue is not None:
        return [s for s in listening if message.to_queue in s.monitoring]
    return listening


def ticket_recipients(notice: TicketNotice, staff: Sequence[S]) -> list[S]:
    """Who hears of a ticket: everyone of its institution signed in when it is new; its
    assignee when assigned; when its patron answers, its assignee, or everyone if it has
    none. Never whoever caused it."""
    assignee = notice.ticket.assignee
    if notice.kind == "created" or (notice.kind == "answered" and assignee is None):
        return [s for s in staff if s.username != notice.by]
    return [s for s in staff if s.username == assignee and s.username != notice.by]


def ticket_frame(notice: TicketNotice) -> TicketFrame:
    return TicketFrame(type=f"ticket.{notice.kind}", ticket=notice.ticket, by=notice.by)


def internal_frame(message: InternalMessage) -> InternalMessageFrame:
    return InternalMessageFrame(
        id=message.id,
        conversation=message.conversation,
        from_=message.from_,
        to=InternalPeer(
            operator=message.to_operator,
            queue=message.to_queue,
            all=True if message.to_all else None,
        ),
        body=message.body,
        ts=message.ts,
    )


def check_colleague(caller: Caller, account: Account | None, username: str) -> None:
    """Whom an operator may message directly: someone else of their own institution (the
    gateway then asks presence whether they are signed in)."""
    if account is None or account.institution != caller.institution:
        raise Refusal("not_found", f"no operator {username}")
    if username == caller.username:
        raise Refusal("invalid", "that is you")
