"""Tickets' Prometheus metrics."""

from prometheus_client import Counter

TICKETS_CREATED = Counter("refdesk_tickets_created_total", "Tickets created", ["institution"])
