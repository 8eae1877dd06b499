"""Ticket rules: a ticket needs the patron's email, a subject and a body."""

from __future__ import annotations

import re
from datetime import datetime

from shared.clock import iso
from shared.errors import Refusal
from shared.schemas.requests import CreateTicket, Ticket

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def new_ticket(req: CreateTicket, ticket_id: str, now: datetime) -> Ticket:
    email = req.email.strip()
    if not _EMAIL.match(email):
        raise Refusal("invalid", "email: a ticket needs the patron's email address")
    if not req.subject.strip():
        raise Refusal("invalid", "subject: cannot be empty")
    if not req.body.strip():
        raise Refusal("invalid", "body: cannot be empty")
    return Ticket(
        id=ticket_id,
        institution=req.institution,
        chat_id=req.chat_id,
        email=email,
        subject=req.subject.strip(),
        body=req.body,
        status="open",
        assignee=None,
        created_by=req.created_by,
        created_at=iso(now),
    )
