"""Coverage end to end: fallback to the backup service, rollover, who sees the transcript,
live widget status, and the queue settings that drive them.

This module runs its own system on its own database, with every service's clock shifted to
Tuesday 24 November 2026, 10:00 in New York (see `tuesday_system`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from deploy.local.system import LocalSystem
from services.routing import domain
from shared import subjects
from shared.bus import Bus
from shared.schemas.events import parse_chat_record
from tests.client import (
    ProtocolClient,
    eventually,
    operator,
    patron,
    signed_in,
    widget_says,
)
from tests.conftest import (
    OFFER_TIMEOUT_S,
    OWNER_GRACE_S,
    PATRON_GRACE_S,
    TUESDAY_ROLLOVER_S,
    fallback_in_force,
    tuesday_system,
)
from tests.servers import Servers

DB = "refdesk_coverage"
ROLLOVER_S = TUESDAY_ROLLOVER_S
TIMING = domain.Timing(
    offer_timeout_s=OFFER_TIMEOUT_S, owner_grace_s=OWNER_GRACE_S, patron_grace_s=PATRON_GRACE_S
)


@pytest.fixture(scope="module")
def shifted(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    with tuesday_system(servers, tmp_path_factory.mktemp("coverage"), DB) as running:
        yield running


async def _get(base: str, username: str, path: str, **params: str) -> httpx.Response:
    async with await signed_in(base, username) as http:
        return await http.get(path, params=params)


async def _transcript(base: str, username: str, chat_id: str) -> httpx.Response:
    """The transcript, for a user who may see it, once the recorder has the chat in its
    final state (until then it is 404, or an earlier state)."""

    async def recorded() -> httpx.Response | None:
        r = await _get(base, username, f"/api/transcripts/{chat_id}")
        return r if r.status_code == 200 and r.json()["chat"]["state"] == "closed" else None

    return await eventually(recorded, f"transcript of {chat_id}, closed")


async def river_and_backup(base: str) -> tuple[ProtocolClient, ProtocolClient, ProtocolClient]:
    """River's Cat and the backup service's Dan signed in, and a patron on River's widget."""
    cat = await operator(base, "demo-river-cat", ["demo-river"])
    dan = await operator(base, "demo-backup-dan", ["demo-backup"])
    return cat, dan, await patron(base, "river")


async def queued_at(pat: ProtocolClient, question: str, queue: str) -> str:
    """The patron starts a chat, which is queued at `queue`: its id."""
    started = await pat.ok({"type": "chat.start", "question": question})
    assert (await pat.expect("chat.queued"))["queue"] == queue
    chat_id: str = started["chat_id"]
    return chat_id


async def _close_all(*clients: ProtocolClient) -> None:
    for client in clients:
        await client.close()


async def test_unstaffed_library_falls_back_to_the_backup_service(shifted: LocalSystem):
    base = shifted.gateway_url
    dan = await operator(base, "demo-backup-dan", ["demo-backup"])
    pat = await patron(base, "river")
    try:
        await widget_says(
            pat, {"online": True, "queue": "demo-backup", "reason": "fallback: unstaffed"}
        )
        chat_id = await queued_at(pat, "Is the archive open?", "demo-backup")
        added = await dan.expect("queue.chat_added")
        assert added["chat"]["id"] == chat_id and added["chat"]["institution"] == "river"
        claimed = await dan.ok({"type": "chat.claim", "chat_id": chat_id})
        assert claimed["chat"]["answered_institution"] == "backup"
        assert [m["body"] for m in claimed["messages"]] == ["Is the archive open?"]
        await dan.ok({"type": "message", "chat_id": chat_id, "body": "Until 6pm today."})
        assert (await pat.expect("message"))["body"] == "Until 6pm today."
        await dan.ok({"type": "chat.close", "chat_id": chat_id})
        record = (await _transcript(base, "demo-river-cat", chat_id)).json()
        assert record["routing"] == [
            {
                "at": record["routing"][0]["at"],
                "trigger": "start",
                "queue": "demo-backup",
                "reason": "fallback: unstaffed",
                "skipped": [{"queue": "demo-river", "reason": "unstaffed"}],
            }
        ]
        # The patron's time is the shifted clock's: a Tuesday morning in New York.
        assert record["chat"]["created_at"].startswith("2026-11-24T15:")
    finally:
        await _close_all(pat, dan)


