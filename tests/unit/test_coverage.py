"""The coverage resolver against a real consortium's procedure.

Libraries cover Mon-Fri 8am-5pm; the backup service covers Mon-Fri 5pm-8am, Sat 10am-10pm
and Sun 10am to Monday 8am; on a federal holiday there is no service for that whole day
unless a queue pays for holiday coverage. The library is in America/Chicago.
"""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from services.routing import coverage
from shared import chains
from shared.schemas.records import Holidays, HoursWindow, Institution, Queue

CHICAGO = ZoneInfo("America/Chicago")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def window(day: str, open_: str, close: str) -> HoursWindow:
    return HoursWindow(day=day, open=open_, close=close)  # type: ignore[arg-type]


LIBRARY = Queue(
    name="demo-lib",
    institution="lib",
    display_name="Library",
    hours=[window(d, "08:00", "17:00") for d in WEEKDAYS],
    holidays=Holidays(calendar="US", closures=[datetime(2026, 12, 24).date()]),
    fallback=["demo-backup"],
)
BACKUP = Queue(
    name="demo-backup",
    institution="backup",
    display_name="Backup",
    hours=[
        *(window(d, "17:00", "08:00") for d in WEEKDAYS),
        window("sat", "10:00", "22:00"),
        window("sun", "10:00", "08:00"),
    ],
)
# A library that pays for holiday coverage: open Saturdays, holidays included.
COVERED = Queue(
    name="demo-lib-weekend",
    institution="lib",
    display_name="Weekend desk",
    hours=[window("sat", "09:00", "13:00")],
    holidays=Holidays(calendar="US", covered=True),
)


def directory(*queues: Queue) -> coverage.Directory:
    return coverage.Directory(
        queues={q.name: q for q in queues},
        institutions={
            i: Institution(name=i, institution=i, display_name=i, timezone="America/Chicago")
            for i in ("lib", "backup")
        },
    )


CONSORTIUM = directory(LIBRARY, BACKUP, COVERED)


def who(local: datetime | None = None, *, utc: datetime | None = None) -> coverage.Choice:
    """Who takes a chat of the library's widget at an instant, everyone being staffed."""
    instant = utc if utc is not None else local.replace(tzinfo=CHICAGO)  # type: ignore[union-attr]
    chain = CONSORTIUM.chain("demo-lib")
    return coverage.choose([(q, CONSORTIUM.schedule(q).closed_reason(instant)) for q in chain])


@pytest.mark.parametrize(
    ("local", "queue", "reason"),
    [
        # Tuesday 17 November 2026
        (datetime(2026, 11, 17, 10, 0), "demo-lib", "hours"),
        (datetime(2026, 11, 17, 7, 59), "demo-backup", "fallback: outside hours"),
        (datetime(2026, 11, 17, 8, 0), "demo-lib", "hours"),
        (datetime(2026, 11, 17, 16, 59), "demo-lib", "hours"),
        (datetime(2026, 11, 17, 17, 0), "demo-backup", "fallback: outside hours"),
        (datetime(2026, 11, 17, 17, 30), "demo-backup", "fallback: outside hours"),
        (datetime(2026, 11, 17, 23, 59), "demo-backup", "fallback: outside hours"),
        # Friday night runs into Saturday morning; then a gap before 10am.
        (datetime(2026, 11, 21, 7, 59), "demo-backup", "fallback: outside hours"),
        (datetime(2026, 11, 21, 9, 0), None, "closed: outside hours"),
        (datetime(2026, 11, 21, 10, 0), "demo-backup", "fallback: outside hours"),
        (datetime(2026, 11, 21, 21, 59), "demo-backup", "fallback: outside hours"),
        (datetime(2026, 11, 21, 23, 0), None, "closed: outside hours"),
        # Sunday from 10am through to Monday 8am.
        (datetime(2026, 11, 22, 9, 59), None, "closed: outside hours"),
        (datetime(2026, 11, 22, 11, 0), "demo-backup", "fallback: outside hours"),
        (datetime(2026, 11, 23, 3, 0), "demo-backup", "fallback: outside hours"),
        (datetime(2026, 11, 23, 8, 0), "demo-lib", "hours"),
        # Thanksgiving: nobody, all day, for both; the nights either side are served.
        (datetime(2026, 11, 25, 23, 59), "demo-backup", "fallback: outside hours"),
        (datetime(2026, 11, 26, 0, 0), None, "closed: holiday: Thanksgiving Day"),
        (datetime(2026, 11, 26, 11, 0), None, "closed: holiday: Thanksgiving Day"),
        (datetime(2026, 11, 26, 18, 0), None, "closed: holiday: Thanksgiving Day"),
        (datetime(2026, 11, 27, 0, 0), "demo-backup", "fallback: outside hours"),
        (datetime(2026, 11, 27, 10, 0), "demo-lib", "hours"),
        # An extra closure of the library: the day is closed; the backup's evening is not.
        (datetime(2026, 12, 24, 10, 0), None, "closed: closure 2026-12-24"),
        (datetime(2026, 12, 24, 18, 0), "demo-backup", "fallback: closure 2026-12-24"),
        # Independence Day 2026 is a Saturday, observed on Friday the 3rd.
        (datetime(2026, 7, 3, 10, 0), None, "closed: holiday: Independence Day (observed)"),
        (datetime(2026, 7, 4, 11, 0), None, "closed: holiday: Independence Day"),
    ],
)
def test_consortium_schedule(local: datetime, queue: str | None, reason: str):
    choice = who(local)
    assert (choice.queue, choice.reason) == (queue, reason)


