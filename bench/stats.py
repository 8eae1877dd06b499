"""Statistics over a year of a consortium's chats, and search: N chats (a million is a
national backup service's year) stored through the transcripts consumer's own code path
(`TranscriptStore.apply`, in batches of 500 events, in the order chats end), then the
figures of `GET /api/stats` timed and checked, and optionally pages of
`GET /api/transcripts`.

    python -m bench.stats [--chats 1000000] [--days 365] [--messages] [--search]
                          [--rebuild] [--mongodb-uri URI]

Ten libraries in five time zones (one of them half an hour off) and a backup service that
answers a quarter of their chats. Each chat is stored as its closing event; `--messages`
sends its messages too (1 to 6 each), as the consumer gets them, which the figures then
count (on the embedded server that costs a scan of the messages per batch, see
docs/benchmarks.md). `--rebuild` then times what `python -m
services.transcripts.rebuild_rollups` does, and checks the figures again. Every figure
asked is checked against one worked out here in plain Python from the generated chats
(counts exactly, percentiles within the histogram's stated error); a mismatch stops the
run. Without `--mongodb-uri` it starts its own embedded MongoDB wire-protocol server on a
free loopback port (what `make run` uses).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pymongo import AsyncMongoClient

from deploy.local.processes import free_port
from deploy.local.system import start_mongodb
from services.transcripts import domain, rollups
from services.transcripts.store import TranscriptStore
from shared.schemas.chat import Chat, Message, Patron, Sender
from shared.schemas.events import ChatClosed, ChatEvent, ChatMissed, MessagePosted
from shared.schemas.records import Principal
from shared.schemas.requests import SearchTranscripts, Stats, StatsGrouping, StatsQuery

START = datetime(2026, 1, 1, tzinfo=UTC)
ZONE_OF = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")
LIBRARIES = {f"lib{i}": ZONE_OF[i % 4] for i in range(9)} | {"north": "America/St_Johns"}
BACKUP = "backup"
ZONES = LIBRARIES | {BACKUP: "UTC"}
MEMBERS = domain.Members(ZONES, frozenset({BACKUP}))
OPERATORS = {i: [f"demo-{i}-op{n}" for n in range(8 if i != BACKUP else 20)] for i in ZONES}
TAGS = ["reference", "directions", "printing", "citation", "databases", "ill", "hours"]
WORDS = "thesis archive loan journal printer citation map census patent microfilm".split()
BATCH = 500
ADMIN = Principal(username="demo-admin", institution="demo", role="consortium_admin")
CONSORTIUM = "demo"
CHECKED = "lib1"  # the library whose days are checked one by one (Chicago)


def _iso(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Made:
    chat: Chat
    messages: int


def answerer(fate: float, home: str, homes: list[str]) -> str | None:
    """Who answers a chat: nobody (10 %), its library (60 %), the backup service (25 %),
    the next library as a partner (5 %)."""
    if fate < 0.1:
        return None
    if fate < 0.7:
        return home
    if fate < 0.95:
        return BACKUP
    return homes[(homes.index(home) + 1) % len(homes)]


def generate(count: int, days: int, seed: int = 7) -> Iterator[Made]:
    """`count` chats over `days` days from START, a day at a time, in the order created."""
    rng = random.Random(seed)
    homes = sorted(LIBRARIES)
    made = 0
    for day in range(days):
        today = count * (day + 1) // days - made
        chats: list[Made] = []
        for _ in range(today):
            i = made + len(chats)
            home = rng.choice(homes)
            created = START + timedelta(days=day, milliseconds=rng.randrange(86_400_000))
            fate = rng.random()
            answered = answerer(fate, home, homes)
            base: dict[str, Any] = {
                "id": f"{i:032x}",
                "queue": f"demo-{answered or home}",
                "institution": home,
                "created_at": _iso(created),
                "patron": Patron(guest_id=f"g{rng.randrange(max(1, count // 3))}"),
                "question": f"question about the {rng.choice(WORDS)} number {i}",
            }
            if answered is None:
                closed = created + timedelta(seconds=rng.randrange(30, 600))
                chats.append(Made(Chat(**base, state="missed", closed_at=_iso(closed)), 1))
                continue
            claimed = created + timedelta(milliseconds=rng.randrange(2_000, 400_000))
            closed = claimed + timedelta(milliseconds=rng.randrange(60_000, 3_600_000))
            operator = rng.choice(OPERATORS[answered])
            chat = Chat(
                **base,
                state="closed",
                owner=operator,
                operators=[operator],
                claimed_at=_iso(claimed),
                closed_at=_iso(closed),
                tags=rng.sample(TAGS, rng.randrange(0, 3)),
                answered_institution=answered,
                answered_queue=f"demo-{answered}",
                handled_by=[answered],
            )
            chats.append(Made(chat, 1 + rng.randrange(0, 6)))
        chats.sort(key=lambda m: m.chat.created_at)
        made += len(chats)
        yield from chats


def events(made: Made, with_messages: bool) -> list[ChatEvent]:
    """The chat's messages (if asked) and its closing event, as the consumer gets them."""
    chat = made.chat
    found: list[ChatEvent] = []
    if with_messages:
        for seq in range(1, made.messages + 1):
            sender = (
                Sender(kind="patron", name="Pat", id="g")
                if seq == 1
                else Sender(kind="operator", name="Op", id=chat.owner)
            )
            body = chat.question if seq == 1 else f"try the {WORDS[seq]} desk"
            message = Message.model_validate(
                {
                    "id": f"{chat.id}-{seq}",
                    "chat_id": chat.id,
                    "seq": seq,
                    "from": sender,
                    "body": body,
                    "ts": chat.created_at,
                }
            )
            found.append(
                MessagePosted(
                    id=f"{chat.id}.{seq}", n=seq, ts=chat.created_at, chat=chat, message=message
                )
            )
    n = made.messages + 1
    stamp = {"id": f"{chat.id}.{n}", "n": n, "ts": chat.closed_at or chat.created_at, "chat": chat}
    if chat.state == "missed":
        found.append(ChatMissed(**stamp, reason="patron_left"))
    else:
        found.append(
            ChatClosed(
                **stamp,
                by=Sender(kind="operator", name="Op", id=chat.owner),
                reason="closed_by_operator",
            )
        )
    return found


