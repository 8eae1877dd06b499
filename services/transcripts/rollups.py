"""Statistics rollups: what each ended chat adds to its institutions' counters, how a span
of time is read back from them, and the figures they make. Pure: no I/O; instants and
time zones are always arguments.

A chat counts for its library (the home side: `chats`, who answered, `missed`, `messages`,
its wait and duration) and, when another institution answered it, for that one too (the
other side: `answered_for_others`). Each side adds to one document per (institution,
period, dimension, key):

- period: the institution's local day (`2026-10-05`) and its month (`2026-10`), in the
  institution's time zone when the chat was first counted;
- dimension: `all` (key ""), `hour` (`mon 09`, the local hour of the week), `queue`,
  `operator` (each who held it), `tag` (each), `institution` (the patron's library),
  `answered` (the institution that answered it; home side only).

Every document holds the same figures (`COUNTERS`, and a histogram of waits `w<bucket>` and
of durations `d<bucket>`), so any of them reads as a `StatsFigures`. Every field is a
top-level name (the embedded server mishandles dotted paths and arrays in upserts), and
sets are fields set to 1: a period's `all` document names the keys present under each
dimension (`key|<dimension>|<key>`), so that a reader names every document it needs by
`_id`; a day's `hour` documents name the chats counted in that hour (`id|<chat>` for the
home side, `oid|<chat>` for the other), so that a span that starts or ends inside an hour
counts those chats one by one from their ledger entries (`facts`).

Waits and durations are kept as histograms, so percentiles are those of the bucket that
holds the nearest-rank value: buckets are 0.1 s wide below 10 s (the value reported is the
bucket's middle: within 0.05 s of the exact one) and 2 % wide from 10 s up (within 1 %).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from shared.schemas.requests import StatsFigures, StatsGrouping

Document = dict[str, Any]
Side = Literal["home", "other"]

# --- waits and durations: a fixed histogram --------------------------------------------------

LINEAR_LIMIT_MS = 10_000  # below 10 s: buckets of 0.1 s
LINEAR_STEP_MS = 100
LINEAR_BUCKETS = LINEAR_LIMIT_MS // LINEAR_STEP_MS
RATIO = 1.02  # from 10 s up: each bucket 2 % wider than the one before


def _lower_ms(index: int) -> float:
    """Where bucket `index` starts, in milliseconds."""
    if index < LINEAR_BUCKETS:
        return float(index * LINEAR_STEP_MS)
    return LINEAR_LIMIT_MS * RATIO ** (index - LINEAR_BUCKETS)


def bucket(seconds: float) -> int:
    """The histogram bucket of a wait or duration (counted to the millisecond)."""
    ms = max(0, round(seconds * 1000))
    if ms < LINEAR_LIMIT_MS:
        return ms // LINEAR_STEP_MS
    index = LINEAR_BUCKETS + int(math.log(ms / LINEAR_LIMIT_MS) / math.log(RATIO))
    # The logarithm may land one off at an edge: settle on the bucket whose bounds hold it.
    while ms < _lower_ms(index):
        index -= 1
    while ms >= _lower_ms(index + 1):
        index += 1
    return index


def bucket_value(index: int) -> float:
    """What a bucket reports: its middle, to the millisecond."""
    return round((_lower_ms(index) + _lower_ms(index + 1)) / 2000, 3)


def error_bound(seconds: float) -> float:
    """How far a percentile from the histogram may be from the exact nearest-rank value
    `seconds`: half a bucket (0.05 s below 10 s, 1 % above), and the rounding to the
    millisecond."""
    half = LINEAR_STEP_MS / 2000 if seconds < LINEAR_LIMIT_MS / 1000 else seconds * (RATIO - 1) / 2
    return half + 0.0005 + 1e-9


def percentile(histogram: Mapping[int, int], p: float) -> float | None:
    """Nearest rank over the histogram: the bucket of the smallest value with at least p %
    of the values at or below it."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(p / 100 * total))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return bucket_value(index)
    return bucket_value(max(histogram))  # pragma: no cover - counts add up to the total


# --- the facts a chat counts with ------------------------------------------------------------