async def test_rollover_moves_an_unclaimed_chat_and_the_backup_answers_it(shifted: LocalSystem):
    base = shifted.gateway_url
    cat, dan, pat = await river_and_backup(base)
    try:
        chat_id = await queued_at(pat, "Interlibrary loan?", "demo-river")
        rolled = await pat.expect("chat.rolled_over", timeout=ROLLOVER_S + 5)
        assert rolled["from_queue"] == "demo-river" and rolled["queue"] == "demo-backup"
        assert rolled["reason"] == f"rollover timeout {ROLLOVER_S}s"
        # The watchers of both queues hear of it.
        assert (await cat.expect("chat.rolled_over"))["chat_id"] == chat_id
        assert (await dan.expect("chat.rolled_over"))["chat_id"] == chat_id
        await dan.ok({"type": "chat.claim", "chat_id": chat_id})
        assert (await pat.expect("chat.claimed"))["operator"] == "Dan"
        await dan.ok({"type": "chat.close", "chat_id": chat_id})

        river = await _transcript(base, "demo-river-cat", chat_id)
        assert river.status_code == 200
        routing = river.json()["routing"]
        assert [(r["trigger"], r["queue"], r["reason"]) for r in routing] == [
            ("start", "demo-river", "hours"),
            ("rollover", "demo-backup", f"rollover timeout {ROLLOVER_S}s"),
        ]
        # Never early, on routing's own clock (the instant it is due is unit-tested in
        # tests/unit/test_rollover.py with a clock the test moves).
        queued, moved = (datetime.fromisoformat(r["at"]) for r in routing)
        assert (moved - queued).total_seconds() >= ROLLOVER_S
        chat = river.json()["chat"]
        assert (chat["institution"], chat["answered_institution"], chat["answered_queue"]) == (
            "river",
            "backup",
            "demo-backup",
        )
        assert (await _transcript(base, "demo-backup-dan", chat_id)).status_code == 200
        hill = await _get(base, "demo-hill-ann", f"/api/transcripts/{chat_id}")
        assert hill.status_code == 404 and hill.json()["code"] == "not_found"

        span = {"from": "2026-11-24T00:00:00Z", "to": "2026-11-25T00:00:00Z"}
        home = (await _get(base, "demo-river-cat", "/api/stats", **span)).json()
        assert home["answered_by_backup"] >= 1 and home["chats"] >= home["answered_by_backup"]
        vendor = (await _get(base, "demo-backup-dan", "/api/stats", **span)).json()
        assert vendor["answered_for_others"] >= 1 and vendor["chats"] == 0
    finally:
        await _close_all(pat, cat, dan)


async def _set_fallback(base: str, queue: str, fallback: list[str]) -> None:
    async with await signed_in(base, "demo-admin") as http:
        stored = (await http.get(f"/api/queues/{queue}")).json()
        saved = await http.put(f"/api/queues/{queue}", json={**stored, "fallback": fallback})
        assert saved.status_code == 200, saved.text
    await fallback_in_force(base, queue, fallback)


async def test_switching_rollover_off_keeps_a_waiting_chat_at_home(shifted: LocalSystem):
    """The coordinator takes the backup service out of River's chain while a chat waits:
    when its timeout comes, the chat stays in River's queue, and says why, once."""
    base = shifted.gateway_url
    cat, dan, pat = await river_and_backup(base)
    try:
        chat_id = await queued_at(pat, "Is the map room open?", "demo-river")
        assert shifted.nats_url is not None
        bus = await Bus.connect(shifted.nats_url, "rollover-test")
        try:
            held = asyncio.get_running_loop().create_future()

            async def on_record(msg: Any) -> None:
                record = parse_chat_record(msg.data)
                if any(e.type == "rollover_held" for e in record.events) and not held.done():
                    held.set_result(record)

            sub = await bus.nc.subscribe(subjects.chat_events("river", chat_id), cb=on_record)
            await _set_fallback(base, "demo-river", [])
            record = await asyncio.wait_for(held, timeout=4 * ROLLOVER_S)
            await sub.unsubscribe()
            # Held once, and nothing left to come due: no later timeout can move it.
            assert record.state.chat.queue == "demo-river"
            assert domain.deadlines(record.state, TIMING) == []
            last = await bus.last_chat_record(chat_id)
            assert last is not None and last[0].state == record.state
        finally:
            await bus.close()
        assert not [f for f in pat.frames if f["type"] == "chat.rolled_over"]
        await cat.ok({"type": "chat.claim", "chat_id": chat_id})
        await cat.ok({"type": "chat.close", "chat_id": chat_id})
        routing = (await _transcript(base, "demo-river-cat", chat_id)).json()["routing"]
        assert [(r["trigger"], r["queue"], r["reason"]) for r in routing] == [
            ("start", "demo-river", "hours"),
            ("rollover", None, "rollover held: no later queue in the chain"),
        ]
    finally:
        await _set_fallback(base, "demo-river", ["demo-backup"])
        await _close_all(pat, cat, dan)