# --- the figures, worked out independently --------------------------------------------------


def nearest_rank(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * p / 100) - 1)]


def seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 3)


@dataclass
class Expected:
    """Per (institution, local day): what the rollups should say."""

    counts: dict[tuple[str, str], dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    waits: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, made: Made, with_messages: bool) -> None:
        chat = made.chat
        created = datetime.fromisoformat(chat.created_at)
        home = chat.institution
        day = created.astimezone(ZoneInfo(ZONES[home])).date().isoformat()
        row = self.counts[(home, day)]
        row["chats"] += 1
        row["messages"] += made.messages if with_messages else 0
        answered = chat.answered_institution
        if answered is None:
            row["missed"] += 1
        else:
            by = {home: "answered_at_home", BACKUP: "answered_by_backup"}
            row[by.get(answered, "answered_by_partners")] += 1
            wait = seconds(chat.created_at, chat.claimed_at)
            if wait is not None:
                self.waits[(home, day)].append(wait)
            if answered != home:
                theirs = created.astimezone(ZoneInfo(ZONES[answered])).date().isoformat()
                self.counts[(answered, theirs)]["answered_for_others"] += 1

    def days(
        self, institution: str, days: list[str]
    ) -> dict[str, tuple[dict[str, int], list[float]]]:
        return {
            d: (self.counts[(institution, d)], self.waits[(institution, d)])
            for d in days
            if (institution, d) in self.counts
        }


def close_enough(got: float | None, wanted: float | None) -> bool:
    if got is None or wanted is None:
        return got is wanted
    return abs(got - wanted) <= rollups.error_bound(wanted)


