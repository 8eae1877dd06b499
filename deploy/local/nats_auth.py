"""NATS users for the local run and the tests, one per service, with the subject
permissions each needs and no more, and an `admin` user for tools and tests.

The same permissions are what deploy/k8s should grant (see docs/security.md): only the
gateway makes client-facing requests; only routing publishes chat events; each service
answers on its own subjects; only the directory writes configuration and only presence
sessions and desks.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any, get_args
from urllib.parse import quote, urlsplit, urlunsplit

from shared import subjects

SERVICES = ("directory", "presence", "routing", "transcripts", "tickets", "gateway")
ADMIN = "admin"

# Every service: replies to requests (allow_responses), its own request inboxes,
# acknowledgements and flow control, and the nats.micro discovery subjects. The JetStream
# API only for the streams a service uses (STREAMS).
COMMON_PUBLISH = ["$JS.API.INFO", "$JS.ACK.>", "$JS.FC.>", "$SRV.>"]
COMMON_SUBSCRIBE = ["_INBOX.>", "$SRV.>"]
# Nobody but an operator with the admin user deletes or purges streams or their messages,
# except that transcripts purges chats from the chat stream (retention and erasure: see
# PURGES), which a deny here would override.
COMMON_DENY = [
    "$JS.API.STREAM.DELETE.>",
    "$JS.API.STREAM.MSG.DELETE.>",
]
PURGE_ANY = "$JS.API.STREAM.PURGE.>"
PURGES: dict[str, list[str]] = {"transcripts": [subjects.stream_purge_api(subjects.CHAT_STREAM)]}
# The streams each service reads or writes through the JetStream API (a key-value bucket
# is the stream KV_<bucket>): any other is out of its reach, reads included.
STREAMS: dict[str, list[str]] = {
    "gateway": ["CHAT_EVENTS", "KV_config", "KV_revoked_tokens", "KV_throttle"],
    "routing": ["CHAT_EVENTS", "KV_config"],
    "presence": ["KV_presence", "KV_desks"],
    "transcripts": ["CHAT_EVENTS", "KV_config"],
    "tickets": ["KV_config", "KV_acknowledgements"],
    "directory": ["KV_config"],
}


def stream_api(stream: str) -> list[str]:
    """The JetStream API of one stream: its info and configuration, message reads, and
    its consumers (ordered, durable, pull)."""
    api = "$JS.API"
    return [
        f"{api}.STREAM.INFO.{stream}",
        f"{api}.STREAM.CREATE.{stream}",
        f"{api}.STREAM.UPDATE.{stream}",
        f"{api}.STREAM.MSG.GET.{stream}",
        f"{api}.DIRECT.GET.{stream}",
        f"{api}.DIRECT.GET.{stream}.>",
        f"{api}.CONSUMER.*.{stream}",
        f"{api}.CONSUMER.*.{stream}.>",
        f"{api}.CONSUMER.*.*.{stream}.>",
    ]


PRESENCE_REQUESTS = [f"presence.*.{action}" for action in get_args(subjects.PresenceAction)]

PUBLISH: dict[str, list[str]] = {
    "gateway": [
        "routing.*.*",
        *PRESENCE_REQUESTS,
        "transcripts.*.*",
        "tickets.*.*",
        "directory.*.*",
        "chat.*.*.typing",
        "staff.*.internal",
        "staff.*.announcement",
        "$KV.revoked_tokens.>",
        "$KV.throttle.>",
    ],
    "routing": [
        "chat.*.*.evt",
        "chat.*.*.position",
        "queue.*.evt",
        "operator.*.evt",
        "guest.*.*.evt",
        "widget.*.*.status",
        "presence.*.staffing",
        "presence.*.get",
    ],
    "presence": ["presence.*.evt", "$KV.presence.>", "$KV.desks.>"],
    "transcripts": ["deadletter.transcripts", *PURGES["transcripts"]],
    "tickets": ["ticket.*.evt", "$KV.acknowledgements.>"],
    "directory": ["$KV.config.>"],
}
SUBSCRIBE: dict[str, list[str]] = {
    "gateway": [
        "chat.*.*.*",
        "queue.*.evt",
        "operator.*.evt",
        "guest.*.*.evt",
        "presence.*.evt",
        "staff.*.internal",
        "staff.*.announcement",
        "widget.*.*.status",
        "ticket.*.evt",
    ],
    "routing": ["routing.*.*", "presence.*.evt"],
    "presence": ["presence.*.*"],
    "transcripts": ["transcripts.*.*"],
    "tickets": ["tickets.*.*"],
    "directory": ["directory.*.*"],
}


def permissions(service: str) -> dict[str, Any]:
    streams = [subject for stream in STREAMS[service] for subject in stream_api(stream)]
    return {
        "publish": {
            "allow": COMMON_PUBLISH + streams + PUBLISH[service],
            "deny": COMMON_DENY + ([] if service in PURGES else [PURGE_ANY]),
        },
        "subscribe": {"allow": COMMON_SUBSCRIBE + SUBSCRIBE[service]},
        "allow_responses": True,
    }


def passwords(data: Path) -> dict[str, str]:
    """Each user's password, made once for this data directory."""
    path = data / "nats-users.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        made = {user: secrets.token_urlsafe(24) for user in (*SERVICES, ADMIN)}
        path.write_text(json.dumps(made))
        path.chmod(0o600)
    found: dict[str, str] = json.loads(path.read_text())
    return found


def write_config(data: Path) -> Path:
    """A nats-server configuration with the users and their permissions (the NATS
    configuration format reads JSON)."""
    users = [
        {
            "user": user,
            "password": password,
            **({} if user == ADMIN else {"permissions": permissions(user)}),
        }
        for user, password in passwords(data).items()
    ]
    path = data / "nats-auth.conf"
    path.write_text(json.dumps({"authorization": {"users": users}}, indent=1))
    return path


def url_for(url: str, user: str, password: str) -> str:
    """`url` with a user's credentials in it (nats-py reads them from there)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
