"""Remembered label children count in the series `labels()` would, and stay bounded."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from shared import meters
from shared.bus import record_id
from shared.meters import child
from shared.schemas.events import ChatRecord
from tests.factories import started


def test_a_remembered_child_is_the_labelled_series():
    registry = CollectorRegistry()
    frames = Counter("frames", "frames", ["kind", "type"], registry=registry)
    child(frames, "patron", "message").inc()
    child(frames, "patron", "message").inc(2)
    frames.labels("patron", "message").inc()
    child(frames, "operator", "claim").inc()
    assert registry.get_sample_value("frames_total", {"kind": "patron", "type": "message"}) == 4
    assert registry.get_sample_value("frames_total", {"kind": "operator", "type": "claim"}) == 1
    assert child(frames, "patron", "message") is frames.labels("patron", "message")


def test_the_memory_is_bounded():
    registry = CollectorRegistry()
    queues = Counter("queued", "queued", ["queue"], registry=registry)
    for n in range(meters.KEPT + 100):
        child(queues, f"q{n}").inc()
    assert meters._child.cache_info().currsize <= meters.KEPT
    # Forgotten children still count in their series when looked up again.
    child(queues, "q0").inc()
    assert registry.get_sample_value("queued_total", {"queue": "q0"}) == 2


def test_record_ids_never_repeat_for_the_same_transition():
    """Two replicas deciding from the same state, or one deciding twice, must not look like
    one repeated publish to the stream's de-duplication."""
    first, second = (started(chat_id=name) for name in ("c" * 32, "d" * 32))
    records = [ChatRecord(state=t.state, events=t.events) for t in (first, first, second)]
    ids = [record_id(record) for record in records]
    ids.append(record_id(records[0]))
    assert len(set(ids)) == 4
    assert ids[0].startswith("c" * 32 + ".3.") and ids[2].startswith("d" * 32 + ".3.")
