"""Statistics and search over a month of chats: 100,000 chats across three institutions,
stored as the transcripts service stores them, then the figures of `GET /api/stats` and
pages of `GET /api/transcripts` timed and checked.

    python -m bench.stats [--chats 100000] [--mongodb-uri URI]

Without `--mongodb-uri` it starts its own embedded MongoDB wire-protocol server on a free
loopback port (what `make run` uses). Every figure is checked against one computed here
independently, in plain Python from the generated chats; a mismatch stops the run.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pymongo import AsyncMongoClient

from deploy.local.processes import free_port
from deploy.local.system import start_mongodb
from services.transcripts import domain
from services.transcripts.store import TranscriptStore
from shared.schemas.chat import Chat, Patron, Sender
from shared.schemas.events import ChatClosed, ChatMissed
from shared.schemas.records import Principal
from shared.schemas.requests import SearchTranscripts, StatsQuery

START = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 31
ZONES = {"hill": "America/Chicago", "river": "America/New_York", "backup": "UTC"}
MEMBERS = domain.Members(ZONES, frozenset({"backup"}))
OPERATORS = {i: [f"demo-{i}-op{n}" for n in range(8)] for i in ZONES}
TAGS = ["reference", "directions", "printing", "citation", "databases", "ill", "hours"]
WORDS = "thesis archive loan journal printer citation map census patent microfilm".split()
BATCH = 5000
ADMIN = Principal(username="demo-admin", institution="demo", role="consortium_admin")


def generate(count: int, seed: int = 7) -> Iterator[tuple[Chat, int, str]]:
    """(chat, number of messages, its text) for `count` chats spread over the month."""
    rng = random.Random(seed)
    for i in range(count):
        home = rng.choice(["hill", "hill", "river", "river", "backup"])
        home = "river" if home == "backup" else home  # the backup service has no patrons
        created = START + timedelta(seconds=rng.randrange(DAYS * 86400))
        fate = rng.random()
        answered = None if fate < 0.1 else home if fate < 0.8 else "backup"
        chat_id = f"{i:032x}"
        question = f"question about the {rng.choice(WORDS)} number {i}"
        base = {
            "id": chat_id,
            "queue": f"demo-{answered or home}",
            "institution": home,
            "created_at": _iso(created),
            "patron": Patron(guest_id=f"g{rng.randrange(count // 3)}"),
            "question": question,
        }
        if answered is None:
            closed = created + timedelta(seconds=rng.randrange(30, 600))
            chat = Chat(**base, state="missed", closed_at=_iso(closed))
            yield chat, 1, question
            continue
        claimed = created + timedelta(seconds=rng.randrange(2, 400))
        closed = claimed + timedelta(seconds=rng.randrange(60, 3600))
        operator = rng.choice(OPERATORS[answered])
        replies = [f"try the {rng.choice(WORDS)} desk" for _ in range(rng.randrange(1, 6))]
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
        )
        yield chat, 1 + len(replies), "\n".join([question, *replies])


def _iso(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def stored(chat: Chat, messages: int, text: str) -> dict[str, Any]:
    """The chat document as the transcripts consumer leaves it once the chat ended."""
    stamp = {"id": f"{chat.id}.9", "n": 9, "ts": chat.closed_at or chat.created_at, "chat": chat}
    if chat.state == "missed":
        event: ChatClosed | ChatMissed = ChatMissed(**stamp, reason="patron_left")
    else:
        by = Sender(kind="operator", name="Op", id=chat.owner)
        event = ChatClosed(**stamp, by=by, reason="closed_by_operator")
    doc = domain.chat_document(event, MEMBERS)
    doc["text"], doc["messages"] = text, messages
    return doc


# --- the figures, worked out independently --------------------------------------------------


def nearest_rank(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * p / 100) - 1)]


def expected_by_day(chats: list[tuple[Chat, int]], institution: str) -> dict[str, dict]:
    """Per local day of the library: its patrons' chats and what became of them."""
    days: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"chats": 0, "home": 0, "backup": 0, "missed": 0, "messages": 0, "waits": []}
    )
    zone = ZoneInfo(ZONES[institution])
    for chat, messages in chats:
        if chat.institution != institution:
            continue
        day = datetime.fromisoformat(chat.created_at).astimezone(zone).date().isoformat()
        row = days[day]
        row["chats"] += 1
        row["messages"] += messages
        if chat.state == "missed":
            row["missed"] += 1
        elif chat.answered_institution == institution:
            row["home"] += 1
        else:
            row["backup"] += 1
        if chat.claimed_at:
            wait = datetime.fromisoformat(chat.claimed_at) - datetime.fromisoformat(chat.created_at)
            row["waits"].append(wait.total_seconds())
    return days


