"""The gateway's rules, free of I/O: frame limits, rate limiting, and which client frames a
chat event becomes for each audience (the patron, the owning operator, queue watchers)."""

from __future__ import annotations

from shared.errors import Refusal
from shared.schemas.base import Model
from shared.schemas.events import ChatEvent
from shared.schemas.protocol import (
    ChatClaimedFrame,
    ChatClosedFrame,
    MessageFrame,
    QueueChatAdded,
    QueueChatRemoved,
)


class TokenBucket:
    """Allows `rate` actions a second on average and bursts of up to `burst`."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def available(self, now: float) -> bool:
        """Whether an action would be allowed now, without spending anything."""
        self._refill(now)
        return self.tokens >= 1.0

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def check_frame_size(raw: str, limit: int) -> None:
    if len(raw.encode()) > limit:
        raise Refusal("too_large", f"frame is larger than {limit} bytes")


def check_body(body: str, limit: int) -> str:
    if len(body.encode()) > limit:
        raise Refusal("too_large", f"message body is larger than {limit} bytes")
    if not body.strip():
        raise Refusal("invalid", "body: cannot be blank")
    return body


def message_frame(event: ChatEvent) -> MessageFrame:
    assert event.type == "message"
    return MessageFrame.model_validate(event.message.model_dump(by_alias=True))


def patron_frames(event: ChatEvent) -> list[Model]:
    """What the patron of the chat sees. Their own messages come back as acks, not frames."""
    if event.type == "message" and event.message.from_.kind != "patron":
        return [message_frame(event)]
    if event.type == "claimed":
        return [ChatClaimedFrame(chat_id=event.chat.id, operator=event.operator_name)]
    if event.type in ("closed", "missed"):
        return [_closed(event)]
    return []


def owner_frames(event: ChatEvent) -> list[Model]:
    """What the operator who owns the chat sees; their own messages come back as acks."""
    if event.type == "message":
        sender = event.message.from_
        if sender.kind == "operator" and sender.id == event.chat.owner:
            return []
        return [message_frame(event)]
    if event.type in ("closed", "missed"):
        return [_closed(event)]
    return []


def queue_frames(event: ChatEvent) -> list[Model]:
    """What operators watching the chat's queue see as it enters and leaves the queue."""
    if event.type == "queued":
        return [QueueChatAdded(chat=event.chat, question=event.chat.question)]
    if event.type == "claimed":
        return [QueueChatRemoved(chat_id=event.chat.id, queue=event.chat.queue, reason="claimed")]
    if event.type == "missed":
        return [QueueChatRemoved(chat_id=event.chat.id, queue=event.chat.queue, reason="missed")]
    return []


def _closed(event: ChatEvent) -> ChatClosedFrame:
    reason = getattr(event, "reason", event.type)
    return ChatClosedFrame(chat_id=event.chat.id, state=event.chat.state, reason=reason)
