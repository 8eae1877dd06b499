"""WebSockets handed straight to their handlers, ahead of FastAPI's middleware stack.

A socket lives for as long as a page is open, and every ASGI layer it passes through keeps
a coroutine, closures and an exit stack alive all that time. Through FastAPI's stack an
open socket held about 220 objects that the garbage collector walks in every full
collection; straight to its handler, about 150 (docs/operations.md, "Scale"). The two
socket endpoints need none of the stack: no dependencies, no request bodies, their own
error frames. Everything else (HTTP, lifespan, unknown socket paths) goes to the
application as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

SocketHandler = Callable[[WebSocket], Awaitable[None]]


class SocketsFirst:
    def __init__(self, app: ASGIApp, sockets: Mapping[str, SocketHandler]) -> None:
        self.app = app
        self.sockets = dict(sockets)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.sockets.get(scope["path"]) if scope["type"] == "websocket" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        await handler(WebSocket(scope, receive, send))
