"""How chat events become transcript documents: pure mapping, no I/O.

Writes are keyed so that replaying any event any number of times, in any order, leaves the
same documents: messages by (chat, seq), lifecycle events by event id, and the chat
document only moves forward (an event older than the one it reflects is ignored).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from shared.schemas.chat import Chat, Message
from shared.schemas.events import ChatEvent, RoutingDecided
from shared.schemas.privacy import email_key
from shared.schemas.records import Institution, Principal
from shared.schemas.requests import RoutingDecision

ROUTING_EVENT_TYPES = ("queued", "rolled_over", "rollover_held")
ENDED = ("closed", "missed")
# Fields of a stored chat that are transcripts' own (search and statistics), not the chat's.
DERIVED = (
    "_id",
    "n",
    "shared_with",
    "created_ms",
    "day",
    "hour",
    "wait_s",
    "duration_s",
    "answered_by",
    "text",
    "messages",
    "anonymised",
    "email_key",
)
Answerer = Literal["home", "backup", "partner"]


@dataclass(frozen=True)
class Members:
    """What transcripts needs to know of the consortium's members: each one's time zone
    (local days and hours) and which are backup services."""

    zones: dict[str, str]
    backups: frozenset[str]

    @classmethod
    def of(cls, institutions: dict[str, Institution]) -> Members:
        return cls(
            {name: i.timezone for name, i in institutions.items()},
            frozenset(name for name, i in institutions.items() if i.kind == "backup"),
        )


def epoch_ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    gap = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return round(max(0.0, gap.total_seconds()), 3)


def answered_by(chat: Chat, backups: frozenset[str]) -> Answerer | None:
    answered = chat.answered_institution
    if answered is None:
        return None
    if answered == chat.institution:
        return "home"
    return "backup" if answered in backups else "partner"


def shared_with(chat: Chat) -> list[str]:
    """The institutions besides the patron's library that see a chat's transcript: the one
    that answered it and every one whose staff held it (a backup service a library handed
    the chat to, a partner that covered it)."""
    answered = [chat.answered_institution] if chat.answered_institution else []
    return sorted({*answered, *chat.handled_by} - {chat.institution})


def audited_read(reader: Principal, owner: str, shared: Iterable[str] = ()) -> bool:
    """The audit rule: whether a read of `owner`'s patron content (a transcript, a chat
    with its patron's details and question, a ticket) goes in `owner`'s audit log. It
    does whenever the reader belongs to another institution that the content is not
    shared with: a consortium admin's reads of a library's patrons always, a backup
    service's or a partner's when the chat is not one they answered; a library's own
    staff's never."""
    return reader.institution != owner and reader.institution not in shared


def chat_document(event: ChatEvent, members: Members) -> dict[str, Any]:
    """The chat as of this event, with the event number it reflects and the facts that
    search and statistics filter and group on: the local day and hour of the week it
    started (in its library's time zone), its wait and duration, and who answered."""
    chat = event.chat
    doc = chat.model_dump(mode="json")
    doc["_id"] = chat.id
    doc["n"] = event.n
    doc["shared_with"] = shared_with(chat)
    created = datetime.fromisoformat(chat.created_at)
    # Milliseconds since the epoch: what ranges, sorting and page cursors compare, since
    # not every server compares ISO strings to the millisecond (the embedded one does not).
    doc["created_ms"] = epoch_ms(created)
    local = created.astimezone(ZoneInfo(members.zones.get(chat.institution, "UTC")))
    doc["day"] = local.date().isoformat()
    doc["hour"] = f"{local.strftime('%a').lower()} {local.hour:02d}"
    # A proactive chat never waited: the operator started it.
    doc["wait_s"] = _seconds(chat.created_at, chat.claimed_at) if chat.origin == "patron" else None
    doc["duration_s"] = _seconds(chat.claimed_at, chat.closed_at)
    doc["answered_by"] = answered_by(chat, members.backups)
    # What an erasure by email matches, whatever case the patron typed.
    doc["email_key"] = email_key(chat.patron.email) if chat.patron.email else None
    return doc


def searchable_text(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """What an ended chat adds to its document for search: every message's text in order,
    and how many there were. Built from the stored messages, so the same whatever order
    they arrived in."""
    ordered = sorted(messages, key=lambda m: m["seq"])
    return {"text": "\n".join(m["body"] for m in ordered), "messages": len(ordered)}


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
    return Chat.model_validate({k: v for k, v in doc.items() if k not in DERIVED})


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


class GapWatch:
    """Which event number each recently seen chat has reached, to notice a record that
    skips some (events lost before the stream, or a stream gap). Bounded: the least
    recently seen chats are forgotten first, and a forgotten chat starts afresh."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._last: OrderedDict[str, int] = OrderedDict()

    def observe(self, chat_id: str, first_n: int, last_n: int) -> int:
        """Record a record's event numbers; returns how many events are missing before
        it (0 when none, or when this chat was not seen recently). Redeliveries and
        records older than what was seen report nothing."""
        seen = self._last.get(chat_id)
        missing = 0
        if seen is not None and first_n > seen + 1:
            missing = first_n - seen - 1
        self._last[chat_id] = max(last_n, seen or 0)
        self._last.move_to_end(chat_id)
        while len(self._last) > self.size:
            self._last.popitem(last=False)
        return missing
