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
DEAD_LETTERS = Counter(
    "refdesk_transcript_dead_letters_total",
    "Chat records the transcripts consumer could not read, set aside on the dead-letter subject",
)
GAPS = Counter(
    "refdesk_transcript_event_gaps_total",
    "Chat events found missing between records of a chat (events, not records)",
)
RETENTION = Counter(
    "refdesk_transcript_retention_chats_total",
    "Chats past their library's retention, by what was done (anonymised, deleted)",
    ["action"],
)
ERASED = Counter("refdesk_transcript_erased_chats_total", "Chats erased at a patron's request")
ROLLUPS_DEFERRED = Counter(
    "refdesk_transcript_rollups_deferred_total",
    "Chats whose statistics were left for a redelivery: another writer held their count",
)
