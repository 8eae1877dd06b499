"""The gateway's two socket endpoints get their sockets ahead of FastAPI's stack; every
other connection goes to the application."""

from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from services.gateway.sockets_first import SocketsFirst


async def test_known_socket_paths_skip_the_app_and_the_rest_reach_it() -> None:
    reached: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(f"app {scope['type']} {scope.get('path')}")

    async def patron(ws: WebSocket) -> None:
        reached.append(f"patron {ws.query_params['widget']}")

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        pass

    front = SocketsFirst(app, {"/ws/patron": patron})
    socket = {"type": "websocket", "path": "/ws/patron", "query_string": b"widget=hill"}
    await front({**socket, "headers": []}, receive, send)
    await front({**socket, "path": "/ws/other", "headers": []}, receive, send)
    await front({"type": "http", "path": "/ws/patron", "headers": []}, receive, send)
    await front({"type": "lifespan"}, receive, send)
    assert reached == [
        "patron hill",
        "app websocket /ws/other",
        "app http /ws/patron",
        "app lifespan None",
    ]
