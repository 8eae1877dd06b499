"""Coverage: whether a queue answers at an instant, and which queue of a chain takes a chat.

Pure: the instant is always an argument. Hours are weekly windows in the queue's time zone
(the institution's unless the queue sets one); every instant is compared in UTC after
zoneinfo has placed the local wall time, so daylight-saving changes move the windows with
the clock on the wall and never by a fixed offset. A holiday of the queue's calendar, or one
of its extra closures, closes it for the whole local day unless it covers holidays.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import holidays

from shared import chains
from shared.schemas.records import Institution, Queue, Widget, calendar_parts

DAY_INDEX = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
MINUTES_PER_DAY = 24 * 60
OUTSIDE_HOURS = "outside hours"
UNSTAFFED = "unstaffed"
OPEN_REASON = "hours"


@cache
def _calendar(name: str) -> holidays.HolidayBase:
    country, subdiv = calendar_parts(name)
    return holidays.country_holidays(country, subdiv=subdiv)


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


@dataclass(frozen=True)
class Schedule:
    """A queue's hours and calendar, ready to resolve. A window's `close` may pass
    midnight: it is then counted in minutes past the start of its opening day."""

    queue: str
    institution: str
    zone: ZoneInfo
    windows: Mapping[int, tuple[tuple[int, int], ...]]
    calendar: str | None
    closures: frozenset[date]

    @classmethod
    def of(cls, queue: Queue, institution_zone: str) -> Schedule:
        windows: dict[int, list[tuple[int, int]]] = {}
        for window in queue.hours:
            start, end = _minutes(window.open), _minutes(window.close)
            if end <= start:
                end += MINUTES_PER_DAY  # runs past midnight into the next day
            windows.setdefault(DAY_INDEX[window.day], []).append((start, end))
        return cls(
            queue=queue.name,
            institution=queue.institution,
            zone=ZoneInfo(queue.timezone or institution_zone),
            windows={day: tuple(sorted(spans)) for day, spans in windows.items()},
            calendar=None if queue.holidays.covered else queue.holidays.calendar,
            closures=frozenset(queue.holidays.closures),
        )

    def _at(self, day: date, minutes: int) -> datetime:
        """The instant of a local wall time, `minutes` after the start of `day`."""
        when = day + timedelta(days=minutes // MINUTES_PER_DAY)
        minute = minutes % MINUTES_PER_DAY
        local = datetime(when.year, when.month, when.day, minute // 60, minute % 60)
        return local.replace(tzinfo=self.zone).astimezone(UTC)

    def _spans(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        for start, end in self.windows.get(day.weekday(), ()):
            yield self._at(day, start), self._at(day, end)

    def day_closed(self, day: date) -> str | None:
        """Why the whole local day is closed (a closure or a holiday), or None."""
        if day in self.closures:
            return f"closure {day.isoformat()}"
        if self.calendar is not None:
            name = _calendar(self.calendar).get(day)
            if name:
                return f"holiday: {name}"
        return None

    def closed_reason(self, at: datetime) -> str | None:
        """None when the queue is open at `at`; otherwise why it is not."""
        day = at.astimezone(self.zone).date()
        whole_day = self.day_closed(day)
        if whole_day:
            return whole_day
        for opening_day in (day - timedelta(days=1), day):
            for start, end in self._spans(opening_day):
                if start <= at < end:
                    return None
        return OUTSIDE_HOURS

    def boundaries(self, start: datetime, end: datetime) -> set[datetime]:
        """Every instant strictly inside (start, end) at which the answer may change:
        window edges and local midnights (where a holiday begins or ends)."""
        first = start.astimezone(self.zone).date() - timedelta(days=1)
        last = end.astimezone(self.zone).date() + timedelta(days=1)
        found: set[datetime] = set()
        day = first
        while day <= last:
            found.add(self._at(day, 0))
            for opens, closes in self._spans(day):
                found.update((opens, closes))
            day += timedelta(days=1)
        return {instant for instant in found if start < instant < end}


@dataclass(frozen=True)
class Skip:
    queue: str
    reason: str


@dataclass(frozen=True)
class Choice:
    """Which queue takes the chat (None: nobody), why, and the queues passed over."""

    queue: str | None
    reason: str
    skipped: tuple[Skip, ...] = ()


def _specific(reason: str) -> bool:
    return reason not in (OUTSIDE_HOURS, UNSTAFFED)


def cause(reason: str) -> str:
    """A bounded label for metrics: the kind of reason, never a holiday's name or a date."""
    for prefix, label in (
        ("holiday", "holiday"),
        ("closure", "closure"),
        (UNSTAFFED, "unstaffed"),
        (OUTSIDE_HOURS, "outside_hours"),
    ):
        if reason.startswith(prefix):
            return label
    return "other"