def check(stats_groups: list[Any], expected: dict[str, dict]) -> None:
    assert [g.key for g in stats_groups] == sorted(expected), "days differ"
    for group in stats_groups:
        want = expected[group.key]
        got = (
            group.chats,
            group.answered_at_home,
            group.answered_by_backup,
            group.missed,
            group.messages,
            group.wait_p50_s,
            group.wait_p90_s,
        )
        wanted = (
            want["chats"],
            want["home"],
            want["backup"],
            want["missed"],
            want["messages"],
            nearest_rank(want["waits"], 50),
            nearest_rank(want["waits"], 90),
        )
        assert got == wanted, f"{group.key}: {got} != {wanted}"


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


async def timed(what: str, work: Any) -> Any:
    started = time.perf_counter()
    result = await work
    print(f"{what}: {(time.perf_counter() - started) * 1000:.0f} ms", flush=True)
    return result


async def run(uri: str, count: int) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    db = client["refdesk_bench_stats"]
    await db.chats.drop()
    store = TranscriptStore(db, lambda: MEMBERS)
    await store.ensure_indexes()
    chats: list[tuple[Chat, int]] = []
    started = time.perf_counter()
    batch: list[dict[str, Any]] = []
    for chat, messages, text in generate(count):
        chats.append((chat, messages))
        batch.append(stored(chat, messages, text))
        if len(batch) == BATCH:
            await db.chats.insert_many(batch)
            batch = []
    if batch:
        await db.chats.insert_many(batch)
    print(f"stored {count} chats in {time.perf_counter() - started:.1f} s", flush=True)

    month = {"start": START - timedelta(days=1), "end": START + timedelta(days=DAYS + 1)}
    for institution in ("hill", "river"):
        query = StatsQuery(institution=institution, principal=ADMIN, group_by="day", **month)
        stats = await timed(f"stats {institution}, a month by day", store.stats(query, institution))
        check(stats.groups, expected_by_day(chats, institution))
        print(f"  {len(stats.groups)} days, {stats.chats} chats: figures match", flush=True)
    everyone = StatsQuery(institution="demo", principal=ADMIN, group_by="day", **month)
    whole = await timed("stats consortium, a month by day", store.stats(everyone, None))
    assert whole.chats == count, (whole.chats, count)
    helped = sum(1 for c, _ in chats if c.answered_institution == "backup")
    backup = next(g for g in whole.institutions if g.key == "backup")
    assert backup.answered_for_others == helped, (backup.answered_for_others, helped)
    print(f"  {whole.chats} chats, backup answered {helped} for others: figures match")
    for group_by in ("hour", "queue", "operator", "tag", "institution"):
        query = StatsQuery(institution="hill", principal=ADMIN, group_by=group_by, **month)
        await timed(f"stats hill, a month by {group_by}", store.stats(query, "hill"))

    searches: list[tuple[str, dict[str, Any]]] = [
        ("text 'microfilm'", {"q": "microfilm"}),
        ("text 'census desk'", {"q": "census desk"}),
        ("tag 'ill'", {"tag": "ill"}),
        ("operator", {"operator": OPERATORS["hill"][3]}),
        ("queue + state", {"queue": "demo-backup", "state": "closed"}),
        ("a week", {"start": START + timedelta(days=7), "end": START + timedelta(days=14)}),
        (
            "text + tag + week",
            {"q": "thesis", "tag": "citation", "start": START + timedelta(days=7)},
        ),
    ]
    worst = 0.0
    for name, filters in searches:
        query = SearchTranscripts(institution="hill", principal=ADMIN, limit=25, **filters)
        t0 = time.perf_counter()
        page = await store.search(query, "hill")
        first = time.perf_counter() - t0
        assert all(c.institution == "hill" or c.answered_institution == "hill" for c in page.chats)
        if page.next_cursor:
            nxt = query.model_copy(update={"cursor": page.next_cursor})
            t1 = time.perf_counter()
            await store.search(nxt, "hill")
            second = time.perf_counter() - t1
        else:
            second = 0.0
        worst = max(worst, first, second)
        print(
            f"search hill, {name}: {len(page.chats)} chats, first page {first * 1000:.0f} ms, "
            f"next page {second * 1000:.0f} ms",
            flush=True,
        )
    print(f"search: slowest page {worst * 1000:.0f} ms (target under 1000 ms)")
    await db.drop_collection("chats")
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=100_000)
    parser.add_argument("--mongodb-uri")
    args = parser.parse_args()
    if args.mongodb_uri:
        asyncio.run(run(args.mongodb_uri, args.chats))
        return
    with embedded_mongodb() as uri:
        asyncio.run(run(uri, args.chats))


if __name__ == "__main__":
    main()
