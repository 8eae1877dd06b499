"""NATS users for the local run and the tests, one per service, with the subject
permissions each needs and no more, and an `admin` user for tools and tests.

The same permissions are what deploy/k8s grants (deploy/k8s/render.py writes them from
here; see docs/security.md): only the gateway makes client-facing requests; each service
answers on its own subjects and hears its answers in its own inboxes; the JetStream API is
granted from the one table of shared/reach.py: who owns (creates, updates), reads, writes
and purges each stream and bucket, and who owns each durable consumer.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any, get_args
from urllib.parse import quote, urlsplit, urlunsplit

from deploy.local.private import write_private
from shared import reach, subjects

SERVICES = reach.USERS
ADMIN = "admin"

# Every service: replies to requests (allow_responses) and the nats.micro discovery
# subjects; its own inboxes (`_INBOX_<user>.>`, where its requests' replies and its
# consumers' deliveries arrive: nobody else may listen there). The JetStream API only as
# the table of shared/reach.py says (`stream_grants`).
COMMON_PUBLISH = [subjects.JS_ACCOUNT_INFO, "$SRV.>"]
COMMON_SUBSCRIBE = ["$SRV.>"]
# Nobody but an operator with the admin user deletes streams or their messages.
COMMON_DENY = [
    subjects.js_stream_api("DELETE", "*"),
    subjects.js_stream_api("MSG.DELETE", "*"),
]
PURGE_ANY = subjects.js_stream_api("PURGE", "*")


def read_grants(stream: str) -> list[str]:
    """Reading a stream: its info, message gets (from the leader and direct), and consumers
    of its own, which must be named in the API subject (`CONSUMER.CREATE.<stream>` alone,
    which names the consumer in the payload only, is granted to nobody: with it any name
    would do, another service's durable consumer included)."""
    return [
        subjects.js_stream_api("INFO", stream),
        subjects.js_stream_api("MSG.GET", stream),
        subjects.js_direct_get(stream),
        subjects.js_direct_get(stream, ">"),
        subjects.js_consumer_create(stream, "*"),
        subjects.js_consumer_create(stream, "*", ">"),
        subjects.js_durable_create(stream, "*"),
        subjects.js_consumer_api("INFO", stream, "*"),
        subjects.js_consumer_api("DELETE", stream, "*"),
        subjects.js_consumer_api("MSG.NEXT", stream, "*"),
        subjects.js_acks(stream, "*"),
        subjects.js_flow_control(stream, "*"),
    ]


def foreign_consumer_denials(consumer: reach.Consumer) -> list[str]:
    """What a reader of a stream may do with its own consumers and not with another
    service's durable one: create or change it, read it, acknowledge, delete it."""
    stream, name = consumer.stream, consumer.name
    return [
        subjects.js_consumer_create(stream, name),
        subjects.js_consumer_create(stream, name, ">"),
        subjects.js_durable_create(stream, name),
        subjects.js_consumer_api("INFO", stream, name),
        subjects.js_consumer_api("DELETE", stream, name),
        subjects.js_consumer_api("MSG.NEXT", stream, name),
        subjects.js_acks(stream, name),
        subjects.js_flow_control(stream, name),
    ]


def stream_grants(user: str) -> tuple[list[str], list[str]]:
    """(allow, deny) for publishing, from shared/reach.py: reads for a stream's readers,
    creating and updating for its owner alone, writes for its writers, purges for its
    purgers; other services' durable consumers denied to every reader."""
    allow: list[str] = []
    deny: list[str] = []
    for stream in reach.STREAMS:
        if user in stream.read_by:
            allow += read_grants(stream.name)
            for consumer in reach.CONSUMERS:
                if consumer.stream == stream.name and consumer.owner != user:
                    deny += foreign_consumer_denials(consumer)
        if user == stream.owner:
            allow += [
                subjects.js_stream_api("CREATE", stream.name),
                subjects.js_stream_api("UPDATE", stream.name),
            ]
        if user in stream.written_by:
            allow.append(stream.subjects)
        if user in stream.purgers:
            allow.append(subjects.js_stream_api("PURGE", stream.name))
    return allow, deny


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
    ],
    "routing": [
        "chat.*.*.position",
        "queue.*.evt",
        "operator.*.evt",
        "guest.*.*.evt",
        "widget.*.*.status",
        "presence.*.staffing",
        "presence.*.get",
        "deadletter.routing",
    ],
    "presence": ["presence.*.evt"],
    "transcripts": ["deadletter.transcripts"],
    "tickets": ["ticket.*.evt"],
    "directory": [],
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
    allow, deny = stream_grants(service)
    purges = any(service in stream.purgers for stream in reach.STREAMS)
    return {
        "publish": {
            "allow": COMMON_PUBLISH + allow + PUBLISH[service],
            "deny": COMMON_DENY + ([] if purges else [PURGE_ANY]) + deny,
        },
        "subscribe": {"allow": [subjects.inboxes(service), *COMMON_SUBSCRIBE, *SUBSCRIBE[service]]},
        "allow_responses": True,
    }


def reach_table() -> str:
    """Each user's reach as a Markdown table (docs/security.md has it, word for word)."""

    def cell(items: list[str]) -> str:
        return ", ".join(f"`{item}`" for item in items) or "nothing"

    rows = [
        "| user | publishes | subscribes | reads (streams, buckets) | owns |",
        "| --- | --- | --- | --- | --- |",
    ]
    for user in SERVICES:
        writes = [s.subjects for s in reach.STREAMS if user in s.written_by]
        purges = [
            subjects.js_stream_api("PURGE", s.name) for s in reach.STREAMS if user in s.purgers
        ]
        reads = [s.name for s in reach.STREAMS if user in s.read_by]
        owns = [s.name for s in reach.STREAMS if s.owner == user]
        owns += [f"{c.stream} consumer {c.name}" for c in reach.CONSUMERS if c.owner == user]
        publishes = cell(PUBLISH[user] + writes + purges)
        subscribes = cell([subjects.inboxes(user), *SUBSCRIBE[user]])
        rows.append(f"| {user} | {publishes} | {subscribes} | {cell(reads)} | {cell(owns)} |")
    return "\n".join(rows) + "\n"


def passwords(data: Path) -> dict[str, str]:
    """Each user's password, made once for this data directory."""
    path = data / "nats-users.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        made = {user: secrets.token_urlsafe(24) for user in (*SERVICES, ADMIN)}
        write_private(path, json.dumps(made))
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
    write_private(path, json.dumps({"authorization": {"users": users}}, indent=1))
    return path


def url_for(url: str, user: str, password: str) -> str:
    """`url` with a user's credentials in it (nats-py reads them from there)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
