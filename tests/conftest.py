"""Session-wide real servers, and the whole system as processes for end-to-end tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio

from deploy.local import demo_data
from deploy.local.system import LocalSystem, Ports
from shared import store
from shared.bus import Bus
from tests.client import eventually, signed_in
from tests.servers import Servers, real_servers

E2E_DB = "refdesk_e2e"
# Short waits, so that expiries and grace periods can be watched happen.
OFFER_TIMEOUT_S = 3
OWNER_GRACE_S = 3
PATRON_GRACE_S = 3
E2E_ENV = {
    "REFDESK_HEARTBEAT_S": "2",
    "REFDESK_OFFER_TIMEOUT_S": str(OFFER_TIMEOUT_S),
    "REFDESK_OWNER_GRACE_S": str(OWNER_GRACE_S),
    "REFDESK_PATRON_GRACE_S": str(PATRON_GRACE_S),
    # Widget availability must follow presence events and window edges: the safety tick
    # is out of reach of every test.
    "REFDESK_WIDGET_TICK_S": "3600",
    # A test machine stalls for reasons of its own (browsers, many processes on two cores):
    # the overload refusal is tested on its own, not left to chance in every journey.
    "REFDESK_MAX_LOOP_LAG_S": "5",
    "REFDESK_MAX_FRAME_WAIT_S": "10",
    # Every test signs in from 127.0.0.1: the per-address allowance would count the whole
    # suite's deliberate failures as one sprayer's (per name and per name-and-address stay).
    "REFDESK_LOGIN_FAILURES_PER_ADDRESS": "1000",
    # Likewise the per-address caps on patron sockets and chat starts (tests/e2e/test_edges
    # runs a system of its own with tight ones).
    "REFDESK_PATRON_SOCKETS_PER_ADDRESS": "1000",
    "REFDESK_CHAT_STARTS_PER_MINUTE": "100000",
}


# Each test is marked by the directory it lives in, so that `-m unit` runs the pure tests
# in seconds and `-m "not e2e"` starts no whole system (browser tests start one too).
MARKS_BY_DIRECTORY = {
    "unit": ("unit",),
    "integration": ("integration",),
    "e2e": ("e2e",),
    "browser": ("browser", "e2e"),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for mark in MARKS_BY_DIRECTORY.get(item.path.parent.name, ()):
            item.add_marker(mark)


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    with real_servers(tmp_path_factory.mktemp("servers")) as found:
        yield found


@pytest_asyncio.fixture(scope="session")
async def bus(servers: Servers) -> AsyncIterator[Bus]:
    connected = await Bus.connect(servers.nats_url, "tests")
    await connected.ensure_chat_stream()
    yield connected
    await connected.close()


async def _load_demo(uri: str, db: str) -> None:
    client = store.connect(uri, "tests")
    try:
        await demo_data.load(store.database(client, db))
    finally:
        await client.close()


def start_system(
    servers: Servers,
    data: Path,
    db: str = E2E_DB,
    env: dict[str, str] | None = None,
    own_nats: bool = False,
) -> LocalSystem:
    """The whole system on the session's servers. `own_nats`: on a nats-server of its own,
    for a system running beside the session's (two on one server would share endpoints,
    buckets and the transcripts consumer)."""
    asyncio.run(_load_demo(servers.mongodb_uri, db))
    system = LocalSystem(
        data=data,
        ports=Ports.free(),
        mongodb_uri=servers.mongodb_uri,
        nats_url=None if own_nats else servers.nats_url,
        nats_users={} if own_nats else servers.nats_users,
        extra_env={"REFDESK_MONGODB_DB": db, **E2E_ENV, **(env or {})},
    )
    try:
        system.start_infra()
        system.start_services()
    except Exception:
        system.stop()
        raise
    return system


@pytest.fixture(scope="session")
def system(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    running = start_system(servers, tmp_path_factory.mktemp("system"))
    yield running
    running.stop()


# Tuesday 24 November 2026, 10:00 in New York (River's time zone).
TUESDAY_10_NEW_YORK = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
TUESDAY_ROLLOVER_S = 5
ALL_DAY = [
    {"day": d, "open": "00:00", "close": "24:00"} for d in ("mon", "tue", "wed", "thu", "fri")
]


@contextmanager
def tuesday_system(servers: Servers, data: Path, db: str) -> Iterator[LocalSystem]:
    """A system of its own with every service's clock shifted to a Tuesday morning, so that
    River's hours are open whatever the day the tests run. The consortium admin has turned
    on daytime hours for the backup service (the demo has it on nights and weekends only)
    and a short rollover for River."""
    shift = (TUESDAY_10_NEW_YORK - datetime.now(UTC)).total_seconds()
    running = start_system(
        servers,
        data,
        db=db,
        env={"REFDESK_CLOCK_SHIFT_S": f"{shift:.3f}"},
        own_nats=True,
    )
    try:
        asyncio.run(_daytime_backup(running.gateway_url))
        yield running
    finally:
        running.stop()


async def _daytime_backup(base: str) -> None:
    async with await signed_in(base, "demo-admin") as http:
        backup = (await http.get("/api/queues/demo-backup")).json()
        backup["hours"] += ALL_DAY
        assert (await http.put("/api/queues/demo-backup", json=backup)).status_code == 200
        river = (await http.get("/api/queues/demo-river")).json()
        river["rollover_after_s"] = TUESDAY_ROLLOVER_S
        assert (await http.put("/api/queues/demo-river", json=river)).status_code == 200
        # Routing reads both from one configuration snapshot: once its coverage of the
        # backup queue shows the daytime hours, the rollover change is in force too.

        async def in_force() -> bool | None:
            coverage = await http.get(
                "/api/coverage", params=TUESDAY_SPAN | {"queue": "demo-backup"}
            )
            answered = {i["queue"] for i in coverage.json()["intervals"]}
            return True if answered == {"demo-backup"} else None

        await eventually(in_force, "the backup's daytime hours in routing's configuration")


# The Tuesday as a span the coverage endpoint takes (local dates of the queue).
TUESDAY_SPAN = {"from": "2026-11-24", "to": "2026-11-25"}


async def fallback_in_force(base: str, queue: str, fallback: list[str]) -> None:
    """Wait until routing's coverage of `queue` on the Tuesday follows its saved fallback
    (someone else answers outside its hours exactly when it has a fallback)."""
    async with await signed_in(base, "demo-admin") as http:

        async def in_force() -> bool | None:
            coverage = await http.get("/api/coverage", params=TUESDAY_SPAN | {"queue": queue})
            others = {i["queue"] for i in coverage.json()["intervals"]} - {None, queue}
            return True if others <= set(fallback) and bool(others) == bool(fallback) else None

        await eventually(in_force, f"fallback {fallback} of {queue} in routing's configuration")
