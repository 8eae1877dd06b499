"""Typed refusals: the error codes of the client protocol, used across every boundary."""

from __future__ import annotations

from typing import Literal

ErrorCode = Literal[
    "invalid",
    "unauthorized",
    "forbidden",
    "not_found",
    "conflict",
    "gone",
    "unavailable",
    "rate_limited",
    "too_large",
    "busy",
    "internal",
]


class Refusal(Exception):
    """A request refused for a reason the caller can act on.

    Raised by pure domain code and turned into an error reply at the edge; never a
    stack trace on the wire.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        owner: str | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.owner = owner
        # With `busy`: when trying again makes sense.
        self.retry_after_ms = retry_after_ms


class StaleRevision(Exception):
    """Someone else wrote the record since it was read: read it again and decide again.

    The one signal of a lost compare-and-set, whatever the record lives in (a chat's
    subject in the chat stream, an operator's entry in the presence bucket)."""
