"""How chat events become transcript documents: pure mapping, no I/O.

Writes are keyed so that replaying any event any number of times, in any order, leaves the
same documents: messages by (chat, seq), lifecycle events by event id, and the chat
document only moves forward (an event older than the one it reflects is ignored).
"""

from __future__ import annotations

from typing import Any

from shared.schemas.chat import Chat, Message
from shared.schemas.events import ChatEvent
from shared.schemas.requests import RoutingDecision

ROUTING_EVENT_TYPES = ("queued",)


def chat_document(event: ChatEvent) -> dict[str, Any]:
    """The chat as of this event, flattened for search, with the event number it reflects."""
    doc = event.chat.model_dump(mode="json")
    doc["_id"] = event.chat.id
    doc["n"] = event.n
    return doc


def message_document(message: Message, institution: str) -> dict[str, Any]:
    doc = message.model_dump(mode="json", by_alias=True)
    doc["_id"] = f"{message.chat_id}:{message.seq}"
    doc["institution"] = institution
    return doc


def event_document(event: ChatEvent) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": event.id,
        "chat_id": event.chat.id,
        "institution": event.chat.institution,
        "n": event.n,
        "type": event.type,
        "ts": event.ts,
    }
    if event.type == "queued":
        doc["queue"] = event.queue
        doc["reason"] = event.reason
    return doc


def chat_from_document(doc: dict[str, Any]) -> Chat:
    return Chat.model_validate({k: v for k, v in doc.items() if k not in ("_id", "n")})


def message_from_document(doc: dict[str, Any]) -> Message:
    return Message.model_validate({k: v for k, v in doc.items() if k not in ("_id", "institution")})


def routing_from_events(docs: list[dict[str, Any]]) -> list[RoutingDecision]:
    ordered = sorted(docs, key=lambda d: d["n"])
    return [
        RoutingDecision(at=d["ts"], queue=d["queue"], reason=d["reason"])
        for d in ordered
        if d["type"] in ROUTING_EVENT_TYPES
    ]
