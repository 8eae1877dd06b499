"""Statistics from rollups, against a real MongoDB wire-protocol server.

For any sequence of chats delivered in batches (out of order, redelivered, with tags and
messages that come after the close), erasures and retention runs, what
`TranscriptStore.stats` answers equals the figures worked out here in plain Python from the
chats as they ended: every count exactly, the percentiles within the histogram's stated
error (rollups.error_bound). A writer that dies part-way, and two writers at once, count
each chat once; a rebuild after a time zone change puts old chats in their new local days.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.transcripts import rollup_store, rollups
from services.transcripts.domain import ENDED, Members, epoch_ms
from services.transcripts.rollup_store import RollupsDeferred, RollupStore
from services.transcripts.store import TranscriptStore
from shared import store
from shared.clock import FixedClock
from shared.schemas.chat import Chat, Message, Patron, Sender
from shared.schemas.events import ChatClosed, ChatEvent, ChatMissed, ChatTagged, MessagePosted
from shared.schemas.records import Principal
from shared.schemas.requests import Stats, StatsGrouping, StatsQuery
from tests.servers import Servers

ZONES = {"hill": "America/Chicago", "river": "Asia/Kolkata", "night": "UTC"}
MEMBERS = Members(dict(ZONES), frozenset({"night"}))
LIBRARIES = ("hill", "river")
VIEWS: tuple[str | None, ...] = ("hill", "river", "night", None)
GROUPINGS: tuple[StatsGrouping | None, ...] = (
    None,
    "day",
    "hour",
    "queue",
    "operator",
    "tag",
    "institution",
)
# Chicago's clocks go back on the morning of 1 November 2026: chats fall either side.
T = datetime(2026, 10, 31, 12, tzinfo=UTC)
ADMIN = Principal(username="demo-admin", institution="demo", role="consortium_admin")
OPERATORS = {
    "hill": ["demo-hill-ann", "demo-hill-bob"],
    "river": ["demo-river-cat"],
    "night": ["demo-night-nina"],
}
TAGS = ["citation", "ill", "printing"]


def iso_ms(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --- chats as generated, and their events ----------------------------------------------------


@dataclass
class Planned:
    """A chat to deliver: its final state, its messages and, maybe, tags set after close."""

    chat: Chat
    messages: int
    retag: list[str] | None

    def events(self) -> list[ChatEvent]:
        chat, made = self.chat, []
        ongoing = chat.model_copy(update={"state": "active" if chat.claimed_at else "queued"})
        for seq in range(1, self.messages + 1):
            sender = (
                Sender(kind="patron", name="Pat", id="g")
                if seq == 1
                else Sender(kind="operator", name="Op", id="op")
            )
            message = Message.model_validate(
                {
                    "id": f"{chat.id}-{seq}",
                    "chat_id": chat.id,
                    "seq": seq,
                    "from": sender,
                    "body": f"m{seq}",
                    "ts": chat.created_at,
                }
            )
            made.append(
                MessagePosted(
                    id=f"{chat.id}.{seq}", n=seq, ts=chat.created_at, chat=ongoing, message=message
                )
            )
        n = self.messages + 1
        stamp = {
            "id": f"{chat.id}.{n}",
            "n": n,
            "ts": chat.closed_at or chat.created_at,
            "chat": chat,
        }
        if chat.state == "missed":
            made.append(ChatMissed(**stamp, reason="patron_left"))
        else:
            made.append(
                ChatClosed(**stamp, by=Sender(kind="operator", name="Op", id="op"), reason="closed")
            )
        if self.retag is not None:
            tagged = chat.model_copy(update={"tags": self.retag})
            made.append(
                ChatTagged(
                    id=f"{chat.id}.{n + 1}",
                    n=n + 1,
                    ts=stamp["ts"],
                    chat=tagged,
                    by=Sender(kind="operator", name="Op", id="op"),
                    tags=self.retag,
                )
            )
        return made


@st.composite
def planned_chats(draw: st.DrawFn) -> Planned:
    home = draw(st.sampled_from(LIBRARIES))
    created = T + timedelta(
        milliseconds=draw(st.integers(min_value=-36 * 3600_000, max_value=48 * 3600_000))
    )
    fate = draw(st.sampled_from(["missed", "home", "backup", "partner"]))
    answered = {
        "missed": None,
        "home": home,
        "backup": "night",
        "partner": "river" if home == "hill" else "hill",
    }[fate]
    base: dict[str, Any] = {
        "id": uuid.UUID(int=draw(st.integers(min_value=0, max_value=2**64))).hex,
        "institution": home,
        "queue": f"demo-{answered or home}",
        "created_at": iso_ms(created),
        "patron": Patron(guest_id="g", name="Pat", email="pat@example.org"),
        "question": "a question",
        "tags": draw(st.lists(st.sampled_from(TAGS), unique=True, max_size=2)),
    }
    if answered is None:
        closed = created + timedelta(seconds=draw(st.integers(min_value=1, max_value=900)))
        chat = Chat(**base, state="missed", closed_at=iso_ms(closed))
    else:
        wait = timedelta(milliseconds=draw(st.integers(min_value=0, max_value=900_000)))
        talk = timedelta(milliseconds=draw(st.integers(min_value=0, max_value=5_400_000)))
        operators = draw(
            st.lists(
                st.sampled_from(OPERATORS[answered] + OPERATORS[home]),
                min_size=1,
                max_size=2,
                unique=True,
            )
        )
        chat = Chat(
            **base,
            state="closed",
            owner=operators[-1],
            operators=operators,
            origin=draw(st.sampled_from(["patron", "patron", "proactive"])),
            claimed_at=iso_ms(created + wait),
            closed_at=iso_ms(created + wait + talk),
            answered_institution=answered,
            answered_queue=f"demo-{answered}",
            handled_by=[answered],
        )
    retag = draw(st.one_of(st.none(), st.lists(st.sampled_from(TAGS), unique=True, max_size=3)))
    return Planned(chat, draw(st.integers(min_value=1, max_value=4)), retag)


# --- the oracle: figures in plain Python from the chats as stored -------------------------------


@dataclass
class Known:
    """What has been delivered of a chat: its latest lifecycle event and its messages."""

    planned: Planned
    last: ChatEvent | None = None
    seqs: set[int] = field(default_factory=set)
    retired: bool = False  # erased or past retention: nothing more comes

    def take(self, event: ChatEvent) -> None:
        if isinstance(event, MessagePosted):
            self.seqs.add(event.message.seq)
        elif self.last is None or self.last.n < event.n:
            self.last = event

    def ended(self) -> Chat | None:
        return self.last.chat if self.last is not None and self.last.chat.state in ENDED else None


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round(
        max(0.0, (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()), 3
    )


def nearest_rank(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class Figures:
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    waits: list[float] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)

    def shown(self, consortium: bool) -> bool:
        return self.counts["chats"] > 0 or (
            not consortium and self.counts["answered_for_others"] > 0
        )


def local(instant_ms: int, zone: str) -> datetime:
    return datetime.fromtimestamp(instant_ms / 1000, UTC).astimezone(ZoneInfo(zone))


def oracle(
    known: dict[str, Known],
    view: str | None,
    start: datetime,
    end: datetime,
    group_by: StatsGrouping | None,
) -> dict[str, Any]:
    consortium = view is None
    total: dict[str, Figures] = defaultdict(Figures)  # by institution seen
    groups: dict[str, Figures] = defaultdict(Figures)
    institutions: set[str] = set()
    for item in known.values():
        chat = item.ended()
        if chat is None:
            continue
        institutions |= {chat.institution} | (
            {chat.answered_institution} if chat.answered_institution else set()
        )
        created = epoch_ms(datetime.fromisoformat(chat.created_at))
        if not epoch_ms(start) <= created < epoch_ms(end):
            continue
        answered = chat.answered_institution
        sides = [(chat.institution, "home")]
        if answered and answered != chat.institution:
            sides.append((answered, "other"))
        for who, side in sides:
            if not consortium and who != view:
                continue
            figures = [total[who]]
            if group_by is not None and (side == "home" or not consortium):
                at = local(created, ZONES[who])
                keys = {
                    "day": [at.date().isoformat()],
                    "hour": [rollups.hour_key(at)],
                    "queue": [chat.queue],
                    "operator": sorted(set(chat.operators)),
                    "tag": sorted(set(chat.tags)),
                    "institution": [chat.institution],
                }[group_by]
                figures += [groups[k] for k in keys]
            for f in figures:
                if side == "other":
                    f.counts["answered_for_others"] += 1
                    continue
                f.counts["chats"] += 1
                by = (
                    None
                    if answered is None
                    else "home"
                    if answered == chat.institution
                    else "backup"
                    if answered in MEMBERS.backups
                    else "partner"
                )
                if by is not None:
                    f.counts[rollups.ANSWERED_FIGURE[by]] += 1
                f.counts["missed"] += chat.state == "missed"
                f.counts["messages"] += len(item.seqs)
                wait = (
                    _seconds(chat.created_at, chat.claimed_at) if chat.origin == "patron" else None
                )
                duration = _seconds(chat.claimed_at, chat.closed_at)
                if wait is not None:
                    f.waits.append(wait)
                if duration is not None:
                    f.durations.append(duration)
    merged = Figures()
    for f in total.values():
        for k, v in f.counts.items():
            merged.counts[k] += v
        merged.waits += f.waits
        merged.durations += f.durations

    def shape(f: Figures, consortium: bool) -> dict[str, Any]:
        c = f.counts
        others = (
            c["answered_by_backup"] + c["answered_by_partners"]
            if consortium
            else c["answered_for_others"]
        )
        return {
            "chats": c["chats"],
            "answered_at_home": c["answered_at_home"],
            "answered_by_backup": c["answered_by_backup"],
            "answered_by_partners": c["answered_by_partners"],
            "answered_for_others": others,
            "missed": c["missed"],
            "missed_rate": round(c["missed"] / c["chats"], 4) if c["chats"] else 0.0,
            "messages": c["messages"],
            "wait_p50_s": nearest_rank(f.waits, 50),
            "wait_p90_s": nearest_rank(f.waits, 90),
            "duration_p50_s": nearest_rank(f.durations, 50),
        }

    made = shape(merged, consortium)
    made["groups"] = {
        k: shape(f, consortium) for k, f in sorted(groups.items()) if f.shown(consortium)
    }
    made["institutions"] = {}
    if consortium:
        for who in sorted(institutions):
            mine = total.get(who, Figures())
            if mine.shown(False):
                made["institutions"][who] = shape(mine, False)
    return made


PERCENTILES = ("wait_p50_s", "wait_p90_s", "duration_p50_s")


def assert_figures(got: Any, wanted: dict[str, Any], where: str) -> None:
    for name, value in wanted.items():
        if name in ("groups", "institutions"):
            continue
        mine = getattr(got, name)
        if name in PERCENTILES and value is not None and mine is not None:
            assert abs(mine - value) <= rollups.error_bound(value), (where, name, mine, value)
        else:
            assert mine == value, (where, name, mine, value)


def assert_stats(got: Stats, wanted: dict[str, Any], where: str) -> None:
    assert_figures(got, wanted, where)
    assert [g.key for g in got.groups] == list(wanted["groups"]), where
    for g in got.groups:
        assert_figures(g, wanted["groups"][g.key], f"{where} group {g.key}")
    assert [g.key for g in got.institutions] == list(wanted["institutions"]), where
    for g in got.institutions:
        assert_figures(g, wanted["institutions"][g.key], f"{where} institution {g.key}")


# --- the scenario --------------------------------------------------------------------------------

instants = st.integers(min_value=-40 * 3600_000, max_value=52 * 3600_000).map(
    lambda ms: T + timedelta(milliseconds=ms)
)
DAY_MS = 86400_000
# Short spans around the chats, and long ones that cover most of a month (read as the
# month less what lies outside the span) with the chats inside or taken away.
spans = st.one_of(
    st.tuples(instants, st.integers(min_value=1, max_value=4 * DAY_MS)),
    st.tuples(
        instants.map(lambda i: i - timedelta(days=30)),
        st.integers(min_value=1, max_value=45 * DAY_MS),
    ),
    st.tuples(instants, st.integers(min_value=20 * DAY_MS, max_value=45 * DAY_MS)),
).map(lambda s: (s[0], s[0] + timedelta(milliseconds=s[1])))
steps = st.one_of(
    st.tuples(
        st.just("deliver"),
        st.integers(min_value=1, max_value=40),
        st.integers(min_value=0, max_value=2**32),
    ),
    st.tuples(st.just("erase"), st.integers(min_value=0, max_value=1000), st.just(0)),
    st.tuples(st.just("retention"), st.sampled_from(["anonymise", "delete"]), instants),
)


@dataclass
class World:
    store: TranscriptStore
    known: dict[str, Known]

    async def deliver(self, count: int, seed: int) -> None:
        """Some events, from chats not retired, with repeats, shuffled, in batches."""
        rng = random.Random(seed)
        pool = [e for k in self.known.values() if not k.retired for e in k.planned.events()]
        if not pool:
            return
        picked = [rng.choice(pool) for _ in range(count)]
        for at in range(0, len(picked), rng.randint(1, 12)):
            batch = picked[at : at + 12]
            await self.store.apply(batch)
            for event in batch:
                self.known[event.chat.id].take(event)

    async def flush(self) -> None:
        """Every event of every chat not retired, once more."""
        events = [e for k in self.known.values() if not k.retired for e in k.planned.events()]
        for at in range(0, len(events), 50):
            await self.store.apply(events[at : at + 50])
            for event in events[at : at + 50]:
                self.known[event.chat.id].take(event)

    async def erase(self, pick: int) -> None:
        """A patron's erasure: one ended chat's documents deleted."""
        ended = sorted(i for i, k in self.known.items() if k.ended() is not None and not k.retired)
        if ended:
            chat_id = ended[pick % len(ended)]
            await self.store.delete([chat_id])
            self.known[chat_id].retired = True

    async def retention(self, action: str, cutoff: datetime) -> None:
        for library in LIBRARIES:
            due = await self.store.due(library, cutoff, action == "delete", 1000)
            ids = [d["_id"] for d in due]
            if ids:
                await (self.store.delete(ids) if action == "delete" else self.store.anonymise(ids))
            for chat_id in ids:
                self.known[chat_id].retired = True

    async def check(
        self, queries: list[tuple[str | None, tuple[datetime, datetime], StatsGrouping | None]]
    ) -> None:
        for view, (start, end), group_by in queries:
            query = StatsQuery(
                institution=view or "demo", principal=ADMIN, start=start, end=end, group_by=group_by
            )
            got = await self.store.stats(query, view)
            assert_stats(
                got,
                oracle(self.known, view, start, end, group_by),
                f"{view} {start}..{end} by {group_by}",
            )


queries = st.lists(
    st.tuples(st.sampled_from(VIEWS), spans, st.sampled_from(GROUPINGS)), min_size=2, max_size=5
)


async def _scenario(
    uri: str,
    chats: list[Planned],
    plan: list[tuple[Any, Any, Any]],
    middle: list[Any],
    end: list[Any],
) -> None:
    client = store.connect(uri, "tests")
    db = client[f"t{uuid.uuid4().hex[:10]}"]
    try:
        transcripts = TranscriptStore(db, lambda: MEMBERS)
        await transcripts.ensure_indexes()
        world = World(transcripts, {p.chat.id: Known(p) for p in chats})
        for number, (kind, a, b) in enumerate(plan):
            if kind == "deliver":
                await world.deliver(a, b)
            elif kind == "erase":
                await world.erase(a)
            else:
                await world.retention(a, b)
            if number == len(plan) // 2:
                await world.check(middle)
        await world.flush()
        everything = (T - timedelta(days=3), T + timedelta(days=4))
        await world.check([*end, *((v, everything, g) for v in VIEWS for g in (None, "day"))])
    finally:
        await client.drop_database(db.name)
        await client.close()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(planned_chats(), min_size=1, max_size=14, unique_by=lambda p: p.chat.id),
    st.lists(steps, min_size=1, max_size=6),
    queries,
    queries,
)
def test_statistics_from_rollups_equal_those_of_the_chats(
    servers: Servers, chats, plan, middle, end
):
    asyncio.run(_scenario(servers.mongodb_uri, chats, plan, middle, end))


# --- writers that die, and writers at once -----------------------------------------------------


@pytest_asyncio.fixture
async def db(servers: Servers) -> AsyncIterator[Any]:
    client = store.connect(servers.mongodb_uri, "tests")
    made = client[f"t{uuid.uuid4().hex[:10]}"]
    yield made
    await client.drop_database(made.name)
    await client.close()


def some_chats(count: int, seed: int) -> list[Planned]:
    """`count` chats drawn from the same strategy, the same ones on every run."""
    chosen: list[list[Planned]] = []
    strategy = st.lists(
        planned_chats(), min_size=count, max_size=count, unique_by=lambda p: p.chat.id
    )

    @settings(
        max_examples=1, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(strategy, st.just(seed))
    def draw(value: list[Planned], _: int) -> None:
        chosen.append(value)

    draw()
    return chosen[0]


class DiesAfterApplying(RollupStore):
    """A writer that stops between adding its counts and finishing (a crash, a kill)."""

    async def _apply(self, deltas, markers, tidy=False):  # type: ignore[no-untyped-def]
        await super()._apply(deltas, markers, tidy)
        raise ConnectionError("the writer died")


async def everything(transcripts: TranscriptStore, view: str | None) -> Stats:
    span = {"start": T - timedelta(days=3), "end": T + timedelta(days=4)}
    return await transcripts.stats(
        StatsQuery(institution=view or "demo", principal=ADMIN, **span), view
    )


async def test_a_writer_that_dies_part_way_is_taken_over_and_counts_each_chat_once(db):
    chats = some_chats(6, 1)
    events = [e for p in chats for e in p.events()]
    clock = FixedClock(datetime(2026, 11, 5, tzinfo=UTC))
    dying = TranscriptStore(db, lambda: MEMBERS, clock)
    dying.rollups = DiesAfterApplying(db, lambda: MEMBERS, clock)
    with pytest.raises(ConnectionError):
        await dying.apply(events)
    pending = await db.rollup_chats.count_documents({"pending": {"$ne": None}})
    assert pending > 0
    other = TranscriptStore(db, lambda: MEMBERS, clock)
    # Redelivered at once: the change is another writer's still, so it waits.
    with pytest.raises(RollupsDeferred):
        await other.apply(events)
    clock.advance(rollup_store.STALE_MS / 1000 + 1)
    await other.apply(events)  # taken over
    await other.apply(events)  # and again: nothing more
    assert await db.rollup_chats.count_documents({"pending": {"$ne": None}}) == 0
    known = {p.chat.id: Known(p) for p in chats}
    for event in events:
        known[event.chat.id].take(event)
    for view in VIEWS:
        got = await everything(other, view)
        span = (T - timedelta(days=3), T + timedelta(days=4))
        assert_stats(got, oracle(known, view, *span, None), f"{view}")


async def test_two_writers_at_once_count_each_chat_once(db):
    chats = some_chats(10, 2)
    events = [e for p in chats for e in p.events()]
    writers = [TranscriptStore(db, lambda: MEMBERS) for _ in range(2)]
    rng = random.Random(5)
    deliveries = [rng.sample(events, len(events)) for _ in writers]
    deferred = 0

    async def run(writer: TranscriptStore, delivered: list[ChatEvent]) -> None:
        nonlocal deferred
        for at in range(0, len(delivered), 7):
            batch = delivered[at : at + 7]
            while True:
                try:
                    await writer.apply(batch)
                    break
                except RollupsDeferred:  # as the consumer does: the batch comes again
                    deferred += 1
                    await asyncio.sleep(0.01)

    await asyncio.gather(*(run(w, d) for w, d in zip(writers, deliveries, strict=True)))
    known = {p.chat.id: Known(p) for p in chats}
    for event in events:
        known[event.chat.id].take(event)
    for view in VIEWS:
        span = (T - timedelta(days=3), T + timedelta(days=4))
        assert_stats(
            await everything(writers[0], view), oracle(known, view, *span, "tag"), f"{view}"
        )
    assert await db.rollup_chats.count_documents({"pending": {"$ne": None}}) == 0


async def test_a_rebuild_puts_old_chats_in_the_days_of_a_changed_time_zone(db, servers: Servers):
    chats = some_chats(12, 3)
    transcripts = TranscriptStore(db, lambda: MEMBERS)
    events = [e for p in chats for e in p.events()]
    await transcripts.apply(events)
    known = {p.chat.id: Known(p) for p in chats}
    for event in events:
        known[event.chat.id].take(event)
    # Retention deletes some: the rebuild keeps them, from the ledger.
    await transcripts.delete(sorted(known)[:3])
    span = (T - timedelta(days=3), T + timedelta(days=4))
    before = oracle(known, "hill", *span, "day")
    assert_stats(
        await transcripts.stats(
            StatsQuery(
                institution="hill", principal=ADMIN, start=span[0], end=span[1], group_by="day"
            ),
            "hill",
        ),
        before,
        "before",
    )

    # Hill moves to Kolkata's time: until a rebuild, old chats stay on the days they had.
    ZONES["hill"] = "Asia/Kolkata"
    try:
        moved = TranscriptStore(db, lambda: Members(dict(ZONES), MEMBERS.backups))
        query = StatsQuery(
            institution="hill", principal=ADMIN, start=span[0], end=span[1], group_by="day"
        )
        assert [g.key for g in (await moved.stats(query, "hill")).groups] == list(before["groups"])
        await db.institutions.insert_many(
            [
                {
                    "name": n,
                    "institution": n,
                    "display_name": n,
                    "timezone": z,
                    "kind": "backup" if n == "night" else "library",
                }
                for n, z in ZONES.items()
            ]
        )
        env = {
            **os.environ,
            "REFDESK_MONGODB_URI": servers.mongodb_uri,
            "REFDESK_MONGODB_DB": db.name,
        }
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "services.transcripts.rebuild_rollups", "--yes"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "12 chats" in done.stdout and "3 no longer stored" in done.stdout, done.stdout
        assert_stats(await moved.stats(query, "hill"), oracle(known, "hill", *span, "day"), "after")
        by_hour = query.model_copy(update={"group_by": "hour"})
        assert_stats(
            await moved.stats(by_hour, "hill"), oracle(known, "hill", *span, "hour"), "hours"
        )
        for view in VIEWS:
            assert_stats(await everything(moved, view), oracle(known, view, *span, None), f"{view}")
    finally:
        ZONES["hill"] = "America/Chicago"


async def test_a_span_of_any_length_is_read_only_where_there_are_figures(db):
    chats = some_chats(5, 4)
    transcripts = TranscriptStore(db, lambda: MEMBERS)
    events = [e for p in chats for e in p.events()]
    await transcripts.apply(events)
    known = {p.chat.id: Known(p) for p in chats}
    for event in events:
        known[event.chat.id].take(event)
    ages = (datetime(1000, 1, 1, tzinfo=UTC), datetime(3000, 1, 1, tzinfo=UTC))
    for view in VIEWS:
        query = StatsQuery(institution=view or "demo", principal=ADMIN, start=ages[0], end=ages[1])
        started = asyncio.get_running_loop().time()
        got = await transcripts.stats(query, view)
        assert asyncio.get_running_loop().time() - started < 5
        assert_stats(got, oracle(known, view, *ages, None), f"{view}")
