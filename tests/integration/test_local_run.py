"""The local run's files are its user's alone (deploy/local, what `make run` starts): in a
data directory an earlier run left readable by everyone, and from a process whose umask
lets everyone read, the NATS users' passwords and the configuration holding them (the
admin's among them), the JWT secret, MongoDB's files, the logs and the mail outbox end up
0600 in 0700 directories, the new ones made so and the old ones tightened.

nx-27017, the MongoDB server of the local run, has no authentication (see
docs/security.md): what can be checked is that it, and nats-server, listen on the loopback
interface alone."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pymongo
import pytest

from deploy.local.processes import port_open
from deploy.local.system import LocalSystem, Ports
from shared.bus import Bus

EARLIER = {
    "nats-auth.conf": '{"authorization": {"users": []}}',
    "jwt-secret": "an earlier run's secret",
    "logs/routing.log": "an earlier run's log\n",
    "outbox/earlier.eml": "To: pat@example.org\nSubject: [T1] Earlier\n\nAn earlier mail.\n",
}


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """This process makes files readable by everyone unless told otherwise."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def earlier_run(data: Path) -> None:
    """A data directory as runs before this change left it: readable by every user."""
    for name, text in EARLIER.items():
        path = data / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o644)
    for folder in (data, data / "nats", data / "mongodb", data / "logs", data / "outbox"):
        folder.mkdir(exist_ok=True)
        folder.chmod(0o755)


def modes(root: Path) -> dict[str, int]:
    """The permission bits of everything under `root` (and of `root`), by relative path."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def other_address() -> str | None:
    """An address of this machine other than loopback, if it has one (connecting a UDP
    socket sends nothing; it only picks the interface a packet would leave by)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


async def chat_stream(nats_url: str) -> None:
    bus = await Bus.connect(nats_url, "tests")
    try:
        await bus.ensure_chat_stream()
    finally:
        await bus.close()


def test_the_local_run_keeps_passwords_data_logs_and_mail_to_its_user(
    tmp_path: Path, loose_umask: None
):
    data = tmp_path / "data"
    earlier_run(data)
    system = LocalSystem(data=data, ports=Ports.free())
    try:
        system.start_infra()
        system.jwt_secret()
        assert system.nats_url is not None and system.mongodb_uri is not None
        asyncio.run(chat_stream(system.nats_url))  # JetStream's files
        with pymongo.MongoClient(system.mongodb_uri, serverSelectionTimeoutMS=5000) as client:
            client.refdesk.files.insert_one({"written": True})  # its database files
        # Every place the local run keeps something now exists, with something in it.
        assert list((data / "mongodb").glob("refdesk.db*")), "MongoDB's files"
        assert any(p.is_file() for p in (data / "nats").rglob("*")), "JetStream's files"
        assert (data / "nats-users.json").is_file() and (
            data / "logs" / "nats-server.log"
        ).is_file()

        found = modes(data)
        loose = {path: oct(mode) for path, mode in found.items() if mode & 0o077}
        assert loose == {}, "readable or writable by other users"
        for name in ("nats-auth.conf", "nats-users.json", "jwt-secret", "outbox/earlier.eml"):
            assert found[name] == 0o600, name
        for name in (".", "nats", "mongodb", "logs", "outbox"):
            assert found[name] == 0o700, name

        # Neither server answers on any other interface of this machine.
        elsewhere = other_address()
        if elsewhere is not None:
            assert port_open(system.ports.mongodb) and port_open(system.ports.nats)
            assert not port_open(system.ports.mongodb, elsewhere)
            assert not port_open(system.ports.nats, elsewhere)
    finally:
        system.stop()