# What statistics read of a stored chat (see `domain.chat_document`): nothing of its patron.
FACT_FIELDS = (
    "_id",
    "institution",
    "state",
    "created_ms",
    "answered_institution",
    "answered_by",
    "queue",
    "operators",
    "tags",
    "wait_s",
    "duration_s",
    "messages",
)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def hour_key(local: datetime) -> str:
    """The hour of the week a local time falls in, as statistics group by it: `mon 09`."""
    return f"{WEEKDAYS[local.weekday()]} {local.hour:02d}"


def local_slot(created_ms: int, zone: str) -> list[str]:
    """The local day and hour of the week of an instant in a time zone."""
    local = datetime.fromtimestamp(created_ms / 1000, UTC).astimezone(ZoneInfo(zone))
    return [local.date().isoformat(), hour_key(local)]


def facts(doc: Mapping[str, Any], zones: Mapping[str, str], kept: Document | None) -> Document:
    """What an ended chat counts with, from its stored document: the figures, the keys it
    groups under, and the local slot (day, hour of the week) of each side. A chat counted
    before (`kept`: its facts as counted) keeps its slots, so that it stays on the day it
    was counted under even if its library's time zone changed since."""
    home = str(doc["institution"])
    answered = doc.get("answered_institution")
    made: Document = {
        "created_ms": int(doc["created_ms"]),
        "answered_institution": answered,
        "answered_by": doc.get("answered_by"),
        "missed": doc.get("state") == "missed",
        "queue": doc.get("queue"),
        "operators": sorted(set(doc.get("operators") or [])),
        "tags": sorted(set(doc.get("tags") or [])),
        "wait_s": doc.get("wait_s"),
        "duration_s": doc.get("duration_s"),
        "messages": int(doc.get("messages") or 0),
    }
    return with_slots(made, home, zones, kept)


def with_slots(
    made: Document, home: str, zones: Mapping[str, str], kept: Document | None
) -> Document:
    """`made` with the local slot of each side: `kept`'s where it has them, else in the
    time zones as they are now."""
    answered = made.get("answered_institution")
    slot = (kept or {}).get("slot") or local_slot(made["created_ms"], zones.get(home, "UTC"))
    other = None
    if answered and answered != home:
        other = (kept or {}).get("answered_slot") or local_slot(
            made["created_ms"], zones.get(answered, "UTC")
        )
    return {**made, "slot": list(slot), "answered_slot": list(other) if other else None}


def other_side(home: str, made: Mapping[str, Any]) -> str | None:
    """The institution besides the patron's library that a chat counts for: the one that
    answered it, if not the library itself."""
    answered = made.get("answered_institution")
    return str(answered) if answered and answered != home else None


ANSWERED_FIGURE = {
    "home": "answered_at_home",
    "backup": "answered_by_backup",
    "partner": "answered_by_partners",
}


def side_counters(made: Mapping[str, Any], side: Side) -> dict[str, int]:
    """What one side of a chat adds to each document it counts in."""
    if side == "other":
        return {"answered_for_others": 1}
    counts = {"chats": 1}
    figure = ANSWERED_FIGURE.get(str(made.get("answered_by")))
    if figure is not None:
        counts[figure] = 1
    if made.get("missed"):
        counts["missed"] = 1
    if made.get("messages"):
        counts["messages"] = int(made["messages"])
    if made.get("wait_s") is not None:
        counts[f"w{bucket(made['wait_s'])}"] = 1
    if made.get("duration_s") is not None:
        counts[f"d{bucket(made['duration_s'])}"] = 1
    return counts


def side_keys(home: str, made: Mapping[str, Any], side: Side) -> dict[str, list[str]]:
    """The keys one side of a chat groups under, by dimension (besides `all`)."""
    slot = made["slot"] if side == "home" else made["answered_slot"]
    keys: dict[str, list[str]] = {
        "hour": [slot[1]],
        "queue": [made["queue"]] if made.get("queue") else [],
        "operator": list(made.get("operators") or []),
        "tag": list(made.get("tags") or []),
        "institution": [home],
    }
    if side == "home":
        answered = made.get("answered_institution")
        keys["answered"] = [answered] if answered else []
    return keys


# --- the documents a chat adds to ------------------------------------------------------------

LISTED = ("queue", "operator", "tag", "institution", "answered")
COUNTERS = (
    "chats",
    "answered_at_home",
    "answered_by_backup",
    "answered_by_partners",
    "answered_for_others",
    "missed",
    "messages",
)


