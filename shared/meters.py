"""Prometheus label children for the message path.

`metric.labels(...)` checks its arguments and takes a lock on every call; on the message
path, where a process moves several labelled metrics per message, that cost more than the
increments themselves. `child` looks each combination up once.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, TypeVar

M = TypeVar("M")

# Far above the label combinations any process has (services x endpoints x outcomes, frame
# types, event types); a bound all the same, so that no unexpected label value can grow it.
KEPT = 2048


@lru_cache(maxsize=KEPT)
def _child(metric: Any, values: tuple[str, ...]) -> Any:
    return metric.labels(*values)


def child(metric: M, *values: str) -> M:
    """`metric.labels(*values)`, remembered. Only for metrics whose children are never
    removed (a removed child kept here would go on counting unseen)."""
    return _child(metric, values)
