"""The heap is settled once a service has started: garbage made before is collected, and
what survives is exempt from later collections."""

import gc
import weakref
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from shared import heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_settle_collects_garbage_made_before_it(unfrozen: None) -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle: only the collector frees it
    gone = weakref.ref(a)
    del a, b
    gc.disable()  # no collection of its own may free the cycle first
    try:
        assert gone() is not None
        heap.settle()
        assert gone() is None
    finally:
        gc.enable()


def test_settle_exempts_what_survives_and_later_objects_are_collected(unfrozen: None) -> None:
    kept = Node()
    frozen = heap.settle()
    assert frozen >= 1 and frozen == gc.get_freeze_count()
    assert REGISTRY.get_sample_value("refdesk_heap_frozen_objects") == frozen
    assert not any(obj is kept for obj in gc.get_objects())  # out of every generation

    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None


def pauses(generation: int) -> float:
    return (
        REGISTRY.get_sample_value("refdesk_gc_pause_seconds_count", {"generation": str(generation)})
        or 0.0
    )


def test_every_collection_after_settling_is_timed_once(unfrozen: None) -> None:
    heap.settle()
    heap.settle()  # a second call adds no second timer
    gc.disable()  # only the collections below, none of the interpreter's own
    try:
        before, before_young = pauses(2), pauses(0)
        gc.collect()
        gc.collect(0)
        assert (pauses(2), pauses(0)) == (before + 1, before_young + 1)
    finally:
        gc.enable()