def doc_id(institution: str, period: str, dim: str, key: str = "") -> str:
    return f"{institution}|{period}|{dim}|{key}"


def key_flag(dim: str, key: str) -> str:
    return f"key|{dim}|{key}"


def listed_keys(doc: Mapping[str, Any], dim: str) -> list[str]:
    """The keys a period's `all` document names under a dimension."""
    prefix = key_flag(dim, "")
    return sorted(name[len(prefix) :] for name in doc if name.startswith(prefix))


def hour_chats(doc: Mapping[str, Any], side: Side) -> list[str]:
    """The chats an hour document counts, of one side."""
    prefix = "id|" if side == "home" else "oid|"
    return [name[len(prefix) :] for name in doc if name.startswith(prefix)]


@dataclass
class Delta:
    """A change to one rollup document: counters to add, and flags (set members) to set."""

    institution: str
    period: str
    dim: str
    key: str
    inc: Counter[str] = field(default_factory=Counter)
    flags: set[str] = field(default_factory=set)

    def empty(self) -> bool:
        return not any(self.inc.values()) and not self.flags


Deltas = dict[str, Delta]


def _touch(deltas: Deltas, institution: str, period: str, dim: str, key: str) -> Delta:
    made = doc_id(institution, period, dim, key)
    if made not in deltas:
        deltas[made] = Delta(institution, period, dim, key)
    return deltas[made]


def contribution(chat_id: str, home: str, made: Mapping[str, Any]) -> Deltas:
    """Everything a chat with these facts adds: each side, by day and by month."""
    deltas: Deltas = {}
    sides: list[tuple[Side, str, list[str]]] = [("home", home, made["slot"])]
    answerer = other_side(home, made)
    if answerer is not None:
        sides.append(("other", answerer, made["answered_slot"]))
    for side, institution, (day, _) in sides:
        counts = side_counters(made, side)
        keys = side_keys(home, made, side)
        for period in (day, day[:7]):
            total = _touch(deltas, institution, period, "all", "")
            total.inc.update(counts)
            for dim, listed in keys.items():
                for key in listed:
                    _touch(deltas, institution, period, dim, key).inc.update(counts)
                if dim in LISTED:
                    total.flags.update(key_flag(dim, key) for key in listed)
        hour = _touch(deltas, institution, day, "hour", keys["hour"][0])
        hour.flags.add(f"id|{chat_id}" if side == "home" else f"oid|{chat_id}")
    return deltas


def difference(before: Deltas, after: Deltas) -> Deltas:
    """What turns `before` into `after` (flags are only ever set: those `after` adds)."""
    changed: Deltas = {}
    for made in sorted(before.keys() | after.keys()):
        old, new = before.get(made), after.get(made)
        shape = new or old
        assert shape is not None
        delta = Delta(shape.institution, shape.period, shape.dim, shape.key)
        delta.inc.update(new.inc if new else {})
        delta.inc.subtract(old.inc if old else {})
        delta.inc = Counter({k: v for k, v in delta.inc.items() if v})
        delta.flags = (new.flags if new else set()) - (old.flags if old else set())
        if not delta.empty():
            changed[made] = delta
    return changed


def change(chat_id: str, home: str, before: Document | None, after: Document | None) -> Deltas:
    """What moving a chat from counted with `before` to `after` changes (None: nothing)."""
    old = contribution(chat_id, home, before) if before else {}
    new = contribution(chat_id, home, after) if after else {}
    return difference(old, new)


def merge(into: Deltas, more: Deltas) -> None:
    for made, delta in more.items():
        mine = into.get(made)
        if mine is None:
            into[made] = Delta(
                delta.institution,
                delta.period,
                delta.dim,
                delta.key,
                Counter(delta.inc),
                set(delta.flags),
            )
            continue
        mine.inc.update(delta.inc)
        mine.flags.update(delta.flags)


def new_document(made: str, delta: Delta) -> Document:
    """A rollup document that holds only `delta` (for a rebuild)."""
    doc: Document = {
        "_id": made,
        "institution": delta.institution,
        "period": delta.period,
        "dim": delta.dim,
        "key": delta.key,
    }
    doc.update({k: v for k, v in delta.inc.items() if v})
    doc.update(dict.fromkeys(delta.flags, 1))
    return doc


