"""What every service process has: settings, a bus, a MongoDB client and a clock, opened and
closed in one place, and served behind uvicorn so that SIGINT/SIGTERM stop it cleanly."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from starlette.applications import Starlette

from shared import heap, store, subjects, telemetry
from shared.bus import Bus
from shared.clock import Clock, clock_for
from shared.configuration import ConfigView
from shared.ops import ReadinessCheck, ops_app
from shared.settings import CommonSettings


@dataclass
class Runtime:
    service: str
    settings: CommonSettings
    bus: Bus
    mongo: AsyncMongoClient[store.Document]
    db: AsyncDatabase[store.Document]
    clock: Clock
    checks: dict[str, ReadinessCheck] = field(default_factory=dict)

    async def config_view(self) -> ConfigView:
        """The consortium's configuration as this process sees it, followed from now on
        (the caller stops it)."""
        kv = await self.bus.key_value(subjects.CONFIG_BUCKET, self.settings.stream_replicas)
        view = ConfigView(kv)
        await view.start()
        return view


@asynccontextmanager
async def open_runtime(
    service: str, settings: CommonSettings, clock: Clock | None = None, chat_stream: bool = True
) -> AsyncIterator[Runtime]:
    """`chat_stream`: whether this service uses the chat stream: its owner (routing) makes
    it, the others wait until it is there; those that do not use it have no permission
    to touch it."""
    bus = await Bus.connect(
        settings.nats_url, service, settings.request_timeout_s, settings.nats_ca_file
    )
    bus.lag.threshold_s = settings.max_loop_lag_s
    clock = clock or clock_for(settings.clock_shift_s)
    bus.clock = clock
    if chat_stream:
        await bus.ensure_chat_stream(settings.stream_replicas, settings.stream_max_age_hours)
    mongo = store.connect(settings.mongodb_uri, service)
    runtime = Runtime(
        service=service,
        settings=settings,
        bus=bus,
        mongo=mongo,
        db=store.database(mongo, settings.mongodb_db),
        clock=clock,
    )

    async def nats_ready() -> bool:
        return bus.connected

    async def mongo_ready() -> bool:
        return await store.ping(mongo)

    runtime.checks.update(nats=nats_ready, mongodb=mongo_ready)
    try:
        yield runtime
    finally:
        await bus.close()
        await mongo.close()


Starter = Callable[[Runtime], AbstractAsyncContextManager[Any]]


def run_service(
    service: str, settings: CommonSettings, starter: Starter, chat_stream: bool = True
) -> None:
    """Run a back-end service: its work lives in the ops app's lifespan."""
    telemetry.setup(service, settings.log_level, settings.log_json, settings.tracing())
    checks: dict[str, ReadinessCheck] = {}

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with open_runtime(service, settings, chat_stream=chat_stream) as runtime:
            checks.update(runtime.checks)
            async with starter(runtime):
                heap.settle()
                yield

    serve(ops_app(checks, lifespan), settings.ops_host, settings.ops_port)


def serve(app: Any, host: str, port: int, trusted_proxies: str = "") -> None:
    """Serve under uvicorn. Forwarded-for headers are believed only from
    `trusted_proxies` (comma-separated addresses of the ingress): uvicorn's default trusts
    127.0.0.1, which lets anything on the host choose the address a limit counts."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=trusted_proxies or None,
        log_config=None,
        access_log=False,
        lifespan="on",
        ws_max_size=64 * 1024,
        # Chat frames are small: compressing each one costs more CPU than it saves.
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=5,
    )
