"""Every NATS subject and bucket name refdesk uses, built by functions, defined only here.

Subjects carry the institution as their second token so that NATS account permissions can
fence one institution's traffic from another's (see deploy/k8s/nats for the permissions).
"""

from __future__ import annotations

import base64
import re
from typing import Literal

_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")

CHAT_STREAM = "CHAT_EVENTS"
PRESENCE_BUCKET = "presence"
# Every configuration record, as the directory service last wrote it; replicas watch it.
CONFIG_BUCKET = "config"
# Each operator's desk (status and monitored queues) as they last left it.
DESKS_BUCKET = "desks"
# Failure counters (sign-ins, offline messages) shared by the gateways; entries age out.
THROTTLE_BUCKET = "throttle"
# Acknowledgements mailed per recipient, counted by every tickets replica; entries age out.
ACKNOWLEDGEMENTS_BUCKET = "acknowledgements"
# Ids of staff tokens signed out before they expire; entries age out with the tokens.
REVOKED_BUCKET = "revoked_tokens"
TRANSCRIPTS_CONSUMER = "transcripts"

RoutingAction = Literal[
    "start",
    "claim",
    "message",
    "tag",
    "close",
    "queue",
    "transfer",
    "accept",
    "decline",
    "cancel",
    "take",
    "patron_left",
    "resume",
    "owned",
    "proactive",
    "coverage",
    "widget",
]
PresenceAction = Literal[
    "open", "heartbeat", "status", "monitor", "close", "end", "staffing", "get"
]
TranscriptsAction = Literal[
    "get",
    "internal_save",
    "internal_list",
    "stats",
    "missed",
    "search",
    "guest_chats",
    "audit",
    "audit_reads",
    "erase",
]
TicketsAction = Literal["create", "get", "list", "update", "reply", "erase"]
DirectoryAction = Literal[
    "save_institution",
    "save_queue",
    "delete_queue",
    "save_widget",
    "delete_widget",
    "save_user",
    "set_password",
    "sign_in",
    "save_partnership",
    "delete_partnership",
    "save_snippet",
    "delete_snippet",
]
ConfigKind = Literal["institution", "queue", "widget", "user", "partnership", "snippet"]


def _token(value: str, what: str) -> str:
    if not _TOKEN.match(value):
        raise ValueError(f"{what} {value!r} is not a valid subject token")
    return value


def chat_events(institution: str, chat_id: str) -> str:
    """Where every event of one chat is published (and captured by the chat stream)."""
    return f"chat.{_token(institution, 'institution')}.{_token(chat_id, 'chat id')}.evt"


def chat_events_of(chat_id: str, institution: str | None = None) -> str:
    """One chat's events; with no institution, wherever the chat lives (ids are unique)."""
    inst = "*" if institution is None else _token(institution, "institution")
    return f"chat.{inst}.{_token(chat_id, 'chat id')}.evt"


def chat_all_of(institution: str, chat_id: str) -> str:
    """Everything of one chat a gateway delivers: its records, typing and positions."""
    return f"chat.{_token(institution, 'institution')}.{_token(chat_id, 'chat id')}.*"


def queue_records(queue: str) -> str:
    """Records that change what a queue's watchers see. Queue names are unique across the
    consortium and carry their institution (`<consortium>-<institution>[-<suffix>]`)."""
    return f"queue.{_token(queue, 'queue')}.evt"


def operator_records(operator: str) -> str:
    """Records addressed to an operator who does not own the chat (transfer targets, a
    previous owner). User names carry their institution, as queue names do."""
    return f"operator.{_token(operator, 'operator')}.evt"


def guest_records(institution: str, guest_id: str) -> str:
    """A proactive chat an operator opened with a guest of the institution's widgets."""
    return f"guest.{_token(institution, 'institution')}.{_token(guest_id, 'guest id')}.evt"


def guest_records_all() -> str:
    """Every proactive chat's first record, whoever the guest: each gateway lists them in
    the widget's status, for the guest's page to find on its next refresh."""
    return "guest.*.*.evt"


def stream_purge_api(stream: str) -> str:
    """JetStream's API subject that purges a stream (all of it, or a subject's records)."""
    return js_stream_api("PURGE", stream)


