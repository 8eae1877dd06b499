"""What a library's page learns without a socket (the loader, before anyone opens the
widget): the widget's status as one small body that any cache may keep a few seconds,
and the invitations waiting for guests who have no socket open.

An invitation (a proactive chat started for a guest) is listed in the widget's public
status under a key only that guest's page knows (`invite_key`, handed to it when it
reported its page view), so one cacheable body serves every page: a CDN in front of the
gateway absorbs the refreshes, and the list says nothing about who was invited."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

# Invitations listed per widget, the newest first: 30 bytes each keeps the status body
# under 1 KB. Staff invite one guest at a time, so more waiting at once on one widget is
# unlikely; a guest dropped from the list still finds the chat on opening the widget.
MAX_LISTED = 20
# Enough of a chat id for a page to tell one invitation from the next.
CHAT_PREFIX = 8


@dataclass(frozen=True)
class Invitation:
    key: str
    chat_id: str
    until: datetime

    @property
    def listed(self) -> str:
        return f"{self.key}.{self.chat_id[:CHAT_PREFIX]}"


def invite_key(guest_id: str) -> str:
    """The key under which a guest's invitations are listed: derived from the guest id
    (every replica finds the same), and telling nothing of it."""
    return hashlib.sha256(f"refdesk-invite:{guest_id}".encode()).hexdigest()[:16]


def listed_invitations(invitations: Iterable[Invitation], now: datetime) -> list[str]:
    """The entries the status lists: those not yet expired, the newest first, at most
    MAX_LISTED."""
    alive = sorted((i for i in invitations if i.until > now), key=lambda i: i.until, reverse=True)
    return [i.listed for i in alive[:MAX_LISTED]]


def entity_tag(body: bytes) -> str:
    """A strong ETag for a body: the same bytes on every replica give the same tag, so a
    cache revalidates against any of them."""
    return '"' + hashlib.sha256(body).hexdigest()[:24] + '"'


def not_modified(if_none_match: str | None, tag: str) -> bool:
    """Whether a conditional GET already holds `tag` (RFC 9110: weak comparison, a list
    of tags or `*`)."""
    if not if_none_match:
        return False
    held = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in held or tag in held