async def test_the_backup_hands_a_chat_back_to_the_patrons_library(shifted: LocalSystem):
    base = shifted.gateway_url
    dan = await operator(base, "demo-backup-dan", ["demo-backup"])
    pat = await patron(base, "river")
    cat: ProtocolClient | None = None
    try:
        started = await pat.ok({"type": "chat.start", "question": "Can I renew a thesis?"})
        chat_id = started["chat_id"]
        assert (await pat.expect("chat.queued"))["queue"] == "demo-backup"
        await dan.ok({"type": "chat.claim", "chat_id": chat_id})
        cat = await operator(base, "demo-river-cat", ["demo-river"])
        # Only the patron's own library, never a third one.
        for to in ({"queue": "demo-hill"}, {"operator": "demo-hill-ann"}):
            refused = await dan.request(
                {"type": "chat.transfer", "chat_id": chat_id, "to": to, "cross_institution": True}
            )
            assert (refused["type"], refused["code"]) == ("error", "not_found"), refused
        note = "Your library can renew it"
        back = {"type": "chat.transfer", "chat_id": chat_id, "to": {"queue": "demo-river"}}
        # Outside the backup service's own institution only when it says so.
        unsaid = await dan.request({**back, "note": note})
        assert (unsaid["type"], unsaid["code"]) == ("error", "forbidden"), unsaid
        assert "cross_institution" in unsaid["message"]
        await dan.ok({**back, "note": note, "cross_institution": True})
        offer = await cat.expect("transfer.offer")
        assert (offer["chat_id"], offer["to_queue"], offer["note"]) == (chat_id, "demo-river", note)
        assert [m["body"] for m in offer["messages"]] == ["Can I renew a thesis?"]
        accepted = await cat.ok({"type": "transfer.accept", "chat_id": chat_id})
        assert accepted["chat"]["home_queue"] == "demo-river"
        assert (accepted["chat"]["owner"], accepted["chat"]["queue"]) == (
            "demo-river-cat",
            "demo-river",
        )
        assert (await pat.expect("chat.transferred"))["operator"] == "Cat"
        assert (await dan.expect("transfer.accepted"))["operator"] == "demo-river-cat"
        await cat.ok({"type": "message", "chat_id": chat_id, "body": "Renewed until June."})
        assert (await pat.expect("message"))["body"] == "Renewed until June."
        await cat.ok({"type": "chat.close", "chat_id": chat_id})

        chat = (await _transcript(base, "demo-river-cat", chat_id)).json()["chat"]
        assert (chat["queue"], chat["queue_institution"], chat["owner"]) == (
            "demo-river",
            "river",
            "demo-river-cat",
        )
        # The backup answered first and keeps the transcript; Hill never had a part.
        assert (chat["answered_institution"], chat["answered_queue"]) == ("backup", "demo-backup")
        assert (await _transcript(base, "demo-backup-dan", chat_id)).status_code == 200
        hill = await _get(base, "demo-hill-ann", f"/api/transcripts/{chat_id}")
        assert hill.status_code == 404
    finally:
        await _close_all(pat, dan, *([cat] if cat else []))


async def _status_after(pat: ProtocolClient, online: bool, change: Any) -> float:
    """Seconds from a change (awaited) to the widget's status frame saying `online`."""
    began = time.monotonic()
    await change()
    await pat.expect(lambda f: f["type"] == "widget.status" and f["online"] is online)
    return time.monotonic() - began


async def test_widget_status_follows_the_operators_by_event(shifted: LocalSystem):
    base = shifted.gateway_url
    pat = await patron(base, "hill")
    ann = await operator(base, "demo-hill-ann", ["demo-hill"], status="away")
    try:
        assert pat.frames[-1]["widget"]["online"] is False
        # Away, monitoring is not answering: the widget stays offline.
        assert (await _get(base, "demo-hill-ann", "/api/widgets/hill/status")).json() == {
            "online": False,
            "queue": None,
            "reason": "unstaffed",
            "live_socket": False,
            "invitations": [],
        }
        coming = await _status_after(
            pat, True, lambda: ann.ok({"type": "status.set", "status": "online"})
        )
        status = (await _get(base, "demo-hill-ann", "/api/widgets/hill/status")).json()
        assert status == {
            "online": True,
            "queue": "demo-hill",
            "reason": "hours",
            "live_socket": False,
            "invitations": [],
        }
        going = await _status_after(
            pat, False, lambda: ann.ok({"type": "status.set", "status": "offline"})
        )
        print(f"widget.status: online after {coming:.2f} s, offline after {going:.2f} s")
        assert coming < 2.0 and going < 2.0
    finally:
        await _close_all(pat, ann)


async def test_a_missed_chat_at_the_backup_service_is_the_home_librarys_missed_chat(
    shifted: LocalSystem,
):
    base = shifted.gateway_url
    dan = await operator(base, "demo-backup-dan", ["demo-backup"])
    pat = await patron(base, "river")
    try:
        started = await pat.ok({"type": "chat.start", "question": "Anyone there?"})
        assert (await pat.expect("chat.queued"))["queue"] == "demo-backup"
        ended = await pat.ok({"type": "chat.end", "chat_id": started["chat_id"]})
        assert ended["state"] == "missed"
        since = {"since": "2026-11-24T00:00:00Z"}

        async def recorded_missed() -> dict | None:
            river = (await _get(base, "demo-river-cat", "/api/chats/missed", **since)).json()
            return next((c for c in river["chats"] if c["id"] == started["chat_id"]), None)

        missed = await eventually(recorded_missed, "the missed chat in River's list")
        assert (missed["queue"], missed["queue_institution"]) == ("demo-backup", "backup")
        for other in ("demo-backup-dan", "demo-hill-ann"):
            theirs = (await _get(base, other, "/api/chats/missed", **since)).json()
            assert started["chat_id"] not in [c["id"] for c in theirs["chats"]]
        naive = await _get(base, "demo-river-cat", "/api/chats/missed", since="2026-11-24")
        assert naive.status_code == 422
    finally:
        await _close_all(pat, dan)
