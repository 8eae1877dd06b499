"""Routing's Prometheus metrics."""

from prometheus_client import Counter, Histogram

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
