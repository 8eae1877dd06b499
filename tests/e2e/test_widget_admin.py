"""Widget settings through the admin API: scope by role and institution, validation that
names the field and stores nothing, and the origins that CORS on the public endpoints
follows at once.

Runs on the session's system with the demo data; the scratch widget is deleted at the end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio

from deploy.local.system import LocalSystem
from tests.client import scratch_admin, signed_in

SCRATCH = "hill-scratch"
LIBRARY_SITE = "https://library.hill.example.edu"
SCRATCH_WIDGET = {
    "id": SCRATCH,
    "institution": "hill",
    "queue": "demo-hill",
    "title": "Ask a Hill librarian",
    "allowed_origins": [LIBRARY_SITE],
    "live_socket": False,
}


@pytest_asyncio.fixture
async def hill_admin(system: LocalSystem) -> AsyncIterator[httpx.AsyncClient]:
    async with scratch_admin(system.gateway_url, "widgets", SCRATCH_WIDGET, SCRATCH) as http:
        yield http


async def test_each_institution_sees_and_manages_its_own_widgets(
    system: LocalSystem, hill_admin: httpx.AsyncClient
):
    assert [w["id"] for w in (await hill_admin.get("/api/widgets")).json()] == [
        "hill",
        SCRATCH,
    ]
    assert (await hill_admin.get(f"/api/widgets/{SCRATCH}")).json() == SCRATCH_WIDGET
    async with await signed_in(system.gateway_url, "demo-admin") as coordinator:
        everyone = [w["id"] for w in (await coordinator.get("/api/widgets")).json()]
        assert {"hill", "river", SCRATCH} <= set(everyone)
    async with await signed_in(system.gateway_url, "demo-river-cat") as cat:
        assert [w["id"] for w in (await cat.get("/api/widgets")).json()] == ["river"]
        hidden = await cat.get(f"/api/widgets/{SCRATCH}")
        assert (hidden.status_code, hidden.json()["code"]) == (404, "not_found")
    async with await signed_in(system.gateway_url, "demo-hill-ann") as ann:
        edit = await ann.put(f"/api/widgets/{SCRATCH}", json={**SCRATCH_WIDGET, "title": "Mine"})
        assert (edit.status_code, edit.json()["code"]) == (403, "forbidden")
        assert (await ann.delete(f"/api/widgets/{SCRATCH}")).status_code == 403
    again = await hill_admin.post("/api/widgets", json=SCRATCH_WIDGET)
    assert (again.status_code, again.json()["code"]) == (409, "conflict")


def names_field(body: dict[str, Any], field: str) -> bool:
    """A schema error lists the field in `fields`; a refusal's message starts with it."""
    return field in body.get("fields", []) or str(body["message"]).startswith(f"{field}:")


async def test_bad_widget_settings_are_refused_naming_the_field(hill_admin: httpx.AsyncClient):
    async def refused(change: dict[str, Any]) -> httpx.Response:
        return await hill_admin.put(f"/api/widgets/{SCRATCH}", json={**SCRATCH_WIDGET, **change})

    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"allowed_origins": ["https://library.hill.example.edu/ask"]}, 422, "allowed_origins"),
        ({"allowed_origins": ["library.hill.example.edu"]}, 422, "allowed_origins"),
        ({"allowed_origins": ["HTTPS://LIBRARY.HILL.EXAMPLE.EDU"]}, 422, "allowed_origins"),
        ({"allowed_origins": [LIBRARY_SITE, LIBRARY_SITE]}, 422, "allowed_origins"),
        ({"title": ""}, 422, "title"),
        ({"queue": "demo-nowhere"}, 422, "queue"),
        # A widget routes to its own library's queue; the chain brings in the backup.
        ({"queue": "demo-river"}, 422, "queue"),
        ({"queue": "demo-backup"}, 422, "queue"),
        ({"institution": "river"}, 422, "institution"),
        ({"id": "Hill Scratch"}, 422, "id"),
    ]
    for change, status, field in cases:
        response = await refused(change)
        assert response.status_code == status, (change, response.text)
        assert names_field(response.json(), field), (change, response.text)
        stored = (await hill_admin.get(f"/api/widgets/{SCRATCH}")).json()
        assert stored == SCRATCH_WIDGET, change
    other = await hill_admin.post(
        "/api/widgets",
        json={**SCRATCH_WIDGET, "id": "river-2", "institution": "river", "queue": "demo-river"},
    )
    assert (other.status_code, other.json()["code"]) == (404, "not_found")
    assert (await hill_admin.get("/api/widgets/river-2")).status_code == 404


async def _allowed(base: str, path: str, origin: str) -> str | None:
    """The origin a page there may read the answer from, or None when it is refused."""
    async with httpx.AsyncClient(base_url=base) as http:
        response = await http.get(path, headers={"Origin": origin})
        if response.status_code == 403:
            assert "access-control-allow-origin" not in response.headers
            return None
        assert response.status_code == 200, response.text
        return response.headers.get("access-control-allow-origin")


async def test_cors_follows_the_saved_origins_and_a_deleted_widget_is_gone(
    system: LocalSystem, hill_admin: httpx.AsyncClient
):
    base, status = system.gateway_url, f"/api/widgets/{SCRATCH}/status"
    new_site = "http://localhost:8080"
    assert await _allowed(base, status, LIBRARY_SITE) == LIBRARY_SITE
    assert await _allowed(base, status, new_site) is None
    moved = await hill_admin.put(
        f"/api/widgets/{SCRATCH}", json={**SCRATCH_WIDGET, "allowed_origins": [new_site]}
    )
    assert moved.status_code == 200, moved.text
    assert await _allowed(base, status, new_site) == new_site
    assert await _allowed(base, status, LIBRARY_SITE) is None

    # A queue a widget routes to cannot be deleted from under it.
    async with await signed_in(system.gateway_url, "demo-admin") as coordinator:
        kept = await coordinator.delete("/api/queues/demo-hill")
        assert (kept.status_code, kept.json()["code"]) == (409, "conflict")
        assert SCRATCH in kept.json()["message"]

    assert (await hill_admin.delete(f"/api/widgets/{SCRATCH}")).status_code == 204
    async with httpx.AsyncClient(base_url=base) as http:
        gone = await http.get(status)
        assert (gone.status_code, gone.json()["code"]) == (404, "not_found")