@pytest.mark.parametrize(
    ("instant", "queue"),
    [
        # 8 March 2026, a Sunday: clocks go from 2:00 CST to 3:00 CDT. The backup opens at
        # 10:00 on the wall, which is 15:00 UTC that day and 16:00 UTC the week before.
        (datetime(2026, 3, 1, 15, 59, tzinfo=UTC), None),
        (datetime(2026, 3, 1, 16, 0, tzinfo=UTC), "demo-backup"),
        (datetime(2026, 3, 8, 14, 59, tzinfo=UTC), None),
        (datetime(2026, 3, 8, 15, 0, tzinfo=UTC), "demo-backup"),
        # Monday 9 March: the library opens at 8:00 CDT = 13:00 UTC.
        (datetime(2026, 3, 9, 12, 59, tzinfo=UTC), "demo-backup"),
        (datetime(2026, 3, 9, 13, 0, tzinfo=UTC), "demo-lib"),
        # Saturday 31 October closes at 22:00 CDT = 03:00 UTC on 1 November.
        (datetime(2026, 11, 1, 2, 59, tzinfo=UTC), "demo-backup"),
        (datetime(2026, 11, 1, 3, 0, tzinfo=UTC), None),
        # 1 November 2026, a Sunday: clocks go back from 2:00 CDT to 1:00 CST. The backup
        # opens at 10:00 CST = 16:00 UTC (15:00 UTC the week before).
        (datetime(2026, 10, 25, 15, 0, tzinfo=UTC), "demo-backup"),
        (datetime(2026, 11, 1, 15, 59, tzinfo=UTC), None),
        (datetime(2026, 11, 1, 16, 0, tzinfo=UTC), "demo-backup"),
        # Monday 2 November: the library opens at 8:00 CST = 14:00 UTC.
        (datetime(2026, 11, 2, 13, 59, tzinfo=UTC), "demo-backup"),
        (datetime(2026, 11, 2, 14, 0, tzinfo=UTC), "demo-lib"),
    ],
)
def test_daylight_saving_days_move_the_window_edges(instant: datetime, queue: str | None):
    assert who(utc=instant).queue == queue


def test_a_queue_that_covers_holidays_is_open_on_july_4():
    weekend = CONSORTIUM.schedule("demo-lib-weekend")
    assert weekend.closed_reason(datetime(2026, 7, 4, 11, 0, tzinfo=CHICAGO)) is None
    assert weekend.closed_reason(datetime(2026, 7, 4, 14, 0, tzinfo=CHICAGO)) == "outside hours"
    uncovered = coverage.Schedule.of(
        COVERED.model_copy(update={"holidays": Holidays(calendar="US")}), "America/Chicago"
    )
    assert uncovered.closed_reason(datetime(2026, 7, 4, 11, 0, tzinfo=CHICAGO)) == (
        "holiday: Independence Day"
    )


def test_windows_past_midnight_and_to_24_00():
    queue = Queue(
        name="demo-night",
        institution="lib",
        display_name="Night",
        timezone="America/New_York",
        hours=[window("fri", "22:00", "02:00"), window("sun", "00:00", "24:00")],
        holidays=Holidays(covered=True),
    )
    night = coverage.Schedule.of(queue, "America/Chicago")
    ny = ZoneInfo("America/New_York")
    assert night.closed_reason(datetime(2026, 11, 20, 23, 0, tzinfo=ny)) is None
    assert night.closed_reason(datetime(2026, 11, 21, 1, 59, tzinfo=ny)) is None
    assert night.closed_reason(datetime(2026, 11, 21, 2, 0, tzinfo=ny)) == "outside hours"
    assert night.closed_reason(datetime(2026, 11, 22, 0, 0, tzinfo=ny)) is None
    assert night.closed_reason(datetime(2026, 11, 22, 23, 59, tzinfo=ny)) is None
    assert night.closed_reason(datetime(2026, 11, 23, 0, 0, tzinfo=ny)) == "outside hours"


