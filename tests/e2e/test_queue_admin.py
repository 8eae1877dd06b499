"""Queue settings through the admin API, and the coverage timeline they produce.

Runs on the session's system with the demo data; every change made here is undone (a
scratch queue is created and deleted), and a refused change must leave nothing behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio

from deploy.local.system import LocalSystem
from tests.client import hill_queue, scratch_admin, signed_in

SCRATCH = "demo-hill-scratch"


@pytest_asyncio.fixture
async def hill_admin(system: LocalSystem) -> AsyncIterator[httpx.AsyncClient]:
    queue = hill_queue(SCRATCH, "Scratch")
    async with scratch_admin(system.gateway_url, "queues", queue, SCRATCH) as http:
        yield http


async def test_bad_hours_are_refused_naming_the_field(hill_admin: httpx.AsyncClient):
    stored = (await hill_admin.get(f"/api/queues/{SCRATCH}")).json()

    async def refused(change: dict[str, Any]) -> httpx.Response:
        return await hill_admin.put(f"/api/queues/{SCRATCH}", json={**stored, **change})

    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"hours": [{"day": "funday", "open": "09:00", "close": "17:00"}]}, 422, "day"),
        ({"hours": [{"day": "mon", "open": "9am", "close": "17:00"}]}, 422, "open"),
        ({"hours": [{"day": "mon", "open": "09:00", "close": "25:00"}]}, 422, "close"),
        ({"timezone": "Mars/Olympus_Mons"}, 422, "timezone"),
        ({"holidays": {"calendar": "ZZ", "covered": False, "closures": []}}, 422, "calendar"),
        ({"fallback": ["demo-nowhere"]}, 422, "fallback"),
        ({"fallback": [SCRATCH]}, 422, "fallback"),
        ({"rollover_after_s": 1}, 422, "rollover_after_s"),
        # The backup service belongs to another institution: the coordinator's call.
        ({"fallback": ["demo-backup"]}, 403, "fallback"),
    ]
    for change, status, field in cases:
        r = await refused(change)
        assert r.status_code == status and field in r.text, (change, r.status_code, r.text)
    assert (await hill_admin.get(f"/api/queues/{SCRATCH}")).json() == stored


async def test_a_chain_that_would_loop_is_refused(
    system: LocalSystem, hill_admin: httpx.AsyncClient
):
    chained = (await hill_admin.get(f"/api/queues/{SCRATCH}")).json()
    chained["fallback"] = ["demo-hill"]
    assert (await hill_admin.put(f"/api/queues/{SCRATCH}", json=chained)).status_code == 200
    hill = (await hill_admin.get("/api/queues/demo-hill")).json()
    loop = await hill_admin.put("/api/queues/demo-hill", json={**hill, "fallback": [SCRATCH]})
    assert loop.status_code == 422
    assert f"fallback: demo-hill -> {SCRATCH} -> demo-hill would loop" in loop.text
    assert (await hill_admin.get("/api/queues/demo-hill")).json() == hill
    # In use as a fallback, the scratch queue cannot be deleted until it is unchained.
    chained["fallback"] = []
    assert (await hill_admin.put(f"/api/queues/{SCRATCH}", json=chained)).status_code == 200


async def test_only_a_consortium_admin_chains_the_backup_service(
    system: LocalSystem, hill_admin: httpx.AsyncClient
):
    async with await signed_in(system.gateway_url, "demo-admin") as coordinator:
        scratch = (await coordinator.get(f"/api/queues/{SCRATCH}")).json()
        backed = await coordinator.put(
            f"/api/queues/{SCRATCH}", json={**scratch, "fallback": ["demo-backup"]}
        )
        assert backed.status_code == 200 and backed.json()["fallback"] == ["demo-backup"]
        # The library's admin may still change the hours of the chained queue.
        later = {**backed.json(), "hours": [{"day": "tue", "open": "08:00", "close": "12:00"}]}
        edited = await hill_admin.put(f"/api/queues/{SCRATCH}", json=later)
        assert edited.status_code == 200 and edited.json()["fallback"] == ["demo-backup"]
        async with await signed_in(system.gateway_url, "demo-river-cat") as elsewhere:
            assert (await elsewhere.get(f"/api/queues/{SCRATCH}")).status_code == 404
            assert (await elsewhere.put(f"/api/queues/{SCRATCH}", json=scratch)).status_code == 404
        async with await signed_in(system.gateway_url, "demo-hill-ann") as operator:
            assert (await operator.put(f"/api/queues/{SCRATCH}", json=scratch)).status_code == 403
        assert (await coordinator.put(f"/api/queues/{SCRATCH}", json=scratch)).status_code == 200


RIVER_THANKSGIVING_WEEK = [
    # Times in UTC: River (New York) answers 09:00-18:00 on weekdays, the backup service
    # (Chicago) 17:00-08:00 on weekdays, Saturdays 10:00-22:00 and Sundays 10:00 to
    # Monday 08:00, which leaves River's weekday nights covered with no gap or overlap.
    ("2026-11-23T05:00", "2026-11-23T14:00", "demo-backup", "fallback: outside hours"),
    ("2026-11-23T14:00", "2026-11-23T23:00", "demo-river", "hours"),
    ("2026-11-23T23:00", "2026-11-24T14:00", "demo-backup", "fallback: outside hours"),
    ("2026-11-24T14:00", "2026-11-24T23:00", "demo-river", "hours"),
    ("2026-11-24T23:00", "2026-11-25T14:00", "demo-backup", "fallback: outside hours"),
    ("2026-11-25T14:00", "2026-11-25T23:00", "demo-river", "hours"),
    ("2026-11-25T23:00", "2026-11-26T05:00", "demo-backup", "fallback: outside hours"),
    # Thanksgiving starts at midnight in New York an hour before it does in Chicago.
    ("2026-11-26T05:00", "2026-11-26T06:00", "demo-backup", "fallback: holiday: Thanksgiving Day"),
    ("2026-11-26T06:00", "2026-11-27T06:00", None, "closed: holiday: Thanksgiving Day"),
    ("2026-11-27T06:00", "2026-11-27T14:00", "demo-backup", "fallback: outside hours"),
    ("2026-11-27T14:00", "2026-11-27T23:00", "demo-river", "hours"),
    ("2026-11-27T23:00", "2026-11-28T14:00", "demo-backup", "fallback: outside hours"),
    ("2026-11-28T14:00", "2026-11-28T16:00", None, "closed: outside hours"),
    ("2026-11-28T16:00", "2026-11-29T04:00", "demo-backup", "fallback: outside hours"),
    ("2026-11-29T04:00", "2026-11-29T16:00", None, "closed: outside hours"),
    ("2026-11-29T16:00", "2026-11-30T05:00", "demo-backup", "fallback: outside hours"),
]


async def test_coverage_of_river_over_thanksgiving_week(system: LocalSystem):
    async with await signed_in(system.gateway_url, "demo-river-cat") as river:
        r = await river.get(
            "/api/coverage",
            params={"queue": "demo-river", "from": "2026-11-23", "to": "2026-11-30"},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["queue"] == "demo-river"
        got = [(i["start"][:16], i["end"][:16], i["queue"], i["reason"]) for i in body["intervals"]]
        assert got == RIVER_THANKSGIVING_WEEK
        for bad, field in [
            ({"from": "2026-11-30", "to": "2026-11-23"}, "to"),
            ({"from": "next week", "to": "2026-11-30"}, "from"),
            ({"from": "2026-01-01", "to": "2026-12-31"}, "to"),
        ]:
            refused = await river.get("/api/coverage", params={"queue": "demo-river", **bad})
            assert refused.status_code == 422 and field in refused.json()["message"]
        hidden = await river.get(
            "/api/coverage", params={"queue": "demo-hill", "from": "2026-11-23", "to": "2026-11-24"}
        )
        assert hidden.status_code == 404
    async with await signed_in(system.gateway_url, "demo-admin") as coordinator:
        anyone = await coordinator.get(
            "/api/coverage", params={"queue": "demo-hill", "from": "2026-11-23", "to": "2026-11-24"}
        )
        assert anyone.json()["intervals"] == [
            {
                "start": "2026-11-23T06:00:00.000Z",
                "end": "2026-11-24T06:00:00.000Z",
                "queue": "demo-hill",
                "reason": "hours",
            }
        ]
