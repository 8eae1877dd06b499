"""The gateway's failure counters (sign-ins, offline messages): shared.counters, in the
`throttle` bucket, each entry living a minute after its last change."""

from __future__ import annotations

from shared.counters import Counters, counter_key

__all__ = ["THROTTLE_WINDOW_S", "Counters", "counter_key"]

# How long a counter lives after its last change.
THROTTLE_WINDOW_S = 60.0