# --- JetStream's API, as the server reads it (and as grants name it) ----------------------
# A grant may put `*` where a stream or consumer name goes; a filter is a subject of its
# own (its tokens follow the consumer's name).

JS_API = "$JS.API"
# The account's JetStream limits and usage (nats-py asks before making a bucket).
JS_ACCOUNT_INFO = f"{JS_API}.INFO"
StreamVerb = Literal["INFO", "CREATE", "UPDATE", "DELETE", "PURGE", "MSG.GET", "MSG.DELETE"]
ConsumerVerb = Literal["INFO", "DELETE", "MSG.NEXT"]


def _name(value: str, what: str) -> str:
    return value if value == "*" else _token(value, what)


def kv_stream(bucket: str) -> str:
    """The stream that holds a key-value bucket."""
    return f"KV_{_token(bucket, 'bucket')}"


def kv_subjects(bucket: str) -> str:
    """Every key of a bucket: what its writers publish to and its stream captures."""
    return f"$KV.{_token(bucket, 'bucket')}.>"


def js_stream_api(verb: StreamVerb, stream: str) -> str:
    """`$JS.API.STREAM.<verb>.<stream>`: a stream's info, configuration, message reads and
    deletes."""
    return f"{JS_API}.STREAM.{verb}.{_name(stream, 'stream')}"


def js_direct_get(stream: str, subject: str | None = None) -> str:
    """A direct get from any replica, by sequence or last-by-subject in the payload, or the
    last message of `subject` named in the API subject itself."""
    base = f"{JS_API}.DIRECT.GET.{_name(stream, 'stream')}"
    return base if subject is None else f"{base}.{subject}"


def js_consumer_create(stream: str, name: str | None = None, filter: str | None = None) -> str:
    """Create (or update) a consumer: `$JS.API.CONSUMER.CREATE.<stream>` names it only in
    the payload (any name, any filter); `.<name>` names it where a grant can see it, and
    `.<name>.<filter>` names its filter too (the server refuses a payload that differs)."""
    subject = f"{JS_API}.CONSUMER.CREATE.{_name(stream, 'stream')}"
    if name is None:
        return subject
    subject = f"{subject}.{_name(name, 'consumer')}"
    return subject if filter is None else f"{subject}.{filter}"


def js_durable_create(stream: str, name: str) -> str:
    """The older way to create a durable consumer (the name must match the payload's)."""
    return f"{JS_API}.CONSUMER.DURABLE.CREATE.{_name(stream, 'stream')}.{_name(name, 'consumer')}"


def js_consumer_api(verb: ConsumerVerb, stream: str, name: str) -> str:
    """A consumer's info, its deletion, or the next messages of a pull consumer."""
    return f"{JS_API}.CONSUMER.{verb}.{_name(stream, 'stream')}.{_name(name, 'consumer')}"


def js_acks(stream: str, consumer: str) -> str:
    """Where a consumer's messages are acknowledged (their reply subjects)."""
    return f"$JS.ACK.{_name(stream, 'stream')}.{_name(consumer, 'consumer')}.>"


def js_flow_control(stream: str, consumer: str) -> str:
    """Where a push consumer's flow-control requests are answered."""
    return f"$JS.FC.{_name(stream, 'stream')}.{_name(consumer, 'consumer')}.>"


# --- inboxes: where replies and JetStream deliveries go -----------------------------------

INBOX_ROOT = "_INBOX"


def inbox_prefix(user: str | None) -> str:
    """A NATS user's own inbox prefix (nats-py's `inbox_prefix`): replies to its requests
    and its consumers' deliveries go under it, and only that user may listen there. No
    user: the client library's default."""
    return INBOX_ROOT if user is None else f"{INBOX_ROOT}_{_token(user, 'user')}"


def inboxes(user: str | None) -> str:
    """Every inbox of a user (nats-py's `_INBOX.>` when None)."""
    return f"{inbox_prefix(user)}.>"


def chat_events_all(institution: str | None = None) -> str:
    """Wildcard over chat events: of one institution, or of all when None."""
    inst = "*" if institution is None else _token(institution, "institution")
    return f"chat.{inst}.*.evt"


