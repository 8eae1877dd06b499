"""Who reaches which JetStream stream and key-value bucket: the one table from which the
NATS users' permissions are made (deploy/local/nats_auth.py, and from it deploy/k8s), which
service creates what at start-up (`Bus` asks `creates`), the permission test
(tests/integration/test_nats_permissions.py) and the table in docs/security.md.

Each stream has one owner, the only service that creates it and changes its settings; the
others that read it bind to it and wait until it is there. A durable consumer has one owner
too, and no other service may create, change, read, acknowledge or delete it.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared import subjects

# The NATS users, one per service (the directory first: it publishes the configuration
# the others follow).
USERS = ("directory", "presence", "routing", "transcripts", "tickets", "gateway")


@dataclass(frozen=True)
class Stream:
    """A stream (a key-value bucket is the stream `KV_<bucket>`)."""

    name: str
    # What it captures: its writers publish there.
    subjects: str
    # Creates it and changes its settings; reads and writes it.
    owner: str
    # Read it through the JetStream API (consumers, gets, info), besides the owner.
    readers: frozenset[str] = frozenset()
    # Write to it, besides the owner.
    writers: frozenset[str] = frozenset()
    # May purge records (always with a filter, though NATS cannot make them).
    purgers: frozenset[str] = frozenset()

    @property
    def read_by(self) -> frozenset[str]:
        return self.readers | {self.owner}

    @property
    def written_by(self) -> frozenset[str]:
        return self.writers | {self.owner}


@dataclass(frozen=True)
class Consumer:
    """A durable consumer and the one service that uses it."""

    stream: str
    name: str
    owner: str


def _bucket(bucket: str, owner: str, readers: frozenset[str] = frozenset()) -> Stream:
    return Stream(subjects.kv_stream(bucket), subjects.kv_subjects(bucket), owner, readers)


STREAMS: tuple[Stream, ...] = (
    # Routing writes each transition of a chat; the gateway reads a chat's history and last
    # record; transcripts follows it with its durable consumer, and purges a chat's records
    # (retention and erasure).
    Stream(
        subjects.CHAT_STREAM,
        subjects.chat_events_all(),
        owner="routing",
        readers=frozenset({"gateway", "transcripts"}),
        purgers=frozenset({"transcripts"}),
    ),
    # Configuration: only the directory writes it; every service that follows it reads it.
    _bucket(
        subjects.CONFIG_BUCKET,
        "directory",
        frozenset({"gateway", "routing", "transcripts", "tickets"}),
    ),
    _bucket(subjects.PRESENCE_BUCKET, "presence"),
    _bucket(subjects.DESKS_BUCKET, "presence"),
    _bucket(subjects.REVOKED_BUCKET, "gateway"),
    _bucket(subjects.THROTTLE_BUCKET, "gateway"),
    _bucket(subjects.ACKNOWLEDGEMENTS_BUCKET, "tickets"),
)

CONSUMERS: tuple[Consumer, ...] = (
    Consumer(subjects.CHAT_STREAM, subjects.TRANSCRIPTS_CONSUMER, "transcripts"),
)


def stream(name: str) -> Stream:
    return next(s for s in STREAMS if s.name == name)


def creates(user: str | None, stream_name: str) -> bool:
    """Whether a client connected as `user` makes (and updates) the stream rather than wait
    for it: its owner does; so does anyone who is not a service (the admin user of tools and
    tests, or a server without users)."""
    return user not in USERS or stream(stream_name).owner == user
