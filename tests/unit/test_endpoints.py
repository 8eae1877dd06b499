"""Every service's endpoints, walked: each binds a subject of its own service to a handler
that takes exactly the request model the endpoint will parse (read from the handler's
annotation, so the two cannot drift apart), and answers with a model."""

from __future__ import annotations

import inspect
import typing
from typing import Any

import pytest
from pydantic import BaseModel

from services.directory.handlers import DirectoryHandlers
from services.presence.handlers import PresenceHandlers
from services.routing.handlers import RoutingHandlers
from services.tickets.handlers import TicketHandlers
from services.transcripts.handlers import TranscriptHandlers
from shared.bus import Endpoint
from shared.endpoints import request_model
from shared.schemas.base import Model

SERVICES = {
    "routing": RoutingHandlers,
    "presence": PresenceHandlers,
    "transcripts": TranscriptHandlers,
    "tickets": TicketHandlers,
    "directory": DirectoryHandlers,
}


def endpoints_of(cls: type) -> list[Endpoint[Any]]:
    """The endpoints a service serves, from its handlers made with nothing behind them
    (binding endpoints touches no dependency)."""
    wanted = [
        p
        for p in inspect.signature(cls).parameters.values()
        if p.default is inspect.Parameter.empty
    ]
    # A configured sender address is read as the service starts: give it one.
    given = {"sender": "Ask a Librarian <refdesk@localhost>"}
    handlers = cls(*(given.get(p.name) for p in wanted))
    found: list[Endpoint[Any]] = handlers.endpoints()
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_each_endpoint_parses_what_its_handler_takes(service: str) -> None:
    endpoints = endpoints_of(SERVICES[service])
    assert endpoints, service
    assert len({e.name for e in endpoints}) == len(endpoints), "an endpoint name twice"
    for endpoint in endpoints:
        assert endpoint.subject.startswith(f"{service}."), endpoint.subject
        hints = typing.get_type_hints(endpoint.handler)
        (parameter,) = inspect.signature(endpoint.handler).parameters
        assert endpoint.request is hints[parameter], endpoint.name
        assert issubclass(endpoint.request, BaseModel)
        assert issubclass(hints["return"], Model), (endpoint.name, hints["return"])


def test_a_handler_that_takes_no_model_cannot_be_an_endpoint() -> None:
    async def loose(payload: dict[str, Any]) -> Model:
        raise AssertionError

    async def two(a: Model, b: Model) -> Model:
        raise AssertionError

    for handler in (loose, two):
        with pytest.raises(TypeError):
            request_model(handler)
