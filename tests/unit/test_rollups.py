"""The statistics rollups' pure rules: the wait and duration histogram and its error, what a
chat adds to which documents and what a change of its facts moves, how a span is cut into
documents (across DST and half-hour zones), and that no patron data gets in."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.transcripts import domain, rollups
from shared.schemas.chat import Chat, Patron, Sender
from shared.schemas.events import ChatClosed
from shared.schemas.requests import StatsGrouping

ZONES = (
    "UTC",
    "America/Chicago",
    "America/St_Johns",  # -03:30 / -02:30
    "Asia/Kolkata",  # +05:30, no DST
    "Australia/Lord_Howe",  # +10:30 / +11:00: a half-hour DST shift
    "Europe/London",
)
MEMBERS = domain.Members({"hill": "America/Chicago", "night": "UTC"}, frozenset({"night"}))

seconds = st.floats(min_value=0, max_value=200_000, allow_nan=False)


# --- the histogram ---------------------------------------------------------------------------


@given(seconds)
def test_a_bucket_reports_its_values_within_the_stated_error(value: float):
    value = round(value, 3)  # waits and durations are kept to the millisecond
    assert abs(rollups.bucket_value(rollups.bucket(value)) - value) <= rollups.error_bound(value)


@given(seconds, seconds)
def test_buckets_keep_the_order_of_values(a: float, b: float):
    if a <= b:
        assert rollups.bucket(a) <= rollups.bucket(b)


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@settings(max_examples=300)
@given(
    st.lists(seconds.map(lambda v: round(v, 3)), min_size=1, max_size=60), st.sampled_from([50, 90])
)
def test_a_percentile_from_the_histogram_is_within_the_error_of_the_exact_one(
    values: list[float], p: int
):
    histogram = Counter(rollups.bucket(v) for v in values)
    exact = nearest_rank(values, p)
    got = rollups.percentile(histogram, p)
    assert got is not None and abs(got - exact) <= rollups.error_bound(exact)


def test_the_histogram_s_edges():
    assert rollups.bucket(0) == 0 and rollups.bucket_value(0) == 0.05
    assert rollups.bucket(9.999) == 99 and rollups.bucket(10) == 100
    assert rollups.bucket_value(100) == 10.1  # [10 s, 10.2 s)
    assert rollups.percentile({}, 50) is None
    assert (
        rollups.percentile({3: 1, 7: 1}, 50) == 0.35
        and rollups.percentile({3: 1, 7: 1}, 90) == 0.75
    )


# --- what a chat counts with ----------------------------------------------------------------


def stored_chat(**changes: Any) -> dict[str, Any]:
    """An ended chat's stored document, with a patron who must not reach statistics."""
    chat = Chat(
        id="c1",
        queue="demo-night",
        institution="hill",
        state="closed",
        owner="demo-night-nina",
        operators=["demo-hill-ann", "demo-night-nina"],
        created_at="2026-11-01T05:30:00.000Z",  # 00:30 in Chicago, Sunday
        claimed_at="2026-11-01T05:30:42.500Z",
        closed_at="2026-11-01T05:45:00.000Z",
        tags=["citation", "ill"],
        patron=Patron(
            guest_id="guest-secret",
            name="Patricia Secret",
            email="patricia@secret.example",
            page="https://library.example/secret-page",
        ),
        question="Secret question about my thesis",
        answered_institution="night",
        answered_queue="demo-night",
        **changes,
    )
    by = Sender(kind="operator", name="Nina", id="demo-night-nina")
    event = ChatClosed(id="c1.9", n=9, ts=chat.closed_at or "", chat=chat, by=by, reason="done")
    doc = domain.chat_document(event, MEMBERS)
    doc["text"], doc["messages"] = "Secret question about my thesis\nAnswer", 2
    return doc


