"""A saved configuration change is in force on every replica within a second: two routing
replicas and two gateways beside the session system's, each asked directly.

Each replica exposes the config bucket revision its view has applied
(`refdesk_config_revision`); the test saves through one gateway (which answers once it has
the change) and watches every other replica reach that gateway's revision. No test waits out a
cache: there is none to wait out.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from deploy.local.system import LocalSystem
from tests.client import config_everywhere, create_record, hill_queue, operator, signed_in

SCRATCH = "demo-hill-replicas"


@pytest.fixture(scope="module")
def replicas(system: LocalSystem) -> Iterator[dict[str, str]]:
    """Ops URLs of both gateways and both routing replicas."""
    system.start_service("routing", 1)
    system.start_service("gateway", 1)
    try:
        system.wait_ready("routing-1")
        system.wait_ready("gateway-1")
        # The gateway that takes the saves first: the others are measured against it.
        yield {key: system.ops_url(key) for key in ("gateway", "gateway-1", "routing", "routing-1")}
    finally:
        system.services.pop("gateway-1").stop()
        system.services.pop("routing-1").stop()


async def test_a_saved_queue_and_widget_are_in_force_on_every_replica(
    system: LocalSystem, replicas: dict[str, str]
):
    other = system.public_url("gateway-1")
    async with await signed_in(system.gateway_url, "demo-hill-admin") as admin:
        await create_record(admin, "queues", hill_queue(SCRATCH, "Replicas"))
        try:
            took = await config_everywhere(replicas.values(), timeout=1.0)
            print(f"queue created: every replica had it after {took:.3f} s")
            # The other gateway serves it, and both routing replicas cover it: requests go
            # to either replica of the queue group, so ask enough times to meet both.
            async with httpx.AsyncClient(base_url=other, headers=admin.headers) as there:
                assert (await there.get(f"/api/queues/{SCRATCH}")).status_code == 200
                for _ in range(8):
                    coverage = await there.get(
                        "/api/coverage",
                        params={"queue": SCRATCH, "from": "2026-11-23", "to": "2026-11-24"},
                    )
                    assert coverage.status_code == 200, coverage.text

                widget = (await admin.get("/api/widgets/hill")).json()
                retitled = {**widget, "title": "Ask Hill (retitled)"}
                assert (await admin.put("/api/widgets/hill", json=retitled)).status_code == 200
                try:
                    took = await config_everywhere(replicas.values(), timeout=1.0)
                    print(f"widget saved: every replica had it after {took:.3f} s")
                    assert (await there.get("/api/widgets/hill")).json() == retitled
                finally:
                    await admin.put("/api/widgets/hill", json=widget)
        finally:
            assert (await admin.delete(f"/api/queues/{SCRATCH}")).status_code == 204


async def test_an_announcement_reaches_every_signed_in_operator_on_every_gateway(
    system: LocalSystem, replicas: dict[str, str]
):
    on_first = await operator(system.gateway_url, "demo-hill-ann", [])
    on_second = await operator(system.public_url("gateway-1"), "demo-river-cat", [])
    try:
        async with await signed_in(system.gateway_url, "demo-hill-admin") as admin:
            refused = await admin.post("/api/announcements", json={"body": "Hello"})
            assert refused.status_code == 403
        async with await signed_in(system.gateway_url, "demo-admin") as coordinator:
            assert (
                await coordinator.post("/api/announcements", json={"body": ""})
            ).status_code == 422
            body = "Green light: the backup service is staffed tonight."
            sent = await coordinator.post("/api/announcements", json={"body": body})
            assert sent.status_code == 202, sent.text
        for client in (on_first, on_second):
            heard = await client.expect("announcement")
            assert (heard["id"], heard["body"]) == (sent.json()["id"], body)
            assert heard["from"]["id"] == "demo-admin"
        # Kept: any member of staff of any library reads it in the announcements' history.
        for reader in ("demo-river-cat", "demo-hill-ann"):
            async with await signed_in(system.gateway_url, reader) as staff:
                answer = await staff.get("/api/internal/announcements")
                assert answer.status_code == 200, answer.text
                history = answer.json()["messages"]
                assert [(m["id"], m["body"]) for m in history][-1] == (sent.json()["id"], body)
    finally:
        await on_first.close()
        await on_second.close()


async def test_failed_sign_ins_are_counted_across_gateways(
    system: LocalSystem, replicas: dict[str, str]
):
    """Ten wrong passwords on one gateway, and the other refuses the eleventh: the
    counters live in a bucket both follow, not in either replica's memory."""
    wrong = {"username": "demo-hill-across", "password": "guess"}
    async with httpx.AsyncClient(base_url=system.gateway_url) as first:
        for _ in range(10):
            assert (await first.post("/api/auth/login", json=wrong)).status_code == 401
    async with httpx.AsyncClient(base_url=system.public_url("gateway-1")) as second:
        assert (await second.post("/api/auth/login", json=wrong)).status_code == 429