def dead_letters(consumer: str) -> str:
    """Records a consumer could not read, published as they came for an operator to see."""
    return f"deadletter.{_token(consumer, 'consumer')}"


def chat_typing(institution: str, chat_id: str) -> str:
    """Ephemeral typing notices of one chat; outside the stream on purpose."""
    return f"chat.{_token(institution, 'institution')}.{_token(chat_id, 'chat id')}.typing"


def chat_position(institution: str, chat_id: str) -> str:
    """Ephemeral queue-position updates of one waiting chat; outside the stream too."""
    return f"chat.{_token(institution, 'institution')}.{_token(chat_id, 'chat id')}.position"


def staff_messages(institution: str | None = None) -> str:
    """Internal staff messages, fanned out to every gateway once stored."""
    inst = "*" if institution is None else _token(institution, "institution")
    return f"staff.{inst}.internal"


def announcements(consortium: str) -> str:
    """Consortium-wide announcements to every signed-in operator, from every gateway."""
    return f"staff.{_token(consortium, 'consortium')}.announcement"


def widget_status(institution: str, widget: str) -> str:
    """Where routing announces a change of a widget's availability."""
    return f"widget.{_token(institution, 'institution')}.{_token(widget, 'widget')}.status"


def widget_status_all() -> str:
    return "widget.*.*.status"


def routing(institution: str, action: RoutingAction) -> str:
    return f"routing.{_token(institution, 'institution')}.{action}"


def routing_endpoint(action: RoutingAction) -> str:
    """The wildcard a routing replica listens on for one action, across institutions."""
    return f"routing.*.{action}"


def presence(institution: str, action: PresenceAction) -> str:
    return f"presence.{_token(institution, 'institution')}.{action}"


def presence_endpoint(action: PresenceAction) -> str:
    return f"presence.*.{action}"


def presence_events(institution: str | None = None) -> str:
    inst = "*" if institution is None else _token(institution, "institution")
    return f"presence.{inst}.evt"


def transcripts(institution: str, action: TranscriptsAction) -> str:
    return f"transcripts.{_token(institution, 'institution')}.{action}"


def transcripts_endpoint(action: TranscriptsAction) -> str:
    return f"transcripts.*.{action}"


def tickets(institution: str, action: TicketsAction) -> str:
    return f"tickets.{_token(institution, 'institution')}.{action}"


def tickets_endpoint(action: TicketsAction) -> str:
    return f"tickets.*.{action}"


def ticket_notices(institution: str | None = None) -> str:
    """New unassigned tickets and assignments of an institution (None: every one's), for
    the gateways to hand to signed-in staff."""
    inst = "*" if institution is None else _token(institution, "institution")
    return f"ticket.{inst}.evt"


def directory(institution: str, action: DirectoryAction) -> str:
    return f"directory.{_token(institution, 'institution')}.{action}"


def directory_endpoint(action: DirectoryAction) -> str:
    return f"directory.*.{action}"


def config_key(kind: ConfigKind, name: str) -> str:
    """Key of one configuration record in the config bucket: `<kind>.<name>`. A snippet's
    name has spaces and parentheses, which keys cannot: it is base64url-encoded."""
    if kind == "snippet":
        encoded = base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")
        return f"{kind}.{encoded}"
    return f"{kind}.{_token(name, kind)}"


def config_kind(key: str) -> tuple[str, str]:
    """(kind, name) of a config bucket key."""
    kind, _, name = key.partition(".")
    if kind == "snippet":
        name = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
    return kind, name


def presence_key(institution: str, operator: str) -> str:
    """Key of an operator's session in the presence bucket."""
    return f"{_token(institution, 'institution')}.{_token(operator, 'operator')}"


def family(subject: str) -> str:
    """A subject's bounded label for metrics: its first and last tokens
    (`presence.*.evt` -> `presence.evt`), never an institution or an id."""
    tokens = subject.split(".")
    return f"{tokens[0]}.{tokens[-1]}"


def institution_of(subject: str) -> str:
    """The institution token of any refdesk subject (always the second token)."""
    return subject.split(".", 2)[1]
