"""What a deployment should hold, from the services' own settings and declarations: the
chat stream, every key-value bucket with its owner's settings, and every store's indexes.
The services apply the same at start (shared/stream_settings.py, shared/indexes.py);
`refdesk-admin check` compares."""

from __future__ import annotations

from typing import Any

from services.directory import store as directory_store
from services.gateway import store as gateway_store
from services.gateway.settings import GatewaySettings
from services.gateway.throttle import THROTTLE_WINDOW_S
from services.presence.settings import PresenceSettings
from services.tickets import store as tickets_store
from services.tickets.domain import ACKNOWLEDGEMENT_WINDOW
from services.transcripts import store as transcripts_store
from shared import indexes, stream_settings, subjects
from shared.stream_settings import Bucket


def streams() -> dict[str, dict[str, Any]]:
    """Each stream's wanted fields, by stream name."""
    gateway, presence = GatewaySettings(), PresenceSettings()
    replicas = gateway.stream_replicas
    buckets = [
        Bucket(subjects.CONFIG_BUCKET, replicas),
        Bucket(subjects.PRESENCE_BUCKET, replicas, presence.session_ttl_s),
        Bucket(subjects.DESKS_BUCKET, replicas),
        Bucket(subjects.REVOKED_BUCKET, replicas, float(gateway.operator_token_ttl_s)),
        Bucket(subjects.THROTTLE_BUCKET, replicas, THROTTLE_WINDOW_S, storage="memory"),
        Bucket(subjects.ACKNOWLEDGEMENTS_BUCKET, replicas, ACKNOWLEDGEMENT_WINDOW.total_seconds()),
    ]
    wanted = {b.stream: b.wanted() for b in buckets}
    wanted[subjects.CHAT_STREAM] = stream_settings.chat_stream_wanted(
        replicas, gateway.stream_max_age_hours
    )
    return wanted


def wanted_indexes() -> indexes.Wanted:
    """Every store's indexes, by collection."""
    return {
        **directory_store.INDEXES,
        **gateway_store.wanted_indexes(GatewaySettings().proactive_window_s),
        **transcripts_store.INDEXES,
        **tickets_store.INDEXES,
    }
