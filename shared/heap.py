"""Keeping the garbage collector's full collections off the message path.

A full collection walks every container object the process holds, and a started service
holds 40-90 thousand of them that live as long as it does (modules, classes, compiled
validators, settings). Under load each full collection stopped the event loop for 30-90 ms,
every few seconds: most of the message path's p99 at 2,000-2,500 msg/s
(docs/benchmarks.md). Moving what exists once the service has started out of the
collector's sight leaves later collections only what was made since.
"""

from __future__ import annotations

import gc


def settle() -> int:
    """Collect once, then exempt every surviving object from later collections; returns
    how many were exempted. Call it once, when start-up is done and before traffic comes:
    garbage made before it is collected first, and objects made after it are collected
    as usual."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