def test_a_chat_s_facts_and_slots_hold_no_patron_data():
    doc = stored_chat()
    made = rollups.facts(doc, MEMBERS.zones, None)
    assert made["slot"] == ["2026-11-01", "sun 00"]  # Chicago
    assert made["answered_slot"] == ["2026-11-01", "sun 05"]  # the backup service's UTC
    assert made["answered_by"] == "backup" and made["wait_s"] == 42.5 and made["messages"] == 2
    everything = repr(made) + repr(
        [rollups.new_document(i, d) for i, d in rollups.contribution("c1", "hill", made).items()]
    )
    for secret in ("secret", "Secret", "guest-secret", "patricia", "thesis"):
        assert secret not in everything


def test_a_chat_counts_for_its_library_and_for_the_institution_that_answered_it():
    made = rollups.facts(stored_chat(), MEMBERS.zones, None)
    deltas = rollups.contribution("c1", "hill", made)
    home = deltas["hill|2026-11-01|all|"]
    assert home.inc["chats"] == 1 and home.inc["answered_by_backup"] == 1
    assert home.inc["messages"] == 2 and home.inc[f"w{rollups.bucket(42.5)}"] == 1
    assert {"key|operator|demo-hill-ann", "key|operator|demo-night-nina"} <= home.flags
    assert "key|answered|night" in home.flags
    assert deltas["hill|2026-11|tag|ill"].inc["chats"] == 1  # the month too
    assert deltas["hill|2026-11-01|hour|sun 00"].flags == {"id|c1"}
    other = deltas["night|2026-11-01|all|"]
    assert dict(other.inc) == {"answered_for_others": 1}
    assert deltas["night|2026-11-01|hour|sun 05"].flags == {"oid|c1"}
    assert deltas["night|2026-11-01|institution|hill"].inc["answered_for_others"] == 1
    assert not any(d.dim == "answered" for d in deltas.values() if d.institution == "night")


def test_a_chat_counted_before_keeps_its_slots_when_the_zone_changes():
    before = rollups.facts(stored_chat(), MEMBERS.zones, None)
    moved = {"hill": "Asia/Kolkata", "night": "UTC"}
    assert rollups.facts(stored_chat(), moved, before)["slot"] == before["slot"]
    assert rollups.facts(stored_chat(), moved, None)["slot"] == ["2026-11-01", "sun 11"]


facts_strategy = st.fixed_dictionaries(
    {
        "created_ms": st.just(1_700_000_000_000),
        "answered_institution": st.sampled_from([None, "hill", "night", "river"]),
        "answered_by": st.sampled_from([None, "home", "backup", "partner"]),
        "missed": st.booleans(),
        "queue": st.sampled_from(["demo-hill", "demo-night"]),
        "operators": st.lists(st.sampled_from(["a", "b", "c"]), unique=True).map(sorted),
        "tags": st.lists(st.sampled_from(["x", "y", "z"]), unique=True).map(sorted),
        "wait_s": st.one_of(st.none(), seconds),
        "duration_s": st.one_of(st.none(), seconds),
        "messages": st.integers(min_value=0, max_value=40),
        "slot": st.just(["2023-11-14", "tue 22"]),
        "answered_slot": st.just(["2023-11-14", "tue 22"]),
    }
)


@given(st.one_of(st.none(), facts_strategy), facts_strategy)
def test_a_change_moves_the_counts_from_one_set_of_facts_to_the_other(
    before: dict[str, Any] | None, after: dict[str, Any]
):
    counted = rollups.contribution("c1", "hill", before) if before else {}
    totals: rollups.Deltas = {}
    rollups.merge(totals, counted)
    rollups.merge(totals, rollups.change("c1", "hill", before, after))
    wanted = rollups.contribution("c1", "hill", after)
    for made in totals.keys() | wanted.keys():
        got = {k: v for k, v in totals[made].inc.items() if v} if made in totals else {}
        assert got == dict(wanted[made].inc) if made in wanted else got == {}, made
    for made, delta in wanted.items():
        assert delta.flags <= totals[made].flags
    assert rollups.change("c1", "hill", after, after) == {}


