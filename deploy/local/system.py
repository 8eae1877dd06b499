"""The whole of refdesk on one machine, as processes: nats-server with JetStream, a MongoDB
wire-protocol server, and the six services. `make run` and the end-to-end tests both use
this, so what the tests start is what an operator runs."""

from __future__ import annotations

import os
import secrets
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from deploy.local import nats_auth
from deploy.local.private import FILE_MODE, private_dir, tighten, write_private
from deploy.local.processes import Child, free_port, spawn, tool, wait_listening
from deploy.local.supervision import RestartPolicy, Watch
from shared.settings import INBOUND_SMTP_PORT

# The directory first: it publishes the configuration the others follow.
SERVICES = ("directory", "presence", "routing", "transcripts", "tickets", "gateway")
ROOT = Path(__file__).resolve().parents[2]
# What the local run keeps in its data directory: tightened at start (see keep_private).
PRIVATE_DIRS = ("nats", "mongodb", "logs", "outbox")
PRIVATE_FILES = ("nats-auth.conf", "nats-users.json", "jwt-secret", "mongodb.pid")


@dataclass
class Ports:
    nats: int = 4222
    mongodb: int = 27017
    gateway: int = 8000
    ops: dict[str, int] = field(
        default_factory=lambda: {
            "routing": 9101,
            "presence": 9102,
            "transcripts": 9103,
            "tickets": 9104,
            "directory": 9105,
            "gateway": 9100,
        }
    )
    # Public ports of gateway replicas after the first (whose is `gateway`).
    public: dict[str, int] = field(default_factory=dict)
    # Where the tickets service takes patrons' replies by email (SMTP).
    inbound_mail: int = INBOUND_SMTP_PORT

    @classmethod
    def free(cls) -> Ports:
        return cls(
            free_port(),
            free_port(),
            free_port(),
            {s: free_port() for s in SERVICES},
            inbound_mail=free_port(),
        )


def start_nats(data: Path, port: int, logs: Path) -> Child:
    """nats-server with JetStream, and a user per service with its permissions
    (deploy/local/nats_auth.py): a client without credentials is refused."""
    store_dir = private_dir(data / "nats")
    config = nats_auth.write_config(data)
    child = spawn(
        "nats-server",
        [
            tool("nats-server"),
            "-c",
            str(config),
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            "-js",
            "-sd",
            str(store_dir),
        ],
        logs,
        # One machine runs everything here: with a scheduler thread per core, the Go
        # runtime's spinning for work competes with the services for the same cores. On
        # the 2-core bench machine one thread cut nats-server's CPU per message by about
        # 10-20% (docs/benchmarks.md). GOMAXPROCS in the environment overrides it.
        env={"GOMAXPROCS": os.environ.get("GOMAXPROCS", "1")},
    )
    wait_listening(child, port)
    return child


def admin_nats_url(data: Path, port: int) -> str:
    """The URL of a nats-server started by `start_nats`, as its admin user."""
    users = nats_auth.passwords(data)
    return nats_auth.url_for(f"nats://127.0.0.1:{port}", nats_auth.ADMIN, users[nats_auth.ADMIN])


def start_mongodb(data: Path, port: int, logs: Path) -> Child:
    """nx-27017 on the loopback interface only, its files in a directory of their own.
    It has no authentication (it takes any client, and answers a credentials handshake
    with an error): only local users can reach it, and only its user read its files."""
    db_dir = private_dir(data / "mongodb")
    child = spawn(
        "mongodb",
        [
            sys.executable,
            "-m",
            "deploy.local.mongodb_server",
            "--host",
            "127.0.0.1",
            "-p",
            str(port),
            "--data-dir",
            str(db_dir),
            "--log-file",
            str(logs / "mongodb-server.log"),
            "--pid-file",
            str(data / "mongodb.pid"),
        ],
        logs,
        cwd=ROOT,
    )
    wait_listening(child, port)
    return child


