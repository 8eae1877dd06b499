"""Keeping the garbage collector's full collections off the message path, and in sight.

A full collection walks every container object the process holds, and a started service
holds 40-90 thousand of them that live as long as it does (modules, classes, compiled
validators, settings). Under load each full collection stopped the event loop for 30-90 ms,
every few seconds: most of the message path's p99 at 2,000-2,500 msg/s
(docs/benchmarks.md). Moving what exists once the service has started out of the
collector's sight leaves later collections only what was made since.

What is made since still counts: an open socket holds about 150 objects in a gateway, so
its full collections grow with its sockets (about 70 ms per 1,000 on the bench machine,
docs/operations.md). Every collection's pause is a metric, and long ones raise an alert.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Gauge, Histogram

PAUSES = Histogram(
    "refdesk_gc_pause_seconds",
    "Time the garbage collector stopped this process, by generation (2: a full collection)",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
FROZEN = Gauge(
    "refdesk_heap_frozen_objects",
    "Objects exempted from garbage collection once this process had started",
)
# Made up front: every generation is exported from the start, and a collection's callback
# does no label lookup.
_BY_GENERATION = [PAUSES.labels(str(generation)) for generation in range(3)]
_started = [0.0]


def _timed(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        _BY_GENERATION[info["generation"]].observe(time.perf_counter() - _started[0])


def settle() -> int:
    """Collect once, then exempt every surviving object from later collections, and time
    every collection from now on; returns how many objects were exempted. Call it once,
    when start-up is done and before traffic comes: garbage made before it is collected
    first, and objects made after it are collected as usual. Its own collection, before
    traffic, is not timed."""
    gc.collect()
    gc.freeze()
    if _timed not in gc.callbacks:
        gc.callbacks.append(_timed)
    frozen = gc.get_freeze_count()
    FROZEN.set(frozen)
    return frozen
