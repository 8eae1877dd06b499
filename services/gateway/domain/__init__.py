"""The gateway's rules, free of I/O, one module per concern, re-exported here so that every
caller says domain.<rule>:

- `limits`: frames a second, frame and message sizes, failed sign-ins;
- `deliveries`: which frames a chat event becomes, and for whom;
- `access`: accounts and tokens, widget origins, and who may see and do what (the scope of
  a request, configuration records, sessions, announcements, conversations, queues,
  snippets, patron sockets, transfer reach);
- `staff`: internal messages and ticket notices, who hears them;
- `idle_pages`: a widget's public status as a cacheable body, invitations for guests
  with no socket;
- `queries`: spans, days, statistics as CSV, audited reads, follow-up tickets.

Routes and sockets call these and do nothing but I/O around them.
"""

from __future__ import annotations

from services.gateway.domain.access import (
    Caller,
    Relation,
    SignedClaims,
    current_account,
    frame_ancestors,
    in_scope,
    may_announce,
    may_end_session,
    may_monitor,
    may_read_conversation,
    may_read_partnership,
    may_read_snippet,
    must_be_online,
    origin_allowed,
    origin_of,
    patron_socket_refusal,
    reachable_institutions,
    scoped_institution,
    sees_institution,
    session_end_reason,
    usable_snippet,
    visible,
)
from services.gateway.domain.deliveries import (
    PATRON,
    Delivery,
    To,
    deliveries,
    for_patron,
    message_frame,
    offer_frame,
    patron_chat,
    patron_sender,
    patron_typing,
    widget_changed,
    widget_frame,
)
from services.gateway.domain.idle_pages import (
    Invitation,
    entity_tag,
    invite_key,
    listed_invitations,
    not_modified,
)
from services.gateway.domain.limits import SignInLimits, TokenBucket, check_body, check_frame_size
from services.gateway.domain.queries import (
    GUEST_ID,
    MAX_SPAN,
    STATS_COLUMNS,
    FollowUp,
    aware,
    check_span,
    follow_up,
    reads_to_audit,
    start_of_day,
    stats_csv,
)
from services.gateway.domain.staff import (
    LISTENING,
    StaffView,
    check_colleague,
    conversation_of,
    internal_frame,
    internal_recipients,
    ticket_frame,
    ticket_recipients,
)

__all__ = [
    "GUEST_ID",
    "LISTENING",
    "MAX_SPAN",
    "PATRON",
    "STATS_COLUMNS",
    "Caller",
    "Delivery",
    "FollowUp",
    "Invitation",
    "Relation",
    "SignInLimits",
    "SignedClaims",
    "StaffView",
    "To",
    "TokenBucket",
    "aware",
    "check_body",
    "check_colleague",
    "check_frame_size",
    "check_span",
    "conversation_of",
    "current_account",
    "deliveries",
    "entity_tag",
    "follow_up",
    "for_patron",
    "frame_ancestors",
    "in_scope",
    "internal_frame",
    "internal_recipients",
    "invite_key",
    "listed_invitations",
    "may_announce",
    "may_end_session",
    "may_monitor",
    "may_read_conversation",
    "may_read_partnership",
    "may_read_snippet",
    "message_frame",
    "must_be_online",
    "not_modified",
    "offer_frame",
    "origin_allowed",
    "origin_of",
    "patron_chat",
    "patron_sender",
    "patron_socket_refusal",
    "patron_typing",
    "reachable_institutions",
    "reads_to_audit",
    "scoped_institution",
    "sees_institution",
    "session_end_reason",
    "start_of_day",
    "stats_csv",
    "ticket_frame",
    "ticket_recipients",
    "usable_snippet",
    "visible",
    "widget_changed",
    "widget_frame",
]
