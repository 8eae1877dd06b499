"""Presence's Prometheus metrics."""

from prometheus_client import Counter, Gauge

SESSIONS_OPENED = Counter("refdesk_sessions_opened_total", "Operator sessions opened")
SESSIONS_REPLACED = Counter(
    "refdesk_sessions_replaced_total", "Sessions ended by a sign-in elsewhere"
)
OPERATORS_ONLINE = Gauge("refdesk_operators_online", "Operators with status online")
