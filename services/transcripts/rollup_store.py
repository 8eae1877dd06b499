"""Statistics rollups in MongoDB: counted as chats end, read back for `GET /api/stats`,
rebuilt from the stored transcripts. What they hold and how a span is read: rollups.py.

Collections (each document carries `institution`, and every query names it):

- `rollups`: one document per (institution, period, dimension, key), `_id`
  `<institution>|<period>|<dimension>|<key>`; read by `_id` only, since every reader can
  name the documents it needs (the embedded server looks up `_id` lists by index, and
  scans for anything else).
- `rollup_chats`, the ledger: a document per chat counted (`_id` the chat id,
  `institution` its library, `shared_with` the institution that answered it if another):
  the facts it is counted with (`facts`: no patron data), a revision `rev`, and while a
  change is on its way, the facts it moves to (`pending`, since `pending_at`).
- `rollup_institutions`: the institutions that have rollups (which the consortium's
  statistics read), each with a flag `year|<year>` for each local year it has some in, so
  that a span of any length is read only where there can be figures.

A change (a chat that ended, or whose facts changed since: tags after close, a late
message) is counted exactly once without transactions:

1. claim: the ledger entry moves from revision r with nothing pending to r+1 with the new
   facts pending, a conditional write: of two writers, one wins;
2. apply: each rollup document the change touches gets its increments with a marker
   `t_<chat>_<r+1>`, on condition that the marker is not there, so a document takes a
   change once however often it is sent;
3. finish: the ledger entry takes the new facts as counted;
4. tidy: the markers go, with the next update of the same document or, for a document
   not updated again within `TIDY_AFTER_S`, on their own.

A writer that dies part-way leaves the change pending; its events were not acknowledged,
so they come again, and a writer that finds a change pending for longer than `STALE_MS`
takes it over (a conditional write on the entry) and applies it under the same markers,
which it leaves in place (a rebuild removes them). A writer that finds a change of its
own taken over, or already applied to a document, leaves it to the one that took it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from services.transcripts import domain, rollups
from services.transcripts.rollups import Deltas, Tally
from shared.clock import Clock, iso
from shared.schemas.requests import Stats, StatsGroup, StatsGrouping, StatsQuery
from shared.store import DUPLICATE_KEY, Document, TenantCollection

log = logging.getLogger(__name__)

# How long a change may stay pending before another writer takes it over: far longer than
# a batch takes to write.
STALE_MS = 60_000
READ_CHUNK = 2000
# Markers of finished changes wait this long (or until this many documents owe some) for
# the next update of their document to take them away, before being removed on their own.
TIDY_AFTER_S = 30.0
TIDY_AT_MOST = 5000


class RollupsDeferred(Exception):
    """Some chats' changes could not be counted now (another writer holds them): their
    events are to come again."""

    def __init__(self, chat_ids: list[str]) -> None:
        super().__init__(f"{len(chat_ids)} chats' statistics deferred")
        self.chat_ids = chat_ids


def _failed(error: BulkWriteError) -> set[int]:
    """The operations of a bulk write that collided on `_id` (conditions not met)."""
    if any(e.get("code") != DUPLICATE_KEY for e in error.details.get("writeErrors", [])):
        raise error
    return {int(e["index"]) for e in error.details.get("writeErrors", [])}


def _marker(chat_id: str, rev: int) -> str:
    return f"t_{chat_id}_{rev}"


class RollupStore:
    def __init__(
        self, db: AsyncDatabase[Document], members: Callable[[], domain.Members], clock: Clock
    ) -> None:
        self.chats = db.chats
        self.docs = TenantCollection(db.rollups)
        self.ledger = TenantCollection(db.rollup_chats)
        self.registry = TenantCollection(db.rollup_institutions)
        self.members = members
        self.clock = clock
        self._registered: set[tuple[str, str]] = set()
        # Markers of this writer's finished changes still in documents: document id ->
        # (its institution, the markers, when first owed on the monotonic clock).
        self._untidy: dict[str, tuple[str, set[str], float]] = {}

    # --- counting ----------------------------------------------------------------------------

    async def record(self, chat_ids: Iterable[str]) -> None:
        """Count the ended chats among `chat_ids` as their stored documents are now: a chat
        counted before moves by the difference. Raises RollupsDeferred, after counting
        the rest, for chats whose change another writer holds."""
        ids = sorted(set(chat_ids))
        if not ids:
            return
        found = self.chats.find(
            {"_id": {"$in": ids}, "state": {"$in": list(domain.ENDED)}},
            dict.fromkeys(rollups.FACT_FIELDS, 1),
        )
        by_home: dict[str, list[Document]] = defaultdict(list)
        for doc in await found.to_list():
            by_home[str(doc["institution"])].append(doc)
        zones = self.members().zones
        deferred: list[str] = []
        for home, docs in sorted(by_home.items()):
            deferred += await self._record_home(home, docs, zones)
        await self._tidy(everything=False)
        if deferred:
            raise RollupsDeferred(deferred)

    def _now_ms(self) -> int:
        return domain.epoch_ms(self.clock.now())

    async def _record_home(
        self, home: str, docs: list[Document], zones: dict[str, str]
    ) -> list[str]:
        entries = {
            e["_id"]: e
            for e in await self.ledger.find(home, {"_id": {"$in": [d["_id"] for d in docs]}})
        }
        now = self._now_ms()
        deferred: list[str] = []
        changes: list[tuple[str, int, Document | None, Document]] = []
        for doc in docs:
            chat_id = str(doc["_id"])
            entry = entries.get(chat_id)
            if entry is not None and entry.get("pending") is not None:
                if now - int(entry.get("pending_at") or 0) < STALE_MS or not (
                    await self._take_over(home, entry)
                ):
                    deferred.append(chat_id)
                    continue
                entry = await self.ledger.find_one(home, {"_id": chat_id})
                assert entry is not None
            before = entry.get("facts") if entry else None
            after = rollups.facts(doc, zones, before)
            if after != before:
                changes.append((chat_id, int(entry["rev"]) if entry else 0, before, after))
        if not changes:
            return deferred
        claims = [
            UpdateOne(
                TenantCollection.scoped(home, {"_id": chat_id, "rev": rev, "pending": None}),
                {
                    "$set": {
                        "pending": after,
                        "pending_at": now,
                        "recovery": 0,
                        "shared_with": [o] if (o := rollups.other_side(home, after)) else [],
                    },
                    "$inc": {"rev": 1},
                },
                upsert=True,
            )
            for chat_id, rev, _, after in changes
        ]
        try:
            await self.ledger.raw.bulk_write(claims, ordered=False)
            lost: set[int] = set()
        except BulkWriteError as error:
            lost = _failed(error)
        won = [c for i, c in enumerate(changes) if i not in lost]
        deferred += [changes[i][0] for i in sorted(lost)]
        if not won:
            return deferred
        deltas: Deltas = {}
        markers: dict[str, list[str]] = defaultdict(list)
        for chat_id, rev, before, after in won:
            mine = rollups.change(chat_id, home, before, after)
            rollups.merge(deltas, mine)
            for made in mine:
                markers[made].append(_marker(chat_id, rev + 1))
        await self._register(deltas)
        if await self._apply(deltas, markers, tidy=True):
            # Another writer took some of these over meanwhile: theirs to finish.
            return deferred + [c[0] for c in won]
        finished = await self.ledger.raw.bulk_write(
            [
                UpdateOne(
                    TenantCollection.scoped(home, {"_id": chat_id, "rev": rev + 1, "recovery": 0}),
                    {"$set": {"facts": after, "pending": None, "pending_at": None}},
                )
                for chat_id, rev, _, after in won
            ],
            ordered=False,
        )
        if finished.matched_count == len(won):
            # Nobody took any of them over: their markers may go.
            owed_since = self.clock.monotonic()
            for made, marks in markers.items():
                institution, owed, since = self._untidy.get(
                    made, (deltas[made].institution, set(), owed_since)
                )
                self._untidy[made] = (institution, owed | set(marks), since)
        return deferred

    async def _tidy(self, everything: bool) -> None:
        """Remove the markers owed for long enough (all of them: `everything`)."""
        now = self.clock.monotonic()
        due = [
            made
            for made, (_, _, since) in self._untidy.items()
            if everything or len(self._untidy) > TIDY_AT_MOST or now - since >= TIDY_AFTER_S
        ]
        if not due:
            return
        ops = []
        for made in due:
            institution, owed, _ = self._untidy.pop(made)
            scoped = TenantCollection.scoped(institution, {"_id": made})
            ops.append(UpdateOne(scoped, {"$unset": dict.fromkeys(sorted(owed), "")}))
        await self.docs.raw.bulk_write(ops, ordered=False)

    async def _apply(
        self, deltas: Deltas, markers: dict[str, list[str]], tidy: bool = False
    ) -> bool:
        """Add each change to its document unless the document has its markers; True
        when some document had them (already applied). `tidy`: take away the markers
        this writer owes the document (never while taking over another's change)."""
        ops = []
        for made, delta in deltas.items():
            marks = markers[made]
            update: Document = {
                "$setOnInsert": {"period": delta.period, "dim": delta.dim, "key": delta.key},
                "$set": dict.fromkeys([*marks, *sorted(delta.flags)], 1),
            }
            if delta.inc:
                update["$inc"] = dict(delta.inc)
            if tidy and made in self._untidy:
                _, owed, _ = self._untidy.pop(made)
                update["$unset"] = dict.fromkeys(sorted(owed), "")
            condition = {"_id": made, **{m: {"$exists": False} for m in marks}}
            scoped = TenantCollection.scoped(delta.institution, condition)
            ops.append(UpdateOne(scoped, update, upsert=True))
        if not ops:
            return False
        try:
            await self.docs.raw.bulk_write(ops, ordered=False)
        except BulkWriteError as error:
            return bool(_failed(error))
        return False

    async def _take_over(self, home: str, entry: Document) -> bool:
        """Finish a change its writer left pending (it died, or stalled): claimed by a
        conditional write, applied under the same markers, which stay. False when
        another writer took it first."""
        chat_id, rev = str(entry["_id"]), int(entry["rev"])
        taken = await self.ledger.update_one(
            home,
            {"_id": chat_id, "rev": rev, "pending_at": entry.get("pending_at")},
            {"$set": {"pending_at": self._now_ms()}, "$inc": {"recovery": 1}},
        )
        if taken.matched_count == 0:
            return False
        log.warning("taking over the statistics change of chat %s left pending", chat_id)
        deltas = rollups.change(chat_id, home, entry.get("facts"), entry["pending"])
        await self._register(deltas)
        await self._apply(deltas, {made: [_marker(chat_id, rev)] for made in deltas})
        done = {"facts": entry["pending"], "pending": None, "pending_at": None, "recovery": 0}
        await self.ledger.update_one(home, {"_id": chat_id, "rev": rev}, {"$set": done})
        return True

    async def _register(self, deltas: Deltas) -> None:
        """Note the institutions and local years these changes count in."""
        seen = {(d.institution, d.period[:4]) for d in deltas.values()}
        for name, year in sorted(seen - self._registered):
            await self.registry.update_one(
                name, {"_id": name}, {"$set": {f"year|{year}": 1}}, upsert=True
            )
            self._registered.add((name, year))

    @staticmethod
    def _years(doc: Document) -> list[int]:
        return sorted(int(k[5:]) for k in doc if k.startswith("year|"))

    async def institutions(self) -> dict[str, list[int]]:
        """Every institution with rollups, and the local years it has some in (the list
        of institutions is not tenant data)."""
        docs = await self.registry.raw.find({}).to_list()
        return {str(d["_id"]): self._years(d) for d in sorted(docs, key=lambda d: d["_id"])}

    # --- reading -----------------------------------------------------------------------------

    async def _by_id(self, institution: str, ids: list[str]) -> list[Document]:
        found: list[Document] = []
        for at in range(0, len(ids), READ_CHUNK):
            found += await self.docs.find(institution, {"_id": {"$in": ids[at : at + READ_CHUNK]}})
        return found

    async def _ledger(self, institution: str, chat_ids: set[str]) -> list[Document]:
        """Ledger entries of chats counted for `institution`: its own patrons', and other
        libraries' it answered (shared with it)."""
        ids = sorted(chat_ids)
        found: list[Document] = []
        for at in range(0, len(ids), READ_CHUNK):
            chunk = {"_id": {"$in": ids[at : at + READ_CHUNK]}}
            found += await self.ledger.find(institution, chunk)
            shared_with = {**chunk, "shared_with": institution}
            found += await self.ledger.raw.find(shared_with).to_list()
        return found

    async def tally(
        self,
        institution: str,
        years: list[int],
        start: datetime,
        end: datetime,
        group_by: StatsGrouping | None,
    ) -> tuple[Tally, dict[str, Tally]]:
        """An institution's figures for [start, end), and by group (rollups.plan): local
        months and whole days from their documents (less, for a month read whole, its days
        outside the span); the hours of a day the span starts or ends in from the day's
        hour documents; chats of an hour the span cuts one by one from the ledger, by when
        each was created. `years`: the local years it has figures in; the span is read
        within them only."""
        total = Tally()
        groups: dict[str, Tally] = defaultdict(Tally)
        if not years:
            return total, groups
        # A day's margin either side: a local year starts within a day of UTC's.
        start = max(start, datetime(years[0] - 1, 12, 31, tzinfo=UTC))
        end = min(end, datetime(years[-1] + 1, 1, 2, tzinfo=UTC))
        zone = self.members().zones.get(institution, "UTC")
        plan = rollups.plan(zone, start, end, group_by)
        sign_of = dict(plan.periods())
        alls = await self._by_id(
            institution, [rollups.doc_id(institution, p, "all") for p in sign_of]
        )
        for doc in alls:
            sign = sign_of[str(doc["period"])]
            total.add(doc, sign)
            if group_by == "day":
                groups[str(doc["period"])].add(doc, sign)
        if group_by is not None and group_by != "day":
            wanted = [
                rollups.doc_id(institution, str(doc["period"]), group_by, key)
                for doc in alls
                for key in rollups.period_keys(
                    str(doc["period"]), group_by, rollups.listed_keys(doc, group_by)
                )
            ]
            for doc in await self._by_id(institution, wanted):
                groups[str(doc["key"])].add(doc, sign_of[str(doc["period"])])
        if plan.parts:
            await self._parts(institution, plan.parts, start, end, group_by, total, groups)
        return total, groups

    async def _parts(
        self,
        institution: str,
        parts: list[rollups.PartDay],
        start: datetime,
        end: datetime,
        group_by: StatsGrouping | None,
        total: Tally,
        groups: dict[str, Tally],
    ) -> None:
        """The days the span starts or ends in: their whole hours from hour documents
        (grouped by queue, operator, tag or institution: from the ledger too, since hour
        documents have no such keys), the hours it cuts chat by chat."""
        whole_hours = group_by in (None, "day", "hour")
        hour_docs = {
            str(d["_id"]): d
            for d in await self._by_id(
                institution,
                [
                    rollups.doc_id(institution, part.day, "hour", key)
                    for part in parts
                    for key in (*part.hours, *part.cut)
                ],
            )
        }
        # Chats to count one by one: the sign each counts with, and whether only if it
        # was created in the span (a cut hour added) or only if not (one taken away).
        one_by_one: dict[str, tuple[int, bool | None]] = {}
        for part in parts:
            sign = -1 if part.less else 1
            for key in part.hours:
                doc = hour_docs.get(rollups.doc_id(institution, part.day, "hour", key))
                if doc is None:
                    continue
                if whole_hours:
                    total.add(doc, sign)
                    if group_by is not None:
                        groups[part.day if group_by == "day" else key].add(doc, sign)
                else:
                    for chat_id in rollups.hour_chats(doc, "home") + rollups.hour_chats(
                        doc, "other"
                    ):
                        one_by_one[chat_id] = (sign, None)
            for key in part.cut:
                doc = hour_docs.get(rollups.doc_id(institution, part.day, "hour", key))
                if doc is not None:
                    for chat_id in rollups.hour_chats(doc, "home") + rollups.hour_chats(
                        doc, "other"
                    ):
                        one_by_one[chat_id] = (sign, not part.less)
        if not one_by_one:
            return
        since, until = domain.epoch_ms(start), domain.epoch_ms(end)
        for entry in await self._ledger(institution, set(one_by_one)):
            made = entry.get("facts")
            owner = str(entry["institution"])
            side = rollups.side_of(institution, owner, made) if made else None
            if side is None or made is None:
                continue
            sign, wanted = one_by_one[str(entry["_id"])]
            if wanted is not None and (since <= int(made["created_ms"]) < until) != wanted:
                continue
            counts = rollups.side_counters(made, side)
            total.add(counts, sign)
            if group_by is not None:
                for key in rollups.group_keys(owner, made, side, group_by):
                    groups[key].add(counts, sign)

    async def stats(self, query: StatsQuery, inst: str | None) -> Stats:
        """The span's figures for an institution (None: the consortium, with a breakdown
        by institution), grouped if asked."""
        consortium = inst is None
        if inst is None:
            names = await self.institutions()
        else:
            found = await self.registry.find_one(inst, {"_id": inst})
            names = {inst: self._years(found) if found else []}
        total = Tally()
        groups: dict[str, Tally] = defaultdict(Tally)
        breakdown: list[StatsGroup] = []
        for name, years in names.items():
            mine, by_key = await self.tally(name, years, query.start, query.end, query.group_by)
            total.merge(mine)
            for key, tally in by_key.items():
                groups[key].merge(tally)
            if consortium and not mine.empty(consortium=False):
                breakdown.append(StatsGroup(key=name, **mine.figures(False).model_dump()))
        return Stats(
            **total.figures(consortium).model_dump(),
            institution=inst,
            start=iso(query.start),
            end=iso(query.end),
            group_by=query.group_by,
            groups=[
                StatsGroup(key=key, **tally.figures(consortium).model_dump())
                for key, tally in sorted(groups.items())
                if not tally.empty(consortium)
            ],
            institutions=breakdown,
        )

    # --- rebuilding ------------------------------------------------------------------------

    async def rebuild(self, progress: Callable[[int], None] | None = None) -> dict[str, int]:
        """Count everything again from the stored transcripts, in the time zones as they
        are now: every ended chat's facts from its document, and those of chats no longer
        stored (deleted by retention or erasure) from the ledger, each put in its local day
        anew. Run with the transcripts service stopped: it replaces every rollup."""
        zones = self.members().zones
        built: Deltas = {}
        seen: set[str] = set()
        ledger_ops: list[UpdateOne] = []
        counted = {"stored": 0, "ledger_only": 0}

        async def flush_ledger(force: bool = False) -> None:
            if ledger_ops and (force or len(ledger_ops) >= 1000):
                await self.ledger.raw.bulk_write(list(ledger_ops), ordered=False)
                ledger_ops.clear()

        def count(chat_id: str, home: str, made: Document) -> None:
            rollups.merge(built, rollups.contribution(chat_id, home, made))
            other = rollups.other_side(home, made)
            ledger_ops.append(
                UpdateOne(
                    TenantCollection.scoped(home, {"_id": chat_id}),
                    {
                        "$set": {
                            "facts": made,
                            "pending": None,
                            "pending_at": None,
                            "recovery": 0,
                            "shared_with": [other] if other else [],
                        },
                        "$inc": {"rev": 1},
                    },
                    upsert=True,
                )
            )
            if progress is not None:
                progress(1)

        cursor = self.chats.find(
            {"state": {"$in": list(domain.ENDED)}}, dict.fromkeys(rollups.FACT_FIELDS, 1)
        )
        async for doc in cursor:
            chat_id = str(doc["_id"])
            seen.add(chat_id)
            count(chat_id, str(doc["institution"]), rollups.facts(doc, zones, None))
            counted["stored"] += 1
            await flush_ledger()
        async for entry in self.ledger.raw.find({}):
            chat_id = str(entry["_id"])
            made = entry.get("pending") or entry.get("facts")
            if chat_id in seen or made is None:
                continue
            home = str(entry["institution"])
            bare = {k: v for k, v in made.items() if k not in ("slot", "answered_slot")}
            count(chat_id, home, rollups.with_slots(bare, home, zones, None))
            counted["ledger_only"] += 1
            await flush_ledger()
        await flush_ledger(force=True)
        names = sorted({d.institution for d in built.values()} | set(await self.institutions()))
        for name in names:
            await self.docs.raw.delete_many({"institution": name})
        fresh = [rollups.new_document(made, delta) for made, delta in built.items()]
        for at in range(0, len(fresh), 1000):
            await self.docs.raw.insert_many(fresh[at : at + 1000], ordered=False)
        self._registered.clear()
        self._untidy.clear()
        for name in names:
            await self.registry.raw.delete_many({"institution": name})
        await self._register(built)
        counted["documents"] = len(fresh)
        return counted
