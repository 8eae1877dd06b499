"""Chats built through the real state machine, for tests that need one in a given state."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.routing import domain
from shared.schemas.chat import Sender

T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
PATRON = Sender(kind="patron", name="Pat", id="guest1")
ANN = Sender(kind="operator", name="Ann", id="demo-hill-ann")
BOB = Sender(kind="operator", name="Bob", id="demo-hill-bob")


def started(
    chat_id: str | None = None,
    question: str = "Where are the theses?",
    guest_id: str = "guest1",
    *,
    institution: str = "hill",
    chain: tuple[str, ...] = (),
    rollover_after_s: int | None = None,
    email: str | None = None,
    page: str | None = None,
    at: datetime = T0,
) -> domain.Transition:
    """A patron's new chat in the institution's demo queue (the first of `chain`, if
    given, which rollover follows): created, question, queued."""
    return domain.start_chat(
        domain.NewChat(
            chat_id=chat_id or uuid.uuid4().hex,
            institution=institution,
            widget=institution,
            queue=f"demo-{institution}",
            guest_id=guest_id,
            question=question,
            name="Pat",
            email=email,
            page=page,
            reason="staffed",
            chain=chain,
            rollover_after_s=rollover_after_s,
        ),
        at,
    )


def claimed(by: Sender = ANN, chat_id: str | None = None) -> domain.Transition:
    assert by.id is not None
    return domain.claim(started(chat_id).state, by.id, by.name, ["demo-hill"], T0)