def test_unstaffed_queues_are_passed_over_and_named():
    choice = coverage.choose([("demo-lib", "unstaffed"), ("demo-backup", None)])
    assert choice.queue == "demo-backup" and choice.reason == "fallback: unstaffed"
    assert choice.skipped == (coverage.Skip("demo-lib", "unstaffed"),)
    nobody = coverage.choose([("demo-lib", "unstaffed"), ("demo-backup", "outside hours")])
    assert nobody.queue is None and nobody.reason == "unstaffed"
    assert coverage.cause("holiday: Thanksgiving Day") == "holiday"
    assert coverage.cause("closure 2026-12-24") == "closure"


def test_thanksgiving_week_timeline_for_a_coordinator():
    start = datetime(2026, 11, 23, 0, 0, tzinfo=CHICAGO)
    end = datetime(2026, 11, 30, 0, 0, tzinfo=CHICAGO)
    chain = [CONSORTIUM.schedule(q) for q in CONSORTIUM.chain("demo-lib")]
    got = [
        (i.start.astimezone(CHICAGO).strftime("%a %d %H:%M"), i.queue, i.reason)
        for i in coverage.timeline(chain, start, end)
    ]
    backup, lib = "demo-backup", "demo-lib"
    fallback, hours = "fallback: outside hours", "hours"
    assert got == [
        ("Mon 23 00:00", backup, fallback),
        ("Mon 23 08:00", lib, hours),
        ("Mon 23 17:00", backup, fallback),
        ("Tue 24 08:00", lib, hours),
        ("Tue 24 17:00", backup, fallback),
        ("Wed 25 08:00", lib, hours),
        ("Wed 25 17:00", backup, fallback),
        ("Thu 26 00:00", None, "closed: holiday: Thanksgiving Day"),
        ("Fri 27 00:00", backup, fallback),
        ("Fri 27 08:00", lib, hours),
        ("Fri 27 17:00", backup, fallback),
        ("Sat 28 08:00", None, "closed: outside hours"),
        ("Sat 28 10:00", backup, fallback),
        ("Sat 28 22:00", None, "closed: outside hours"),
        ("Sun 29 10:00", backup, fallback),
    ]
    intervals = coverage.timeline(chain, start, end)
    assert intervals[0].start == start and intervals[-1].end == end
    assert all(a.end == b.start for a, b in pairwise(intervals))


def test_chains_follow_fallbacks_in_order_and_find_cycles():
    links = {"a": ["b", "c"], "b": ["d"], "c": [], "d": []}
    assert chains.chain("a", links) == ["a", "b", "d", "c"]
    assert chains.find_cycle("a", links) is None
    assert chains.find_cycle("a", {**links, "d": ["a"]}) == ["a", "b", "d", "a"]
    assert chains.chain("a", {**links, "d": ["a"]}) == ["a", "b", "d", "c"]


def test_a_waiting_chat_follows_its_home_queues_chain_as_configured_now():
    assert CONSORTIUM.current(["demo-lib", "demo-backup"]) == ["demo-lib", "demo-backup"]
    # The coordinator switched the library's rollover to the backup service off.
    switched_off = directory(LIBRARY.model_copy(update={"fallback": []}), BACKUP)
    assert switched_off.current(["demo-lib", "demo-backup"]) == ["demo-lib"]
    # A home queue deleted meanwhile: the chain the chat started with stands.
    assert directory(BACKUP).current(["demo-lib", "demo-backup"]) == ["demo-lib", "demo-backup"]
    assert CONSORTIUM.current([]) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"hours": [{"day": "funday", "open": "08:00", "close": "17:00"}]}, "day"),
        ({"hours": [{"day": "mon", "open": "8am", "close": "17:00"}]}, "open"),
        ({"hours": [{"day": "mon", "open": "08:00", "close": "24:30"}]}, "close"),
        ({"timezone": "America/Springfield"}, "timezone"),
        ({"holidays": {"calendar": "XX"}}, "calendar"),
        ({"holidays": {"calendar": "US-ZZ"}}, "calendar"),
        ({"fallback": ["demo-lib"]}, "fallback"),
        ({"fallback": ["Not A Queue"]}, "fallback"),
    ],
)
def test_bad_hours_are_refused_naming_the_field(change: dict[str, object], field: str):
    with pytest.raises(ValidationError) as refused:
        Queue.model_validate({**LIBRARY.model_dump(mode="json"), **change})
    assert field in str(refused.value)


def test_a_state_holiday_calendar_is_accepted():
    texas = Holidays(calendar="US-TX")
    queue = LIBRARY.model_copy(update={"holidays": texas})
    day = coverage.Schedule.of(queue, "America/Chicago").day_closed(datetime(2026, 3, 2).date())
    assert day == "holiday: Texas Independence Day"