# --- reading: tallies and figures ------------------------------------------------------------


@dataclass
class Tally:
    """Rollup documents (or a side's counters) added up field by field, and read as
    figures at the end. Adding is a plain sum of every integer field, flags included,
    which `figures` then ignores: reading a year of documents is mostly this loop."""

    fields: dict[str, int] = field(default_factory=dict)

    def add(self, doc: Mapping[str, Any], sign: int = 1) -> None:
        """Add a rollup document or a side's counters (`sign` -1: take them away)."""
        acc, get = self.fields, self.fields.get
        for name, value in doc.items():
            if type(value) is int:
                acc[name] = get(name, 0) + sign * value

    def merge(self, other: Tally) -> None:
        self.add(other.fields)

    def count(self, name: str) -> int:
        return self.fields.get(name, 0)

    def histograms(self) -> tuple[dict[int, int], dict[int, int]]:
        waits: dict[int, int] = {}
        durations: dict[int, int] = {}
        for name, value in self.fields.items():
            if value and name[:1] in ("w", "d") and name[1:].isdigit():
                (waits if name[0] == "w" else durations)[int(name[1:])] = value
        return waits, durations

    def empty(self, consortium: bool) -> bool:
        """Nothing to show: no chat of the library's (of any, for the consortium), and
        none it answered for others."""
        if consortium:
            return self.count("chats") == 0
        return self.count("chats") == 0 and self.count("answered_for_others") == 0

    def figures(self, consortium: bool) -> StatsFigures:
        """The figures; for the consortium, the chats answered for others are those that
        another institution than the library answered (by backup, by partners)."""
        c = self.count
        chats, missed = c("chats"), c("missed")
        others = c("answered_for_others")
        if consortium:
            others = c("answered_by_backup") + c("answered_by_partners")
        waits, durations = self.histograms()
        return StatsFigures(
            chats=chats,
            answered_at_home=c("answered_at_home"),
            answered_by_backup=c("answered_by_backup"),
            answered_by_partners=c("answered_by_partners"),
            answered_for_others=others,
            missed=missed,
            missed_rate=round(missed / chats, 4) if chats else 0.0,
            wait_p50_s=percentile(waits, 50),
            wait_p90_s=percentile(waits, 90),
            duration_p50_s=percentile(durations, 50),
            messages=c("messages"),
        )


def side_of(institution: str, home: str, made: Mapping[str, Any]) -> Side | None:
    """Which side of a chat an institution sees (None: neither)."""
    if home == institution:
        return "home"
    return "other" if other_side(home, made) == institution else None


def group_keys(
    home: str, made: Mapping[str, Any], side: Side, group_by: StatsGrouping
) -> list[str]:
    """The groups a side of a chat falls in."""
    if group_by == "day":
        slot = made["slot"] if side == "home" else made["answered_slot"]
        return [slot[0]]
    return side_keys(home, made, side)[group_by]


# --- reading: which documents a span needs --------------------------------------------------

