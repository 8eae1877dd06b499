"""Time comes from one injected object so that tests can run at any moment of the year."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class ShiftedClock:
    """Wall-clock time moved by a fixed amount: the system runs at normal speed as if it
    were another moment of the year (end-to-end tests at 10:00 on a Tuesday, a demo on
    Thanksgiving). Every process given the same shift agrees on the time."""

    def __init__(self, shift_s: float) -> None:
        self.shift = timedelta(seconds=shift_s)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.shift

    def monotonic(self) -> float:
        return time.monotonic()


def clock_for(shift_s: float) -> Clock:
    """The clock a service runs on: the system's, unless configured to run shifted."""
    return ShiftedClock(shift_s) if shift_s else SystemClock()


class FixedClock:
    """A clock that only moves when told to; for tests."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._now = start
        self._mono = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds


def iso(ts: datetime) -> str:
    """ISO 8601 UTC with millisecond precision and a Z suffix, as the protocol asks."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"
