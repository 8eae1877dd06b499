"""`make run`: the whole system with demo data on this machine. A service that crashes is
restarted with back-off; Ctrl-C stops everything.

Set REFDESK_MONGODB_URI to use a MongoDB server of your own instead of the embedded one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

from deploy.local import demo_data
from deploy.local.private import UMASK
from deploy.local.processes import port_open
from deploy.local.settings import LauncherSettings
from deploy.local.system import SERVICES, LocalSystem, Ports
from shared import store


def _check_free(ports: Ports, own_mongodb: bool) -> None:
    wanted = {"NATS": ports.nats, "gateway": ports.gateway, "patron mail": ports.inbound_mail}
    if own_mongodb:
        wanted["MongoDB"] = ports.mongodb
    for name, port in {**wanted, **ports.ops}.items():
        if port_open(port):
            sys.exit(f"port {port} ({name}) is already in use: is refdesk already running?")


async def _load_demo(uri: str, settings: LauncherSettings) -> int:
    client = store.connect(uri, "launcher")
    try:
        return await demo_data.load(
            store.database(client, settings.mongodb_db), settings.demo_password
        )
    finally:
        await client.close()


def main() -> None:
    # Whatever this launcher and the processes it starts write is their user's alone.
    os.umask(UMASK)
    settings = LauncherSettings()
    data = settings.data_dir
    ports = Ports(
        nats=settings.nats_port,
        mongodb=settings.mongodb_port,
        gateway=settings.port,
        inbound_mail=settings.inbound_smtp_port,
    )
    uri = settings.mongodb_uri or None
    _check_free(ports, uri is None)
    system = LocalSystem(data=data, ports=ports, mongodb_uri=uri)
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        print(
            f"starting nats-server on :{ports.nats} and MongoDB on "
            f"{uri or f':{ports.mongodb} (embedded)'} ...",
            flush=True,
        )
        system.start_infra()
        assert system.mongodb_uri is not None
        added = asyncio.run(_load_demo(system.mongodb_uri, settings))
        print(f"demo data loaded ({added} documents added)", flush=True)
        print(f"starting services: {', '.join(SERVICES)} ...", flush=True)
        system.start_services()
        url = system.gateway_url
        password = settings.demo_password
        print(
            f"""
refdesk is running.
  Operator client  {url}/operator   (sign in as demo-hill-ann, password {password})
  Demo page        {url}/demo       (the patron widget of Hill Library)
  API docs         {url}/docs
  Mail to patrons  {system.outbox}/   (no mail server: each mail is an .eml file)
  Patrons' replies smtp://127.0.0.1:{ports.inbound_mail}   (keep [T...] in the subject)
  Logs             {system.logs}/
Press Ctrl-C to stop.""",
            flush=True,
        )
        while not stopping:
            # A crashed service is restarted with back-off, as Kubernetes would.
            for line in system.supervise(time.monotonic()):
                print(line, file=sys.stderr, flush=True)
            time.sleep(0.25)
    finally:
        print("stopping ...", flush=True)
        system.stop()
        print("stopped.", flush=True)


if __name__ == "__main__":
    main()
