"""Property tests of the coverage resolver, as the state machine has them: for any weekly
hours (windows that may cross midnight), time zones across DST, holiday calendars and
closures, and any span, the timeline routing publishes agrees with the resolver asked
instant by instant, and a chain answers in order."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from services.routing import coverage
from shared.schemas.records import Holidays, HoursWindow, Queue

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ZONES = ("America/Chicago", "America/New_York", "Europe/London", "Australia/Sydney", "UTC")


@st.composite
def windows(draw: st.DrawFn) -> list[HoursWindow]:
    found = []
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        day = draw(st.sampled_from(DAYS))
        opens = draw(st.integers(min_value=0, max_value=23 * 4)) * 15
        closes = draw(st.integers(min_value=1, max_value=24 * 4)) * 15
        found.append(
            HoursWindow(
                day=day,  # type: ignore[arg-type]
                open=f"{opens // 60:02d}:{opens % 60:02d}",
                close=f"{closes // 60:02d}:{closes % 60:02d}" if closes < 1440 else "24:00",
            )
        )
    return found


@st.composite
def schedules(draw: st.DrawFn, name: str) -> coverage.Schedule:
    start = date(2026, 11, 20)
    closures = draw(
        st.lists(st.integers(min_value=0, max_value=20), max_size=3, unique=True).map(
            lambda days: [start + timedelta(days=d) for d in days]
        )
    )
    queue = Queue(
        name=f"demo-{name}",
        institution=name,
        display_name=name,
        hours=draw(windows()),
        holidays=Holidays(calendar="US", covered=draw(st.booleans()), closures=closures),
    )
    return coverage.Schedule.of(queue, draw(st.sampled_from(ZONES)))


# Spans around Thanksgiving, the DST-free end of November and into December.
instants = st.integers(min_value=0, max_value=20 * 24 * 4).map(
    lambda quarter: datetime(2026, 11, 20, tzinfo=UTC) + timedelta(minutes=15 * quarter)
)
spans = st.tuples(instants, st.integers(min_value=1, max_value=4 * 24 * 4)).map(
    lambda pair: (pair[0], pair[0] + timedelta(minutes=15 * pair[1]))
)


def asked_at(chain: list[coverage.Schedule], at: datetime) -> coverage.Choice:
    return coverage.choose([(s.queue, s.closed_reason(at)) for s in chain])


@settings(max_examples=150, deadline=None)
@given(
    chain=st.lists(st.sampled_from(["lib", "backup", "night"]), min_size=1, max_size=3, unique=True)
    .flatmap(lambda names: st.tuples(*(schedules(n) for n in names)))
    .map(list),
    span=spans,
)
def test_the_timeline_covers_the_span_and_agrees_with_every_instant(
    chain: list[coverage.Schedule], span: tuple[datetime, datetime]
) -> None:
    start, end = span
    intervals = coverage.timeline(chain, start, end)
    # Consecutive, covering [start, end), never two alike in a row.
    assert intervals[0].start == start and intervals[-1].end == end
    for before, after in pairwise(intervals):
        assert before.end == after.start
        assert (before.queue, before.reason) != (after.queue, after.reason)
    # Inside each interval, the answer is the interval's at its start, middle and last
    # quarter hour: nothing changes between the boundaries the resolver names.
    for interval in intervals:
        length = interval.end - interval.start
        for at in (
            interval.start,
            interval.start + length / 2,
            max(interval.start, interval.end - timedelta(minutes=1)),
        ):
            choice = asked_at(chain, at)
            assert (choice.queue, choice.reason) == (interval.queue, interval.reason), at


@settings(max_examples=150, deadline=None)
@given(
    home=schedules("lib"),
    backup=schedules("backup"),
    at=instants,
)
def test_a_chain_answers_in_order_and_says_why(
    home: coverage.Schedule, backup: coverage.Schedule, at: datetime
) -> None:
    choice = asked_at([home, backup], at)
    home_closed, backup_closed = home.closed_reason(at), backup.closed_reason(at)
    if home_closed is None:
        assert (choice.queue, choice.reason, choice.skipped) == (home.queue, "hours", ())
    elif backup_closed is None:
        assert choice.queue == backup.queue
        assert choice.reason == f"fallback: {home_closed}"
        assert choice.skipped == (coverage.Skip(home.queue, home_closed),)
    else:
        assert choice.queue is None
        assert choice.reason.startswith("closed: ")
        assert [s.queue for s in choice.skipped] == [home.queue, backup.queue]


@settings(max_examples=100, deadline=None)
@given(schedule=schedules("lib"), at=instants)
def test_a_closed_day_closes_every_instant_of_it(schedule: coverage.Schedule, at: datetime) -> None:
    """A closure or an uncovered holiday closes the queue for the whole local day,
    whatever its hours, and says which."""
    day = at.astimezone(schedule.zone).date()
    whole_day = schedule.day_closed(day)
    if whole_day is not None:
        assert schedule.closed_reason(at) == whole_day
