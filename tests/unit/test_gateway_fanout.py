"""A message from the bus the gateway cannot read is dropped, never silently: each kind is
logged and counted in refdesk_gateway_unreadable_messages_total."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

import pytest
from prometheus_client import REGISTRY

from services.gateway.core import Gateway
from services.gateway.fanout import FanOut

METRIC = "refdesk_gateway_unreadable_messages_total"


@dataclass
class Msg:
    subject: str
    data: bytes = b'{"not": "what was expected"'


def count(kind: str) -> float:
    return REGISTRY.get_sample_value(METRIC, {"kind": kind}) or 0.0


# Nothing of the gateway is reached: an unreadable message is dropped before it would be.
FANOUT = FanOut(cast(Gateway, None))


@pytest.mark.parametrize(
    ("kind", "deliver"),
    [
        ("session_event", lambda m: FANOUT.on_presence_event(m)),
        ("staff_message", lambda m: FANOUT.on_staff_message(m)),
        ("ticket_notice", lambda m: FANOUT.on_ticket_notice(m)),
        ("announcement", lambda m: FANOUT.on_announcement(m)),
        ("widget_status", lambda m: FANOUT.on_widget_status(m)),
        ("typing_notice", lambda m: FANOUT.on_ephemeral("typing", m.data)),
        ("queue_position", lambda m: FANOUT.on_ephemeral("position", m.data)),
        ("chat_record", lambda m: FANOUT.queue_handler("demo-hill")(m)),
        ("chat_record", lambda m: FANOUT.operator_handler("demo-hill-ann")(m)),
        ("chat_record", lambda m: FANOUT.on_guest_record(m)),
    ],
)
async def test_an_unreadable_message_is_logged_and_counted(
    kind: str, deliver: Callable[[Msg], Awaitable[None]], caplog: pytest.LogCaptureFixture
) -> None:
    before = count(kind)
    with caplog.at_level(logging.WARNING, logger="services.gateway.fanout"):
        await deliver(Msg("queue.demo-hill.evt"))
    assert count(kind) == before + 1
    assert f"unreadable {kind.replace('_', ' ')}" in caplog.text
