"""The settings of each JetStream stream and key-value bucket as refdesk wants them, and
how they differ from what a server holds.

A bucket is the stream `KV_<bucket>`: its TTL is the stream's `max_age` (and the age of
the markers an expired entry leaves), its history `max_msgs_per_subject`. nats-py makes a
bucket once and never looks at it again, so a release that raised a TTL (the operator
token lifetime, which `revoked_tokens` must outlive) would leave the old one in force; the
owner of each stream therefore applies these at every start (`Bus.key_value`,
`Bus.ensure_chat_stream`), and `refdesk-admin check` reports any difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from nats.js.api import RetentionPolicy, StorageType, StreamConfig

from shared import subjects

# nats-py's duplicate window for a bucket: two minutes, or the TTL if shorter.
KV_DUPLICATE_WINDOW_S = 120.0
# Fields a running stream's update may change; storage it may not (the stream would have
# to be made again, and its entries copied).
UPDATABLE = ("max_age", "max_msgs_per_subject", "num_replicas", "subject_delete_marker_ttl")


@dataclass(frozen=True)
class Bucket:
    """A key-value bucket's settings."""

    name: str
    replicas: int = 1
    ttl: float | None = None
    history: int = 1
    storage: Literal["file", "memory"] = "file"

    @property
    def stream(self) -> str:
        return subjects.kv_stream(self.name)

    @property
    def storage_type(self) -> StorageType:
        return StorageType.MEMORY if self.storage == "memory" else StorageType.FILE

    def wanted(self) -> dict[str, Any]:
        """The stream fields this bucket's settings decide."""
        return {
            "max_age": self.ttl or 0.0,
            "max_msgs_per_subject": self.history,
            "num_replicas": self.replicas,
            # Without markers an entry that ages out vanishes silently, and watchers
            # (presence's staffing index) would never hear of it.
            "subject_delete_marker_ttl": self.ttl or None,
            "storage": self.storage_type,
        }


def chat_stream_config(replicas: int, max_age_hours: int) -> StreamConfig:
    """The chat event stream: each chat's state and events, from which transcripts are
    built, kept for hours (patron text does not linger here)."""
    return StreamConfig(
        name=subjects.CHAT_STREAM,
        subjects=[subjects.chat_events_all()],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=replicas,
        max_age=max_age_hours * 3600.0,
        duplicate_window=120.0,
        # A chat's last record is its state: every read must come from the stream's
        # leader, never from a replica that may lag it (what direct gets allow).
        allow_direct=False,
    )


def chat_stream_wanted(replicas: int, max_age_hours: int) -> dict[str, Any]:
    config = chat_stream_config(replicas, max_age_hours)
    return {"max_age": config.max_age, "num_replicas": replicas, "storage": config.storage}


def _same(have: Any, want: Any) -> bool:
    if isinstance(have, int | float) and isinstance(want, int | float):
        return abs(float(have) - float(want)) < 1e-3
    return bool(have == want) or (not have and not want)


def differences(stream: str, config: StreamConfig, wanted: dict[str, Any]) -> list[str]:
    """Each field of `config` that is not as wanted, said for a person."""
    found = []
    for field, want in wanted.items():
        have = getattr(config, field)
        if not _same(have, want):
            found.append(f"{stream}: {field} is {_shown(have)}, should be {_shown(want)}")
    return found


def _shown(value: Any) -> str:
    if isinstance(value, StorageType):
        return str(value.value)
    return "none" if value is None else str(value)


def updated(config: StreamConfig, wanted: dict[str, Any]) -> StreamConfig:
    """`config` with every field a stream update may change set as wanted."""
    changes = {f: v for f, v in wanted.items() if f in UPDATABLE}
    ttl = changes.get("max_age") or None
    if ttl is not None and "subject_delete_marker_ttl" in changes:
        changes["duplicate_window"] = min(float(config.duplicate_window or 0) or ttl, ttl)
    return config.evolve(**changes)