def test_figures_from_a_tally_for_a_library_and_for_the_consortium():
    tally = rollups.Tally()
    tally.add({"chats": 4, "answered_by_backup": 1, "answered_by_partners": 1, "missed": 1})
    tally.add({"answered_for_others": 5, "w3": 2, "w7": 1, "d150": 1, "_id": "x", "dim": "all"})
    mine = tally.figures(consortium=False)
    assert (mine.chats, mine.answered_for_others, mine.missed_rate) == (4, 5, 0.25)
    assert (mine.wait_p50_s, mine.wait_p90_s) == (0.35, 0.75)
    assert mine.duration_p50_s == rollups.bucket_value(150)
    assert tally.figures(consortium=True).answered_for_others == 2
    only_helped = rollups.Tally()
    only_helped.add({"answered_for_others": 1})
    assert not only_helped.empty(consortium=False) and only_helped.empty(consortium=True)


# --- a span, cut into documents --------------------------------------------------------------

BASE = datetime(2026, 3, 1, tzinfo=UTC)  # DST starts in March, ends in autumn; a long span
minutes = st.integers(min_value=0, max_value=300 * 24 * 60)


@settings(max_examples=300)
@given(
    st.sampled_from(ZONES),
    minutes,
    st.integers(min_value=1, max_value=80 * 24 * 60),
    st.lists(st.integers(min_value=-3 * 24 * 3600, max_value=90 * 24 * 3600), max_size=40),
    st.sampled_from([None, "day", "hour", "tag"]),
)
def test_a_span_s_documents_count_each_instant_in_it_once_and_none_outside(
    zone: str, begin: int, length: int, offsets: list[int], group_by: StatsGrouping | None
):
    start = BASE + timedelta(minutes=begin)
    end = start + timedelta(minutes=length)
    plan = rollups.plan(zone, start, end, group_by)
    months, days, less = set(plan.months), set(plan.days), set(plan.less_days)
    assert not (group_by == "day" and months)
    for offset in offsets:
        instant = start + timedelta(seconds=offset)
        day, hour = rollups.local_slot(domain.epoch_ms(instant), zone)
        # How many times the instant counts: its month (less its day, or its hour), its
        # day, its hour or its cut hour (added, or taken away from a month read whole).
        ways = int(day[:7] in months) + int(day in days) - int(day in less)
        for part in plan.parts:
            if part.day == day:
                sign = -1 if part.less else 1
                ways += sign * int(hour in part.hours)
                inside = start <= instant < end
                ways += sign * int(hour in part.cut and inside != part.less)
        assert ways == (1 if start <= instant < end else 0), (instant, plan)


def test_a_month_by_day_is_its_days_and_a_year_is_its_months():
    chicago = "America/Chicago"
    october = (datetime(2026, 10, 1, 5, tzinfo=UTC), datetime(2026, 11, 1, 5, tzinfo=UTC))
    by_day = rollups.plan(chicago, *october, "day")
    assert len(by_day.days) == 31 and not by_day.months and not by_day.parts
    assert rollups.plan(chicago, *october, None).months == ["2026-10"]
    year = rollups.plan(
        "UTC", datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), None
    )
    assert len(year.months) == 12 and not year.days and not year.parts
    # A UTC year seen from Chicago is local 31 December 18:00 to 18:00: the six hours of
    # 2025, and December 2026 read whole less its last six hours.
    seen = rollups.plan(
        chicago, datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), None
    )
    assert len(seen.months) == 12 and not seen.days and not seen.less_days
    assert [(p.day, p.hours[0], len(p.hours), p.cut, p.less) for p in seen.parts] == [
        ("2025-12-31", "wed 18", 6, [], False),
        ("2026-12-31", "thu 18", 6, [], True),
    ]
    # Grouped by day, months are never read whole.
    assert not rollups.plan(
        chicago, datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), "day"
    ).months


def test_the_hours_of_days_the_clocks_change():
    chicago = rollups.ZoneInfo("America/Chicago")
    spring = rollups.hours_of(datetime(2026, 3, 8).date(), chicago)
    assert len(spring) == 23 and "sun 02" not in spring
    autumn = rollups.hours_of(datetime(2026, 11, 1).date(), chicago)
    lo, hi = autumn["sun 01"]
    assert len(autumn) == 24 and hi - lo == timedelta(hours=2)
    assert rollups.day_hour_keys("2026-11-01")[0] == "sun 00"
    assert len(rollups.period_keys("2026-11", "hour", [])) == 168