@dataclass
class LocalSystem:
    data: Path
    ports: Ports
    mongodb_uri: str | None = None
    # As the admin user; services connect as their own users (`nats_users`), given with a
    # nats-server this system did not start.
    nats_url: str | None = None
    nats_users: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    # The module each service starts from, where not `services.<name>`: a test may start a
    # service through an entry point of its own (tests/fault_routing.py).
    entry_points: dict[str, str] = field(default_factory=dict)
    infra: list[Child] = field(default_factory=list)
    services: dict[str, Child] = field(default_factory=dict)
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    watches: dict[str, Watch] = field(default_factory=dict)
    _started_as: dict[str, tuple[str, int]] = field(default_factory=dict)

    @property
    def logs(self) -> Path:
        return self.data / "logs"

    @property
    def outbox(self) -> Path:
        return self.data / "outbox"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.gateway}"

    def env(self) -> dict[str, str]:
        return {
            "REFDESK_NATS_URL": self.nats_url or "",
            "REFDESK_MONGODB_URI": self.mongodb_uri or "",
            "PYTHONPATH": str(ROOT),
            # A development run: the gateway signs with a secret of this data directory's
            # own, made once, rather than refusing to start without one.
            "REFDESK_DEV": "1",
            "REFDESK_JWT_SECRET": self.jwt_secret(),
            **self.extra_env,
        }

    def jwt_secret(self) -> str:
        path = self.data / "jwt-secret"
        if not path.exists():
            write_private(path, secrets.token_urlsafe(48))
        return path.read_text().strip()

    def keep_private(self) -> None:
        """The data directory and what the local run keeps in it, its user's alone
        (deploy/local/private.py), including what an earlier run left readable."""
        private_dir(self.data)
        for name in PRIVATE_FILES:
            path = self.data / name
            if path.is_file() and not path.is_symlink():
                path.chmod(FILE_MODE)
        for name in PRIVATE_DIRS:
            tighten(self.data / name)
        private_dir(self.logs)
        private_dir(self.outbox)

    def start_infra(self) -> None:
        """Start the servers that were not given: NATS and MongoDB as local processes."""
        self.keep_private()
        if self.nats_url is None:
            self.infra.append(start_nats(self.data, self.ports.nats, self.logs))
            self.nats_url = admin_nats_url(self.data, self.ports.nats)
            self.nats_users = nats_auth.passwords(self.data)
        if self.mongodb_uri is None:
            self.infra.append(start_mongodb(self.data, self.ports.mongodb, self.logs))
            self.mongodb_uri = f"mongodb://127.0.0.1:{self.ports.mongodb}"

    def start_service(self, name: str, replica: int = 0) -> Child:
        """Start one service; `replica` > 0 starts another copy of it, known as
        `<name>-<replica>` with its own ops port (and a gateway's own public port)."""
        env = self.env()
        key = name if replica == 0 else f"{name}-{replica}"
        if name in self.nats_users and self.nats_url:
            env["REFDESK_NATS_URL"] = nats_auth.url_for(self.nats_url, name, self.nats_users[name])
        if name == "gateway":
            env["REFDESK_PORT"] = str(self.public_port(key))
            env["REFDESK_PUBLIC_URL"] = self.public_url(key)
        if name == "tickets":
            # No mail server here: mail to patrons is written to a folder to read.
            env.setdefault("REFDESK_MAIL_OUTBOX_DIR", str(self.outbox))
            if replica == 0:
                env.setdefault("REFDESK_INBOUND_SMTP_PORT", str(self.ports.inbound_mail))
        self.ports.ops.setdefault(key, free_port())
        env["REFDESK_OPS_PORT"] = str(self.ports.ops[key])
        module = self.entry_points.get(name, f"services.{name}")
        child = spawn(key, [sys.executable, "-m", module], self.logs, env, ROOT)
        self.services[key] = child
        self._started_as[key] = (name, replica)
        self.watches[key] = Watch(started_at=time.monotonic())
        return child

    def supervise(self, now: float) -> list[str]:
        """Restart services that have exited, with back-off; returns what was done, one
        line each, for the launcher to print."""
        said: list[str] = []
        for key, child in list(self.services.items()):
            watch = self.watches[key]
            if watch.restart_at is None and not child.alive():
                delay = watch.crashed(now, self.policy)
                code = child.popen.returncode
                said.append(
                    f"{key} exited (code {code}); restarting in {delay:g} s "
                    f"(crash {watch.failures} in a row)"
                )
            if watch.due(now):
                name, replica = self._started_as[key]
                self.start_service(name, replica)
                self.watches[key] = watch
                watch.restarted(now)
                said.append(f"{key} restarted")
        return said

    def recover(self, key: str, timeout: float = 30.0) -> list[str]:
        """Supervise until the service `key` has been restarted and is ready again (after a
        crash or a kill); returns what supervision said."""
        said: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            said += self.supervise(time.monotonic())
            watch = self.watches[key]
            if watch.restart_at is None and self.services[key].alive() and said:
                self.wait_ready(key, max(1.0, deadline - time.monotonic()))
                return said
            time.sleep(0.05)
        raise TimeoutError(f"{key} was not restarted in {timeout}s: {said}")

    def ops_url(self, name: str) -> str:
        """/healthz, /readyz and /metrics of a service or replica (never a public port)."""
        return f"http://127.0.0.1:{self.ports.ops[name]}"

    def public_port(self, gateway: str) -> int:
        if gateway == "gateway":
            return self.ports.gateway
        return self.ports.public.setdefault(gateway, free_port())

    def public_url(self, gateway: str) -> str:
        """Where a gateway replica serves clients (`gateway`, `gateway-1`, ...)."""
        return f"http://127.0.0.1:{self.public_port(gateway)}"

    def wait_ready(self, name: str, timeout: float = 30.0) -> None:
        """Wait for a started service (or replica, by its key) to answer /readyz."""
        child = self.services[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not child.alive():
                raise RuntimeError(f"{name} exited:\n{child.tail(40)}")
            try:
                with urllib.request.urlopen(f"{self.ops_url(name)}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{name} not ready in {timeout}s:\n{child.tail(40)}")

    def start_services(self) -> None:
        for name in SERVICES:
            self.start_service(name)
        for name in SERVICES:
            self.wait_ready(name)

    def stop(self) -> None:
        for child in reversed(list(self.services.values())):
            child.stop()
        self.services.clear()
        for child in reversed(self.infra):
            child.stop()
        self.infra.clear()
