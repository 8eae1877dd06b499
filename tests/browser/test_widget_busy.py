"""A frame the gateway refuses `busy` is sent again by the widget page after the
server's hint, and the patron sees no error.

A system of its own whose gateway handles one frame at a time: while a librarian's frame
waits on routing (stopped with SIGSTOP, so the request runs to its timeout), the widget's
`hello` is refused `busy`; the page says it again until it is let in, after routing has
been let go on."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, WebSocket, expect

from deploy.local.system import LocalSystem
from tests.client import operator
from tests.conftest import start_system
from tests.servers import Servers

REQUEST_TIMEOUT_S = 4


@pytest.fixture(scope="module")
def one_at_a_time(
    servers: Servers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalSystem]:
    env = {
        "REFDESK_MAX_FRAMES_IN_FLIGHT": "1",
        "REFDESK_REQUEST_TIMEOUT_S": str(REQUEST_TIMEOUT_S),
    }
    running = start_system(
        servers, Path(tmp_path_factory.mktemp("busy")), db="refdesk_busy", env=env, own_nats=True
    )
    try:
        yield running
    finally:
        running.stop()


async def test_a_hello_refused_busy_is_said_again_without_an_error(
    one_at_a_time: LocalSystem, browser: Browser
):
    base = one_at_a_time.gateway_url
    routing = one_at_a_time.services["routing"].popen.pid
    ann = await operator(base, "demo-hill-ann", ["demo-hill"])
    context = await browser.new_context()
    stopped = False
    try:
        page = await context.new_page()
        heard: list[dict[str, Any]] = []

        def on_socket(ws: WebSocket) -> None:
            ws.on("framereceived", lambda payload: heard.append(json.loads(payload)))

        page.on("websocket", on_socket)
        async with httpx.AsyncClient(base_url=base) as http:
            # The gateway holds hill's status before routing stops (the hello reads it).
            assert (await http.get("/api/widgets/hill/status")).status_code == 200
        await page.goto(f"{base}/demo")
        button = page.locator("button[data-refdesk]")
        await expect(button).to_have_text("Ask a librarian")

        os.kill(routing, signal.SIGSTOP)
        stopped = True
        # Ann's claim takes the gateway's one frame in flight until routing's timeout.
        await ann.send_raw(json.dumps({"type": "chat.claim", "chat_id": "x" * 32, "ref": "held"}))
        await button.click()
        # Routing comes back once the claim has run out its time (the hello, a returning
        # guest's, asks routing for the guest's chat when it is let in).
        held = await ann.expect(lambda f: f.get("ref") == "held", timeout=REQUEST_TIMEOUT_S + 5)
        assert held["code"] == "unavailable"
        os.kill(routing, signal.SIGCONT)
        stopped = False
        chat = page.frame_locator("#refdesk-frame")
        await expect(chat.locator("#start-form")).to_be_visible(timeout=10_000)

        refusals = [f for f in heard if f["type"] == "error"]
        assert refusals and all(f["code"] == "busy" for f in refusals), refusals
        assert all(f["retry_after_ms"] > 0 for f in refusals)
        assert [f["type"] for f in heard if f["type"] != "error"][:2] == ["ack", "welcome"]
        await expect(chat.locator("#error")).to_have_text("")
        print(f"hello refused busy {len(refusals)} times, then let in; no error shown")
    finally:
        if stopped:
            os.kill(routing, signal.SIGCONT)
        await context.close()
        await ann.close()
