"""Presence's Prometheus metrics."""

from prometheus_client import Counter, Gauge

SESSIONS_OPENED = Counter("refdesk_sessions_opened_total", "Operator sessions opened")
SESSIONS_REPLACED = Counter(
    "refdesk_sessions_replaced_total", "Sessions ended by a sign-in elsewhere"
)
SESSIONS_ENDED = Counter(
    "refdesk_sessions_ended_total", "Sessions ended from outside them, by reason", ["reason"]
)
OPERATORS = Gauge(
    "refdesk_operators",
    "Operators signed in, by status (online, away, internal, offline)",
    ["status"],
)