COUNTED = (
    "chats",
    "answered_at_home",
    "answered_by_backup",
    "answered_by_partners",
    "answered_for_others",
    "missed",
    "messages",
)


def check_days(stats: Stats, expected: dict[str, tuple[dict[str, int], list[float]]]) -> None:
    assert [g.key for g in stats.groups] == sorted(expected), "days differ"
    for group in stats.groups:
        counts, waits = expected[group.key]
        got = tuple(getattr(group, name) for name in COUNTED)
        wanted = tuple(counts.get(name, 0) for name in COUNTED)
        assert got == wanted, f"{group.key}: {got} != {wanted}"
        for name, p in (("wait_p50_s", 50), ("wait_p90_s", 90)):
            assert close_enough(getattr(group, name), nearest_rank(waits, p)), (group.key, name)


# --- the run ---------------------------------------------------------------------------------


@contextmanager
def embedded_mongodb() -> Iterator[str]:
    data = Path(tempfile.mkdtemp(prefix="refdesk-bench-stats-"))
    port = free_port()
    child = start_mongodb(data, port, data / "logs")
    try:
        yield f"mongodb://127.0.0.1:{port}"
    finally:
        child.stop()
        shutil.rmtree(data, ignore_errors=True)


def local_midnight(day: datetime, zone: str) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone))


