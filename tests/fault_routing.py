"""Routing started with a fault hook, for the fault tests (tests/e2e/test_faults.py): a
transition whose message body holds `<marker>:<step>` is held at that step of its write
(`before` or `after` the append) until the process is killed. The marker comes from
`FAULT_PAUSE_MARKER`. Production routing has no such hook: only this entry point does."""

from __future__ import annotations

import asyncio
import logging
import os
from functools import partial

from services.routing.__main__ import start
from services.routing.domain import Transition
from services.routing.settings import RoutingSettings
from services.routing.store import PauseHook
from shared.runtime import run_service

log = logging.getLogger(__name__)


def pause_on_marker(marker: str) -> PauseHook:
    async def pause(step: str, transition: Transition) -> None:
        tag = f"{marker}:{step}"
        for event in transition.events:
            if event.type == "message" and tag in event.message.body:
                log.warning("fault test: paused %s the write of chat %s", step, event.chat.id)
                await asyncio.Event().wait()

    return pause


if __name__ == "__main__":
    hook = pause_on_marker(os.environ["FAULT_PAUSE_MARKER"])
    run_service("routing", RoutingSettings(), partial(start, pause=hook))
