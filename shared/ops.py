"""The operations endpoints every service serves: /healthz, /readyz and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from contextlib import AbstractAsyncContextManager

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ReadinessCheck = Callable[[], Awaitable[bool]]


def ops_routes(checks: dict[str, ReadinessCheck]) -> list[Route]:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        results: dict[str, bool] = {}
        for name, check in checks.items():
            try:
                results[name] = await asyncio.wait_for(check(), timeout=2.0)
            except Exception:
                results[name] = False
        ready = all(results.values())
        return JSONResponse({"ready": ready, "checks": results}, status_code=200 if ready else 503)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ]


def ops_app(
    checks: dict[str, ReadinessCheck],
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]]
    | Callable[[Starlette], AsyncIterator[None]],
) -> Starlette:
    """A small app whose lifespan runs the service itself, so that uvicorn's signal
    handling gives every service the same clean start and stop."""
    return Starlette(routes=ops_routes(checks), lifespan=lifespan)  # type: ignore[arg-type]


class _QuietServer(uvicorn.Server):
    """A second server inside a process that already runs one: the process's own server
    handles the signals; this one stops when told to (`should_exit`)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@contextlib.asynccontextmanager
async def ops_server(
    checks: dict[str, ReadinessCheck], host: str, port: int
) -> AsyncIterator[None]:
    """Serve /healthz, /readyz and /metrics on a port of their own while the block runs:
    for a process whose main port is public (the gateway), so that metrics and readiness
    are for the cluster, not the internet."""
    config = uvicorn.Config(
        Starlette(routes=ops_routes(checks)),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve())
    try:
        yield
    finally:
        server.should_exit = True
        await task