def nobody_reason(skipped: Sequence[Skip]) -> str:
    """Why no queue answers, naming the most telling cause: a holiday or closure first,
    then nobody being there, then the hours."""
    reasons = [skip.reason for skip in skipped]
    specific = next((r for r in reasons if _specific(r)), None)
    if specific:
        return f"closed: {specific}"
    if UNSTAFFED in reasons:
        return UNSTAFFED
    return f"closed: {OUTSIDE_HOURS}"


def choose(tried: Sequence[tuple[str, str | None]]) -> Choice:
    """The first queue with no reason against it takes the chat. `tried` lists queues of
    the chain in order with why each cannot (None: it can), up to the first that can."""
    skipped: list[Skip] = []
    for name, why_not in tried:
        if why_not is None:
            reason = OPEN_REASON if not skipped else f"fallback: {skipped[0].reason}"
            return Choice(name, reason, tuple(skipped))
        skipped.append(Skip(name, why_not))
    return Choice(None, nobody_reason(skipped), tuple(skipped))


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime
    queue: str | None
    reason: str


def timeline(chain: Sequence[Schedule], start: datetime, end: datetime) -> list[Interval]:
    """Who answers from `start` to `end` by hours and calendars alone: consecutive
    intervals covering the whole span, each as long as the answer stays the same."""
    points = sorted({start}.union(*(s.boundaries(start, end) for s in chain)))
    intervals: list[Interval] = []
    for i, point in enumerate(points):
        until = points[i + 1] if i + 1 < len(points) else end
        choice = choose([(s.queue, s.closed_reason(point)) for s in chain])
        last = intervals[-1] if intervals else None
        if last and (last.queue, last.reason) == (choice.queue, choice.reason):
            intervals[-1] = Interval(last.start, until, last.queue, last.reason)
        else:
            intervals.append(Interval(point, until, choice.queue, choice.reason))
    return intervals


@dataclass
class Directory:
    """Queues, institutions and widgets as one consistent snapshot of the configuration."""

    queues: dict[str, Queue] = field(default_factory=dict)
    institutions: dict[str, Institution] = field(default_factory=dict)
    widgets: dict[str, Widget] = field(default_factory=dict)
    _schedules: dict[str, Schedule] = field(default_factory=dict)

    def schedule(self, name: str) -> Schedule:
        found = self._schedules.get(name)
        if found is None:
            queue = self.queues[name]
            home = self.institutions.get(queue.institution)
            found = Schedule.of(queue, home.timezone if home else "UTC")
            self._schedules[name] = found
        return found

    def chain(self, name: str) -> list[str]:
        """The queue and every queue it may hand a chat to, in the order they are tried."""
        return chains.chain(name, {q.name: q.fallback for q in self.queues.values()})

    def next_change(self, after: datetime, within: timedelta) -> datetime | None:
        """The first instant after `after` (and within `within`) at which some queue opens,
        closes, or starts or ends a holiday."""
        end = after + within
        edges = [
            min(found)
            for name in self.queues
            if (found := self.schedule(name).boundaries(after, end))
        ]
        return min(edges, default=None)

    def current(self, chain: Sequence[str]) -> list[str]:
        """A waiting chat's chain as configured now: its home queue's (a coordinator may
        have switched rollover to the backup service off or on since it started); the one
        it started with if that queue is gone."""
        if not chain or chain[0] not in self.queues:
            return list(chain)
        return self.chain(chain[0])


def parse_instant(text: str, zone: ZoneInfo) -> datetime:
    """A span edge as a coordinator writes it: a date (local midnight), a local time, or an
    instant with its offset. Raises ValueError for anything else."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date or date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)
