"""Tickets' Prometheus metrics."""

from prometheus_client import Counter, Gauge

TICKETS_CREATED = Counter(
    "refdesk_tickets_created_total", "Tickets created, by source", ["institution", "source"]
)
TICKET_CHANGES = Counter(
    "refdesk_ticket_changes_total",
    "Changes to tickets (status, assignee, reply, note, ...)",
    ["what"],
)
MAIL_SENT = Counter("refdesk_mail_sent_total", "Mails handed to the mail system")
MAIL_FAILURES = Counter(
    "refdesk_mail_failures_total",
    "Mail attempts that failed, by what follows (retrying, failed: given up)",
    ["state"],
)
MAIL_WAITING = Gauge("refdesk_mail_queue_depth", "Mails waiting in the outbox to be sent")
ACKNOWLEDGEMENTS_WITHHELD = Counter(
    "refdesk_acknowledgements_withheld_total",
    "Offline messages not acknowledged by mail: their address had its allowance",
)
INBOUND_MAIL = Counter(
    "refdesk_inbound_mail_total", "Patron mails received, by outcome", ["outcome"]
)
RETAINED = Counter(
    "refdesk_tickets_retained_total",
    "Closed tickets deleted by the retention job (past their library's retention_days)",
)
