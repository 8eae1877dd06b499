"""The chat state machine: pure functions of (state, command, now) -> transition.

No I/O here. Handlers load the chat's state with its key-value revision, call one of these,
write the new state conditional on the chat's last record and publish the events. A
refusal is raised as `Refusal` with the protocol's error code and changes nothing.

    created --> queued --claim--> active --close--> closed
                  |  ^               |  ^   \\
                  |  |  owner gone   |  |    offer --> transferring --accept--> active
                  |  +--past grace---+  +-- reclaim / decline / expiry --+
                  +--patron gone past grace--> missed

See docs/architecture.md for the full diagram. Time-driven transitions (offer expiry, the
owner and patron grace periods) come from `due`, which the routing replicas call at the
instants `deadlines` names.

Closing a chat that is already closed or missed is an idempotent no-op (`changed=False`):
a retried close, or a patron and an operator closing at once, must not fail either side.

The state machine is split by what moves a chat: `chats` (start, claim, close), `messages`,
`tags`, `transfers`, `presence` (owners and patrons leaving and returning, take-over),
`queues` (order, waits, rollover) and `deadlines` (what time brings); `state` holds the
transition type the others build on.
"""

from __future__ import annotations

from services.routing.domain.chats import (
    NewChat,
    NewProactiveChat,
    claim,
    close,
    start_chat,
    start_proactive,
)
from services.routing.domain.deadlines import Timing, deadlines, due
from services.routing.domain.messages import message_id, post_message, sent_before
from services.routing.domain.presence import (
    owner_left,
    owner_returned,
    patron_left,
    patron_returned,
    take,
)
from services.routing.domain.queues import (
    estimate_wait,
    hold_rollover,
    queue_order,
    queue_position,
    roll_over,
    rollover_at,
    rollover_candidates,
    rollover_due,
)
from services.routing.domain.state import KEEP, OPEN_STATES, Transition, may_act
from services.routing.domain.tags import NO_RULES, TagRules, answered_by, normalize_tags, tag
from services.routing.domain.transfers import (
    accept_transfer,
    cancel_transfer,
    check_transfer_reach,
    decline_transfer,
    expire_transfer,
    offer_transfer,
)

__all__ = [
    "KEEP",
    "NO_RULES",
    "OPEN_STATES",
    "NewChat",
    "NewProactiveChat",
    "TagRules",
    "Timing",
    "Transition",
    "accept_transfer",
    "answered_by",
    "cancel_transfer",
    "check_transfer_reach",
    "claim",
    "close",
    "deadlines",
    "decline_transfer",
    "due",
    "estimate_wait",
    "expire_transfer",
    "hold_rollover",
    "may_act",
    "message_id",
    "normalize_tags",
    "offer_transfer",
    "owner_left",
    "owner_returned",
    "patron_left",
    "patron_returned",
    "post_message",
    "queue_order",
    "queue_position",
    "roll_over",
    "rollover_at",
    "rollover_candidates",
    "rollover_due",
    "sent_before",
    "start_chat",
    "start_proactive",
    "tag",
    "take",
]
