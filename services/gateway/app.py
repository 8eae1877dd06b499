"""The gateway's application: REST (api/) and the pages (pages.py) through FastAPI, its two
WebSockets ahead of it (sockets_first), and ops endpoints on a port of their own. The
lifespan builds the process's Gateway and puts it on the application's state, where the
routes' dependency and the socket endpoints find it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.types import ASGIApp

from services.gateway import pages
from services.gateway.api import build_router
from services.gateway.api.errors import on_invalid, on_refusal
from services.gateway.auth import Tokens
from services.gateway.core import Gateway
from services.gateway.limits import BodyLimit
from services.gateway.operator_socket import OperatorSockets
from services.gateway.patron_socket import PatronSockets
from services.gateway.settings import (
    DEV_SECRET,
    GatewaySettings,
    previous_secrets,
    signing_secret,
)
from services.gateway.sockets_first import SocketHandler, SocketsFirst
from services.gateway.store import GuestStore, RevokedTokens
from services.gateway.throttle import THROTTLE_WINDOW_S, Counters
from shared import heap, subjects
from shared.errors import Refusal
from shared.ops import ReadinessCheck, ops_server
from shared.runtime import Runtime, open_runtime
from shared.tasks import cancel_and_wait
from shared.version import VERSION

log = logging.getLogger(__name__)


def create_app(settings: GatewaySettings) -> ASGIApp:
    checks: dict[str, ReadinessCheck] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        secret = signing_secret(settings)
        if secret == DEV_SECRET:
            log.warning("tokens are signed with the development secret (REFDESK_DEV=1)")
        async with open_runtime("gateway", settings) as runtime:
            checks.update(runtime.checks)
            async with running_gateway(settings, secret, runtime) as gw:
                app.state.gateway = gw
                heap.settle()
                async with ops_server(checks, settings.ops_host, settings.ops_port):
                    yield

    app = FastAPI(
        title="refdesk gateway",
        version=VERSION,
        description="REST API of refdesk; WebSocket frames are described in docs/protocol.md.",
        lifespan=lifespan,
    )
    app.include_router(build_router())
    app.add_middleware(BodyLimit)
    app.exception_handler(Refusal)(on_refusal)
    app.exception_handler(RequestValidationError)(on_invalid)
    app.include_router(pages.router)
    app.mount("/static", pages.assets(), name="static")
    sockets: dict[str, SocketHandler] = {
        "/ws/patron": PatronSockets(app.state, settings),
        "/ws/operator": OperatorSockets(app.state, settings),
    }
    return SocketsFirst(app, sockets)


@asynccontextmanager
async def running_gateway(
    settings: GatewaySettings, secret: str, runtime: Runtime
) -> AsyncIterator[Gateway]:
    """The process's Gateway on an open runtime: its guest store, the buckets it follows
    (configuration, revoked tokens, failure counters), subscribed to what its sockets
    hear, and keeping its operators' sessions alive."""
    guests = GuestStore(runtime.db)
    await guests.ensure_indexes(settings.proactive_window_s)
    view = await runtime.config_view()
    revoked = RevokedTokens(
        await runtime.bus.key_value(
            subjects.REVOKED_BUCKET,
            settings.stream_replicas,
            ttl=float(settings.operator_token_ttl_s),
        )
    )
    await revoked.start()
    counters = Counters(
        await runtime.bus.key_value(
            subjects.THROTTLE_BUCKET,
            settings.stream_replicas,
            ttl=THROTTLE_WINDOW_S,
            storage="memory",
        )
    )
    tokens = Tokens(
        secret,
        settings.operator_token_ttl_s,
        settings.guest_token_ttl_s,
        runtime.clock,
        revoked,
        previous=previous_secrets(settings),
    )
    gw = Gateway(settings, runtime.bus, view, guests, revoked, counters, tokens, runtime.clock)
    await gw.fanout.subscribe()
    beat = asyncio.create_task(gw.heartbeats())
    try:
        yield gw
    finally:
        await cancel_and_wait(beat)
        await view.stop()
        await revoked.stop()
