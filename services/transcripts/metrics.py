"""Transcripts' Prometheus metrics."""

from prometheus_client import Counter, Gauge

EVENTS_APPLIED = Counter(
    "refdesk_transcript_events_total",
    "Chat events handled, by outcome (new, replay, invalid, error)",
    ["kind", "outcome"],
)
CONSUMER_PENDING = Gauge(
    "refdesk_transcript_pending_events", "Chat events not yet recorded (consumer lag)"
)