QUARTER = timedelta(minutes=15)


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of a local day (midnight, or the end of a gap that skips it)."""
    candidates = [
        datetime(day.year, day.month, day.day, fold=fold, tzinfo=zone).astimezone(UTC)
        for fold in (0, 1)
    ]
    on_the_day = [c for c in candidates if c.astimezone(zone).date() == day]
    return min(on_the_day or candidates)


def hours_of(day: date, zone: ZoneInfo) -> dict[str, tuple[datetime, datetime]]:
    """Each hour of a local day (by its key, `mon 09`) and the instants it spans: an hour
    the clocks go back over spans two, one they skip is not there. Offsets in use are
    whole quarter hours, so stepping by a quarter of an hour finds every edge."""
    start, end = day_start(day, zone), day_start(day + timedelta(days=1), zone)
    spans: dict[str, tuple[datetime, datetime]] = {}
    instant = start
    while instant < end:
        key = hour_key(instant.astimezone(zone))
        first, _ = spans.get(key, (instant, instant))
        spans[key] = (first, instant + QUARTER)
        instant += QUARTER
    return spans


@dataclass
class PartDay:
    """A local day the span starts or ends in. `hours`: its hour documents to add (those
    wholly in the span) or, when `less` (its month is read whole), to take away (those
    wholly outside); `cut`: the hours the span cuts, whose chats are counted one by one
    by when each was created (added if in the span; taken away, when `less`, if not)."""

    day: str
    hours: list[str]
    cut: list[str]
    less: bool = False


@dataclass
class Plan:
    """The documents that make up a span: months and days to add, days to take away
    (outside the span, in a month read whole), and the days it starts or ends in."""

    months: list[str]
    days: list[str]
    parts: list[PartDay]
    less_days: list[str] = field(default_factory=list)

    def periods(self) -> list[tuple[str, int]]:
        """Each month and whole day to read, with the sign it counts with."""
        return [
            *((m, 1) for m in self.months),
            *((d, 1) for d in self.days),
            *((d, -1) for d in self.less_days),
        ]


def plan(zone_name: str, start: datetime, end: datetime, group_by: StatsGrouping | None) -> Plan:
    """The documents that make up [start, end) for an institution in `zone_name`, read in
    as few documents as it takes: a local month the span covers most of (unless grouped
    by day) is its month document less what lies outside the span, any other month the
    sum of the days (and hours) it has in the span."""
    zone = ZoneInfo(zone_name)
    made = Plan([], [], [])
    if end <= start:
        return made
    first = start.astimezone(zone).date()
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    # Each local day the span touches: whole, or cut (its hours in, cut, and out).
    whole: set[date] = set()
    cut_days: dict[date, tuple[list[str], list[str], list[str]]] = {}
    day = first
    begins = day_start(day, zone)
    while day <= last:
        following = day_start(day + timedelta(days=1), zone)
        if begins >= start and following <= end:
            whole.add(day)
        else:
            inside, cut, outside = [], [], []
            for key, (lo, hi) in hours_of(day, zone).items():
                if lo >= start and hi <= end:
                    inside.append(key)
                elif lo < end and hi > start:
                    cut.append(key)
                else:
                    outside.append(key)
            cut_days[day] = (inside, cut, outside)
        day += timedelta(days=1)
        begins = following
    day_cost = 24 if group_by == "hour" else 1
    month = date(first.year, first.month, 1)
    while month <= last:
        days = [month + timedelta(days=n) for n in range(_days_in_month(month))]
        inside_days = [d for d in days if d in whole]
        parts = [d for d in days if d in cut_days]
        outside_days = [d for d in days if d not in whole and d not in cut_days]
        adding = day_cost * len(inside_days) + sum(
            len(cut_days[d][0]) + len(cut_days[d][1]) for d in parts
        )
        taking = (
            day_cost * (7 if group_by == "hour" else 1)
            + day_cost * len(outside_days)
            + sum(len(cut_days[d][2]) + len(cut_days[d][1]) for d in parts)
        )
        if group_by != "day" and inside_days and taking < adding:
            made.months.append(month.isoformat()[:7])
            made.less_days.extend(d.isoformat() for d in outside_days)
            for d in parts:
                _, cut, outside = cut_days[d]
                made.parts.append(PartDay(d.isoformat(), outside, cut, less=True))
        else:
            made.days.extend(d.isoformat() for d in inside_days)
            for d in parts:
                inside, cut, _ = cut_days[d]
                made.parts.append(PartDay(d.isoformat(), inside, cut))
        month = days[-1] + timedelta(days=1)
    return made


def _days_in_month(day: date) -> int:
    following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return (following - date(day.year, day.month, 1)).days


def day_hour_keys(day: str) -> list[str]:
    """The `hour` keys a local day can have documents under."""
    weekday = WEEKDAYS[date.fromisoformat(day).weekday()]
    return [f"{weekday} {h:02d}" for h in range(24)]


WEEK_HOUR_KEYS = [f"{d} {h:02d}" for d in WEEKDAYS for h in range(24)]


def period_keys(period: str, dim: str, listed: Iterable[str]) -> list[str]:
    """The keys to read under a dimension for a period: a day's or a month's hours, or
    the names its `all` document lists."""
    if dim == "hour":
        return day_hour_keys(period) if len(period) == 10 else WEEK_HOUR_KEYS
    return sorted(set(listed))
