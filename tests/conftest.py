"""Session-wide real servers, and the whole system as processes for end-to-end tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from deploy.local import demo_data
from deploy.local.system import LocalSystem, Ports
from shared import store
from shared.bus import Bus
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
}


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
