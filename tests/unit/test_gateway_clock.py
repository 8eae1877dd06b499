"""The gateway takes its time from the injected clock: a test moves it, and heartbeats and
the frame rate limit follow, with no waiting."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, cast

from services.gateway.core import Gateway
from services.gateway.frames import FrameLoop
from services.gateway.hub import OperatorLink, Outbox
from services.gateway.settings import GatewaySettings
from shared.bus import Bus
from shared.clock import FixedClock
from shared.configuration import ConfigView
from shared.schemas.base import Model
from tests.factories import T0


@dataclass
class View:
    listeners: list[Any] = field(default_factory=list)


@dataclass
class Sent:
    frames: list[dict[str, Any]] = field(default_factory=list)

    def send(self, frame: Model) -> None:
        self.frames.append(json.loads(frame.model_dump_json()))


def gateway(clock: FixedClock, **settings: Any) -> Gateway:
    """A Gateway with nothing behind it: what these tests drive never reaches the bus."""
    none: Any = None
    return Gateway(
        GatewaySettings(**settings),
        cast(Bus, none),
        cast(ConfigView, View()),
        none,
        none,
        none,
        none,
        clock,
    )


async def test_heartbeats_come_when_the_clock_says_and_end_a_session_presence_lost():
    clock = FixedClock(T0)
    gw = gateway(clock, heartbeat_s=10.0)
    link = OperatorLink(cast(Outbox, Sent()), "hill", "demo-hill-ann", "Ann", "operator", "s1")
    gw.hub.sessions[link.session_id] = link
    beats: list[str] = []
    ended: list[tuple[str, str]] = []

    async def heartbeat(beating: OperatorLink) -> bool:
        beats.append(beating.username)
        return len(beats) < 2  # presence has lost it by the second

    async def end_session(ending: OperatorLink, reason: str) -> None:
        ended.append((ending.username, reason))

    gw.heartbeat = heartbeat  # type: ignore[method-assign]
    gw.end_session = end_session  # type: ignore[method-assign]
    beating = asyncio.create_task(gw.heartbeats())
    try:
        await clock.until_sleeping(1)
        assert beats == []
        clock.advance(10)
        await clock.until_sleeping(1)
        assert beats == ["demo-hill-ann"] and ended == []
        clock.advance(10)
        await clock.until_sleeping(1)
        assert ended == [("demo-hill-ann", "expired")]
    finally:
        beating.cancel()


async def test_the_frame_rate_limit_refills_as_the_clock_moves():
    clock = FixedClock(T0)
    gw = gateway(clock, frames_per_second=2.0, frame_burst=3)
    sent = Sent()
    loop = FrameLoop(gw, cast(Outbox, sent))
    codes = []
    for _ in range(4):
        await loop.handle('{"type": "nothing"}')
        codes.append(sent.frames[-1]["code"])
    assert codes == ["invalid", "invalid", "invalid", "rate_limited"]
    clock.advance(0.5)  # one frame's worth
    await loop.handle('{"type": "nothing"}')
    await loop.handle('{"type": "nothing"}')
    assert [f["code"] for f in sent.frames[-2:]] == ["invalid", "rate_limited"]