async def timed(what: str, work: Any, repeat: int = 3) -> Any:
    """Run a query `repeat` times; print the first time and the median."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await work()
        times.append((time.perf_counter() - started) * 1000)
    print(f"{what}: first {times[0]:.0f} ms, median {statistics.median(times):.0f} ms", flush=True)
    return result


async def store_all(
    store: TranscriptStore, count: int, days: int, with_messages: bool, expected: Expected
) -> None:
    started = time.perf_counter()
    pending: list[ChatEvent] = []
    stored = 0
    report = max(count // 20, 1)
    for made in generate(count, days):
        expected.add(made, with_messages)
        pending += events(made, with_messages)
        stored += 1
        while len(pending) >= BATCH:
            await store.apply(pending[:BATCH])
            pending = pending[BATCH:]
        if stored % report == 0:
            spent = time.perf_counter() - started
            print(
                f"  stored {stored} chats in {spent:.0f} s ({stored / spent:.0f} a second)",
                flush=True,
            )
    if pending:
        await store.apply(pending)
    spent = time.perf_counter() - started
    print(f"stored {count} chats in {spent:.1f} s ({count / spent:.0f} a second)", flush=True)


async def run(
    uri: str, count: int, days: int, with_messages: bool, search: bool, rebuild: bool
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    db = client["refdesk_bench_stats"]
    await client.drop_database(db.name)
    store = TranscriptStore(db, lambda: MEMBERS)
    await store.ensure_indexes()
    expected = Expected()
    await store_all(store, count, days, with_messages, expected)

    def query(
        institution: str, start: datetime, end: datetime, group_by: StatsGrouping | None
    ) -> Any:
        asked = StatsQuery(
            institution=institution, principal=ADMIN, start=start, end=end, group_by=group_by
        )
        scope = None if institution == CONSORTIUM else institution
        return lambda: store.stats(asked, scope)

    # A month of a library, by day: the local month (the reports' own span is checked too).
    middle = START + timedelta(days=min(days, 365) // 2)
    month_start = local_midnight(datetime(middle.year, middle.month, 1), ZONES[CHECKED])
    following = datetime(middle.year + middle.month // 12, middle.month % 12 + 1, 1)
    month_end = local_midnight(following, ZONES[CHECKED])
    month_days = [
        (month_start.date() + timedelta(days=n)).isoformat()
        for n in range((month_end.date() - month_start.date()).days)
    ]
    stats = await timed(
        f"stats {CHECKED}, a month by day", query(CHECKED, month_start, month_end, "day")
    )
    check_days(stats, expected.days(CHECKED, month_days))
    print(f"  {len(stats.groups)} days, {stats.chats} chats: figures match", flush=True)
    now = month_end - timedelta(hours=7, minutes=13)
    stats = await timed(
        f"stats {CHECKED}, the last 30 days by day (as the reports ask)",
        query(CHECKED, now - timedelta(days=30), now, "day"),
    )
    assert stats.chats > 0
    await timed(
        f"stats {CHECKED}, the last 30 days by hour (as the reports ask)",
        query(CHECKED, now - timedelta(days=30), now, "hour"),
    )
    for group_by in ("hour", "queue", "operator", "tag", "institution"):
        await timed(
            f"stats {CHECKED}, a month by {group_by}",
            query(CHECKED, month_start, month_end, group_by),
        )
    backup = await timed(
        "stats backup service, a month by day", query(BACKUP, month_start, month_end, "day")
    )
    print(f"  answered {backup.answered_for_others} chats for others", flush=True)

    year_end = START + timedelta(days=days)
    whole = await timed(
        "stats consortium, the whole span with its breakdown",
        query(CONSORTIUM, START, year_end, None),
    )
    assert whole.chats == count, (whole.chats, count)
    helped = sum(
        c.get("answered_for_others", 0) for (i, _), c in expected.counts.items() if i == BACKUP
    )
    row = next(g for g in whole.institutions if g.key == BACKUP)
    assert row.answered_for_others == helped, (row.answered_for_others, helped)
    print(
        f"  {whole.chats} chats, the backup service answered {helped} for others: figures match",
        flush=True,
    )
    await timed(
        "stats consortium, the whole span by day", query(CONSORTIUM, START, year_end, "day")
    )

    async def by_month() -> list[Stats]:
        found, at = [], START
        while at < year_end:
            nxt = datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)
            found.append(await query(CONSORTIUM, at, min(nxt, year_end), None)())
            at = nxt
        return found

    months = await timed(
        "stats consortium, the whole span month by month (a query a month)", by_month
    )
    assert sum(m.chats for m in months) == count

    if search:
        await search_pages(store)
    if rebuild:
        started = time.perf_counter()
        counted = await store.rollups.rebuild()
        spent = time.perf_counter() - started
        print(f"rebuilt the rollups of {counted['stored']} chats in {spent:.1f} s", flush=True)
        stats = await timed(
            f"stats {CHECKED}, a month by day", query(CHECKED, month_start, month_end, "day")
        )
        check_days(stats, expected.days(CHECKED, month_days))
        print("  figures match after the rebuild", flush=True)
    await client.drop_database(db.name)
    await client.close()


async def search_pages(store: TranscriptStore) -> None:
    searches: list[tuple[str, dict[str, Any]]] = [
        ("text 'microfilm'", {"q": "microfilm"}),
        ("tag 'ill'", {"tag": "ill"}),
        ("operator", {"operator": OPERATORS[CHECKED][3]}),
        ("a week", {"start": START + timedelta(days=7), "end": START + timedelta(days=14)}),
    ]
    for name, filters in searches:
        asked = SearchTranscripts(institution=CHECKED, principal=ADMIN, limit=25, **filters)
        started = time.perf_counter()
        page = await store.search(asked, CHECKED)
        spent = (time.perf_counter() - started) * 1000
        assert all(CHECKED in (c.institution, c.answered_institution) for c in page.chats)
        print(
            f"search {CHECKED}, {name}: {len(page.chats)} chats, first page {spent:.0f} ms",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--messages", action="store_true", help="send each chat's messages too")
    parser.add_argument("--search", action="store_true", help="time search pages as well")
    parser.add_argument("--rebuild", action="store_true", help="time a rebuild of the rollups")
    parser.add_argument("--mongodb-uri")
    args = parser.parse_args()
    work = (args.chats, args.days, args.messages, args.search, args.rebuild)
    if args.mongodb_uri:
        asyncio.run(run(args.mongodb_uri, *work))
        return
    with embedded_mongodb() as uri:
        asyncio.run(run(uri, *work))


if __name__ == "__main__":
    main()
