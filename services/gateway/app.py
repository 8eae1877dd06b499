"""The gateway's application: REST and the web client through FastAPI, its two WebSockets
ahead of it (sockets_first), and ops endpoints."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Scope

from services.gateway import domain, metrics
from services.gateway.api import build_router
from services.gateway.api.errors import refusal_response
from services.gateway.auth import Tokens
from services.gateway.core import Gateway
from services.gateway.hub import Outbox
from services.gateway.limits import BodyLimit
from services.gateway.operator_socket import OperatorSocket
from services.gateway.patron_socket import PatronSocket
from services.gateway.settings import DEV_SECRET, GatewaySettings, signing_secret
from services.gateway.sockets_first import SocketsFirst
from services.gateway.store import GuestStore, RevokedTokens
from services.gateway.throttle import THROTTLE_WINDOW_S, Counters
from shared import heap, subjects
from shared.bus import describe_errors
from shared.configuration import ConfigView
from shared.errors import Refusal
from shared.ops import ReadinessCheck, ops_server
from shared.runtime import open_runtime
from shared.schemas.protocol import Error
from shared.tasks import cancel_and_wait

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


def create_app(settings: GatewaySettings) -> ASGIApp:
    checks: dict[str, ReadinessCheck] = {}

    def gateway() -> Gateway:
        gw: Gateway = app.state.gateway
        return gw

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        secret = signing_secret(settings)
        if secret == DEV_SECRET:
            log.warning("tokens are signed with the development secret (REFDESK_DEV=1)")
        async with open_runtime("gateway", settings) as runtime:
            checks.update(runtime.checks)
            guests = GuestStore(runtime.db)
            await guests.ensure_indexes(settings.proactive_window_s)
            view = ConfigView(
                await runtime.bus.key_value(subjects.CONFIG_BUCKET, settings.stream_replicas)
            )
            await view.start()
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
            )
            gw = Gateway(
                settings, runtime.bus, view, guests, revoked, counters, tokens, runtime.clock
            )
            app.state.gateway = gw
            await gw.fanout.subscribe()
            beat = asyncio.create_task(_heartbeats(gw))
            heap.settle()
            try:
                async with ops_server(checks, settings.ops_host, settings.ops_port):
                    yield
            finally:
                await cancel_and_wait(beat)
                await view.stop()
                await revoked.stop()

    app = FastAPI(
        title="refdesk gateway",
        version="0.1.0",
        description="REST API of refdesk; WebSocket frames are described in docs/protocol.md.",
        lifespan=lifespan,
    )
    app.include_router(build_router())
    app.add_middleware(BodyLimit)

    @app.exception_handler(Refusal)
    async def on_refusal(_: Request, exc: Refusal) -> JSONResponse:
        return refusal_response(exc)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        """422 naming the fields (`fields`, and the message), without the input: a body
        is never sent back, however large or whatever it holds."""
        # Only the first part says where (body, query, path): a field may be named `body`.
        errors = [
            {
                **e,
                "loc": list(
                    e["loc"][1:] if e["loc"][:1] in (("body",), ("query",), ("path",)) else e["loc"]
                ),
            }
            for e in exc.errors()
        ]
        fields = sorted({str(e["loc"][0]) for e in errors if e["loc"]})
        body = {"code": "invalid", "message": describe_errors(errors), "fields": fields}
        return JSONResponse(body, status_code=422)

    own_origin = domain.origin_of(settings.public_url)
    patron_sockets: Counter[str] = Counter()

    async def patron_socket(ws: WebSocket) -> None:
        await ws.accept()
        widget = ws.query_params.get("widget", "")
        gw = gateway()
        outbox = Outbox(ws, "patron", settings.outbox_limit)
        config = gw.view.widget(widget)
        address = ws.client.host if ws.client else "?"
        refusal = None
        if config is None:
            refusal = Refusal("not_found", "no such widget"), 4404
        elif not domain.origin_allowed(ws.headers.get("origin"), config, own_origin):
            refusal = Refusal("forbidden", "this widget is not for this site"), 4403
        elif patron_sockets[address] >= settings.patron_sockets_per_address:
            refusal = Refusal("rate_limited", "too many chat windows open from here"), 4429
        if refusal is not None:
            error, code = refusal
            outbox.send(Error(code=error.code, message=error.message))
            await outbox.finish(code)
            return
        assert config is not None
        patron_sockets[address] += 1
        socket = PatronSocket(gw, outbox, config, address)
        metrics.CONNECTIONS.labels("patron").inc()
        try:
            await socket.run(ws)
        finally:
            patron_sockets[address] -= 1
            if patron_sockets[address] <= 0:
                del patron_sockets[address]  # the count stays as small as what is open
            metrics.CONNECTIONS.labels("patron").dec()
            await socket.closed()
            await outbox.stop()

    async def operator_socket(ws: WebSocket) -> None:
        await ws.accept()
        gw = gateway()
        outbox = Outbox(ws, "operator", settings.outbox_limit)
        socket = OperatorSocket(gw, outbox)
        metrics.CONNECTIONS.labels("operator").inc()
        try:
            await socket.run(ws)
        finally:
            metrics.CONNECTIONS.labels("operator").dec()
            await socket.closed()
            await outbox.stop()

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/operator")

    @app.get("/operator", include_in_schema=False)
    async def operator_page() -> FileResponse:
        # Staff pages are never framed (clickjacking).
        headers = {"Content-Security-Policy": "frame-ancestors 'none'", "X-Frame-Options": "DENY"}
        return FileResponse(STATIC / "operator.html", media_type="text/html", headers=headers)

    @app.get("/widget", include_in_schema=False)
    async def widget_page(widget: str = "") -> FileResponse:
        # Framed only by the sites the widget is for.
        found = gateway().view.widget(widget)
        policy = domain.frame_ancestors(found)
        headers = {"Content-Security-Policy": policy}
        return FileResponse(STATIC / "widget.html", media_type="text/html", headers=headers)

    @app.get("/widget.js", include_in_schema=False)
    async def widget_loader() -> FileResponse:
        """The one script a library's pages load; cached for an hour by browsers."""
        headers = {"Cache-Control": "public, max-age=3600"}
        return FileResponse(STATIC / "widget.js", media_type="text/javascript", headers=headers)

    @app.get("/demo", include_in_schema=False)
    async def demo_page() -> FileResponse:
        return FileResponse(STATIC / "demo.html", media_type="text/html")

    app.mount("/static", Assets(directory=STATIC), name="static")
    return SocketsFirst(app, {"/ws/patron": patron_socket, "/ws/operator": operator_socket})


class Assets(StaticFiles):
    """The pages' scripts, styles and images. The pages themselves are served only at
    their own addresses (/operator, /widget, /demo), each with the headers that say who
    may frame it: under /static they would go without, and any site could frame the desk
    or a widget."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        # `path` is already normalised (`operator.html/`, `./operator.html` arrive here as
        # `operator.html`).
        if path.lower().endswith((".html", ".htm")):
            raise HTTPException(status_code=404)
        return await super().get_response(path, scope)


async def _heartbeats(gw: Gateway) -> None:
    """Keep this replica's operator sessions alive in presence; end those it says are gone."""
    while True:
        await asyncio.sleep(gw.settings.heartbeat_s)
        for link in list(gw.hub.sessions.values()):
            try:
                alive = await gw.heartbeat(link)
            except Exception:
                log.exception("heartbeat failed for %s", link.username)
                continue
            if not alive:
                await gw.end_session(link, "expired")
