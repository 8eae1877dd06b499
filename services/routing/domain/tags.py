"""Tags on a chat: normalised, bound by the library's tag list, by whoever held the chat."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.routing.domain.state import Transition, _evolve, _next
from shared.errors import Refusal
from shared.schemas.chat import (
    MAX_TAGS,
    TAG_PATTERN,
    Chat,
    ChatState,
    Sender,
    normal_tag,
)
from shared.schemas.events import (
    ChatTagged,
)


def normalize_tags(tags: list[str]) -> list[str]:
    """Lower-case, trimmed, de-duplicated, in first-seen order; each one short and plain,
    and at most MAX_TAGS on a chat (applied to the chat's tags with the new ones, since
    every event carries them all)."""
    seen: dict[str, None] = {}
    for tag in tags:
        clean = normal_tag(tag)
        if not clean:
            raise Refusal("invalid", "a tag cannot be empty")
        if not re.match(TAG_PATTERN, clean):
            raise Refusal(
                "invalid", f"tags: {clean[:40]!r} must be up to 40 letters, digits, -, _ or spaces"
            )
        seen.setdefault(clean, None)
    if len(seen) > MAX_TAGS:
        raise Refusal("invalid", f"tags: a chat holds at most {MAX_TAGS} tags")
    return list(seen)


@dataclass(frozen=True)
class TagRules:
    """An institution's tagging rules for its staff: its tag list (empty: any tag) and
    whether a chat must carry a tag before they close it."""

    allowed: frozenset[str] = frozenset()
    required: bool = False

    def check(self, tags: list[str]) -> None:
        for tag in tags:
            if self.allowed and tag not in self.allowed:
                raise Refusal("invalid", f"tags: {tag!r} is not in your library's tag list")


NO_RULES = TagRules()


def answered_by(chat: Chat, operator: str | None) -> bool:
    """Whether this operator held the chat at some point (its owner now, or before a
    transfer or a take-over)."""
    return operator is not None and (operator == chat.owner or operator in chat.operators)


def tag(
    state: ChatState,
    by: Sender,
    add: list[str],
    now: datetime,
    remove: Sequence[str] = (),
    rules: TagRules = NO_RULES,
) -> Transition:
    """Whoever answered the chat (its owner, or an earlier one after a transfer) adds or
    removes tags, while it is open or after it closed. Repeating a tag changes nothing."""
    chat = state.chat
    if by.kind != "operator":
        raise Refusal("forbidden", "only staff may tag a chat")
    if not answered_by(chat, by.id):
        raise Refusal("forbidden", "only staff who answered the chat may tag it", owner=chat.owner)
    added = normalize_tags(add)
    rules.check(added)
    dropped = set(normalize_tags(list(remove)))
    merged = normalize_tags([*(t for t in chat.tags if t not in dropped), *added])
    if merged == chat.tags:
        return Transition(state)
    tagged = chat.model_copy(update={"tags": merged})
    n, stamp = _next(state, now)
    event = ChatTagged(**stamp, chat=tagged, by=by, tags=merged)
    return Transition(_evolve(state, tagged, events=n), [event])
