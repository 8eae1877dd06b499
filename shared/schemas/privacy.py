"""Erasing one patron on request: what staff ask for, what each service erased, and the
report staff get back (docs/privacy.md)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from shared.errors import Refusal
from shared.schemas.base import Email, Model
from shared.schemas.records import Principal

GUEST_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


def email_key(email: str) -> str:
    """How an address is matched for erasure: patrons type their address in any case."""
    return email.strip().lower()


class _Identified(Model):
    guest_id: str | None = Field(default=None, pattern=GUEST_ID_PATTERN)
    email: Email | None = None

    @model_validator(mode="after")
    def _someone(self) -> Self:
        if self.guest_id is None and self.email is None:
            raise ValueError("guest_id or email: say whom to erase")
        return self


class ErasureBody(_Identified):
    """`POST /api/erasures`: a patron, by the guest id their browser had or the email they
    gave (or both); `institution` a consortium admin names (the consortium's own name:
    every library)."""

    institution: str | None = None


class ErasePatron(_Identified):
    """Erase a patron from what one service keeps. `institution` is the scope: the
    consortium's name means every institution. `chat_ids` are the chats transcripts
    erased, so that tickets made from them go too."""

    institution: str
    principal: Principal
    chat_ids: list[str] = Field(default_factory=list, max_length=10_000)

    def scope(self, consortium: str) -> str | None:
        """The one institution whose patron this is, or None for every institution (the
        consortium's name, for a consortium admin); only admins erase."""
        if self.institution == consortium:
            if self.principal.role != "consortium_admin":
                raise Refusal("forbidden", "only a consortium admin erases across the consortium")
            return None
        if not self.principal.may_manage(self.institution):
            raise Refusal("forbidden", "only the institution's admins erase a patron")
        return self.institution


class TranscriptsErased(Model):
    chats: int = 0
    messages: int = 0
    events: int = 0
    # Records purged from the chat stream (the chats' subjects).
    stream_records: int = 0
    # Chats still going on are left alone: erase again once they end.
    active_skipped: int = 0
    chat_ids: list[str] = Field(default_factory=list)
    # Every guest id the patron's chats had: their sightings go too.
    guest_ids: list[str] = Field(default_factory=list)


class TicketsErased(Model):
    tickets: int = 0


class ErasureReport(Model):
    """What was erased, counted (never who)."""

    chats: int
    messages: int
    events: int
    stream_records: int
    tickets: int
    guests: int
    active_skipped: int
