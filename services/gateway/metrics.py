"""The gateway's Prometheus metrics."""

from prometheus_client import Counter, Gauge, Histogram

CONNECTIONS = Gauge("refdesk_gateway_connections", "Open WebSockets", ["kind"])
FRAMES_IN = Counter("refdesk_gateway_frames_total", "Client frames received", ["kind", "type"])
FRAME_ERRORS = Counter(
    "refdesk_gateway_frame_errors_total", "Client frames refused", ["kind", "code"]
)
FRAME_SECONDS = Histogram(
    "refdesk_gateway_frame_seconds",
    "Time to handle a client frame",
    ["kind"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)
LOGINS = Counter("refdesk_gateway_logins_total", "Sign-in attempts", ["outcome"])
SLOW_CLIENTS = Counter(
    "refdesk_gateway_slow_clients_total", "Sockets closed because they could not keep up"
)
FOLLOWED_CHATS = Gauge(
    "refdesk_gateway_followed_chats", "Chats this replica follows for its own sockets"
)
RECORDS_IN = Counter(
    "refdesk_gateway_chat_records_total",
    "Chat records received, by the subscription that brought them",
    ["via"],
)
REFILLS = Counter(
    "refdesk_gateway_refills_total", "Gaps in a followed chat's events refilled from the stream"
)
DELIVERY_SECONDS = Histogram(
    "refdesk_message_delivery_seconds",
    "Time from a message being posted (routing's timestamp) to this gateway handing it to "
    "the sockets it is for, by direction",
    ["direction"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
UNREADABLE = Counter(
    "refdesk_gateway_unreadable_messages_total",
    "Messages from the bus this gateway could not read and dropped, by what they should "
    "have been (chat_record, widget_status, typing_notice, queue_position, session_event, "
    "staff_message, ticket_notice, announcement)",
    ["kind"],
)
