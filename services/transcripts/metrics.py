"""Transcripts' Prometheus metrics."""

from prometheus_client import Counter, Gauge

EVENTS_APPLIED = Counter(
    "refdesk_transcript_events_total", "Chat events recorded", ["type", "outcome"]
)
CONSUMER_PENDING = Gauge(
    "refdesk_transcript_pending_events", "Chat events not yet recorded (consumer lag)"
)
