"""Routing's Prometheus metrics."""

import contextlib
from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram

from services.routing.coverage import cause
from shared.meters import child
from shared.schemas.events import (
    ChatClaimed,
    ChatClosed,
    ChatEvent,
    ChatMissed,
    ChatRolledOver,
    TransferAccepted,
    TransferExpired,
    TransferWithdrawn,
)

CHATS_STARTED = Counter("refdesk_chats_started_total", "Chats started", ["institution", "queue"])
ROUTING_DECISIONS = Counter(
    "refdesk_routing_decisions_total",
    "Where chats were placed: at start or at a rollover timeout, the outcome (home, "
    "fallback, rolled_over, held, unavailable) and the kind of reason the first queue "
    "passed over gave (outside_hours, holiday, closure, unstaffed; none)",
    ["trigger", "outcome", "cause"],
)
WIDGET_CHANGES = Counter(
    "refdesk_widget_status_changes_total", "Widget availability changes announced", ["online"]
)
CAS_RETRIES = Counter(
    "refdesk_routing_cas_retries_total", "Compare-and-set writes retried after a stale read"
)
CHAT_WAIT = Histogram(
    "refdesk_chat_wait_seconds",
    "Time from a chat being queued to being claimed",
    ["queue"],
    buckets=(1, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600),
)
MESSAGES = Counter("refdesk_messages_total", "Messages posted", ["sender"])
TRANSITIONS = Counter("refdesk_chat_transitions_total", "Chat events published", ["type"])
CHATS_CLAIMED = Counter(
    "refdesk_chats_claimed_total", "Chats claimed by an operator", ["institution", "queue"]
)
CHATS_MISSED = Counter(
    "refdesk_chats_missed_total",
    "Chats that ended unclaimed, by why",
    ["institution", "queue", "reason"],
)
CHATS_ROLLED_OVER = Counter(
    "refdesk_chats_rolled_over_total",
    "Chats moved on along their chain, from which queue and why",
    ["institution", "queue", "reason"],
)
CHAT_DURATION = Histogram(
    "refdesk_chat_duration_seconds",
    "Time from a chat being claimed to being closed",
    ["institution"],
    buckets=(60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 7200),
)
TRANSFERS = Counter(
    "refdesk_transfers_total",
    "Transfer offers as they ended: accepted, withdrawn, timeout, declined, patron_left, "
    "owner_left",
    ["outcome"],
)
CLAIM_CONFLICTS = Counter(
    "refdesk_claim_conflicts_total", "Claims refused because someone else was first"
)
DEAD_LETTERS = Counter(
    "refdesk_routing_dead_letters_total",
    "Chat records routing could not read, set aside on the dead-letter subject (each once); "
    "the chat goes on from its last readable record",
)


def count(event: ChatEvent) -> None:
    """The counters and histograms a published event moves."""
    chat = event.chat
    child(TRANSITIONS, event.type).inc()
    match event:
        case ChatClaimed():
            CHATS_CLAIMED.labels(chat.institution, chat.queue).inc()
        case ChatMissed(reason=reason):
            CHATS_MISSED.labels(chat.institution, chat.queue, reason).inc()
        case ChatRolledOver(from_queue=queue, reason=reason):
            CHATS_ROLLED_OVER.labels(chat.institution, queue, cause(reason)).inc()
        case ChatClosed() if chat.claimed_at and chat.closed_at:
            held = datetime.fromisoformat(chat.closed_at) - datetime.fromisoformat(chat.claimed_at)
            CHAT_DURATION.labels(chat.institution).observe(max(0.0, held.total_seconds()))
        case TransferAccepted():
            TRANSFERS.labels("accepted").inc()
        case TransferWithdrawn():
            TRANSFERS.labels("withdrawn").inc()
        case TransferExpired(reason=reason):
            TRANSFERS.labels(reason).inc()


WIDGET_ONLINE = Gauge("refdesk_widget_online", "1 while a widget offers chat", ["widget"])
WIDGET_UNSTAFFED = Gauge(
    "refdesk_widget_unstaffed",
    "1 while a widget's queues are open by their hours but no operator is online for them",
    ["widget"],
)


def widget_state(widget: str, online: bool, reason: str) -> None:
    WIDGET_ONLINE.labels(widget).set(1 if online else 0)
    WIDGET_UNSTAFFED.labels(widget).set(1 if not online and cause(reason) == "unstaffed" else 0)


def forget_widget(widget: str) -> None:
    for gauge in (WIDGET_ONLINE, WIDGET_UNSTAFFED):
        with contextlib.suppress(KeyError):
            gauge.remove(widget)
