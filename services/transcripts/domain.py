"""How chat events become transcript documents: pure mapping, no I/O.

Writes are keyed so that replaying any event any number of times, in any order, leaves the
same documents: messages by (chat, seq), lifecycle events by event id, and the chat
document only moves forward (an event older than the one it reflects is ignored).
"""

from __future__ import annotations

from typing import Any

from shared.schemas.chat import Chat, Message
from shared.schemas.events import ChatEvent, RoutingDecided
from shared.schemas.requests import RoutingDecision

ROUTING_EVENT_TYPES = ("queued", "rolled_over", "rollover_held")


def chat_document(event: ChatEvent) -> dict[str, Any]:
    """The chat as of this event, flattened for search, with the event number it reflects."""
    chat = event.chat
    doc = chat.model_dump(mode="json")
    doc["_id"] = chat.id
    doc["n"] = event.n
    # The institution that answered a library's chat (a backup service) sees it too.
    answered = chat.answered_institution
    doc["shared_with"] = [answered] if answered and answered != chat.institution else []
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
    if isinstance(event, RoutingDecided):
        doc["trigger"] = "start" if event.type == "queued" else "rollover"
        doc["queue"] = None if event.type == "rollover_held" else event.chat.queue
        doc["reason"] = event.reason
        doc["skipped"] = [s.model_dump(mode="json") for s in event.skipped]
    return doc


def chat_from_document(doc: dict[str, Any]) -> Chat:
    return Chat.model_validate(
        {k: v for k, v in doc.items() if k not in ("_id", "n", "shared_with")}
    )


def message_from_document(doc: dict[str, Any]) -> Message:
    return Message.model_validate({k: v for k, v in doc.items() if k not in ("_id", "institution")})


def routing_from_events(docs: list[dict[str, Any]]) -> list[RoutingDecision]:
    ordered = sorted(docs, key=lambda d: d["n"])
    return [
        RoutingDecision(
            at=d["ts"],
            trigger=d.get("trigger", "start"),
            queue=d["queue"],
            reason=d["reason"],
            skipped=d.get("skipped", []),
        )
        for d in ordered
        if d["type"] in ROUTING_EVENT_TYPES
    ]
