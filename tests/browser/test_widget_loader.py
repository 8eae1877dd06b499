"""The widget loader on a library's page holds no socket until it is needed: a page view
is one HTTP request, the button's label follows the status by a refresh every 30 s (the
page's clock is moved, nothing sleeps), and the frame and its socket come when the patron
opens the widget, or at once on a page of a browser with a chat going on, or of a widget
set to keep a socket (`live_socket`)."""

from __future__ import annotations

import httpx
from playwright.async_api import Browser, Response, WebSocket, expect

from deploy.local.system import LocalSystem
from tests.browser.pages import widget_online
from tests.client import ProtocolClient, eventually, operator, scratch_admin

ONLINE, OFFLINE = "Ask a librarian", "Ask a librarian (leave a message)"


async def hill_offline(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as http:

        async def offline() -> bool | None:
            status = (await http.get("/api/widgets/hill/status")).json()
            return True if not status["online"] else None

        await eventually(offline, "nobody staffing hill", timeout=10)


async def test_a_page_view_opens_no_socket_and_the_label_follows_by_refresh(
    system: LocalSystem, browser: Browser
):
    base = system.gateway_url
    await hill_offline(base)
    context = await browser.new_context()
    ann: ProtocolClient | None = None
    try:
        page = await context.new_page()
        sockets: list[WebSocket] = []
        page.on("websocket", lambda ws: sockets.append(ws))
        calls: list[Response] = []
        page.on("response", lambda r: calls.append(r) if "/api/widgets/" in r.url else None)
        await page.clock.install()
        await page.goto(f"{base}/demo")
        button = page.locator("button[data-refdesk]")
        await expect(button).to_have_text(OFFLINE)
        assert [(r.request.method, r.url.split("/api/")[1]) for r in calls] == [
            ("POST", "widgets/hill/views")
        ]
        view_bytes = len(await calls[0].body())

        # A librarian comes: the page hears it on its next refresh, within 30 s.
        ann = await operator(base, "demo-hill-ann", ["demo-hill"])
        await widget_online(page, base, "hill")
        await page.clock.run_for(29_000)
        await expect(button).to_have_text(OFFLINE)
        await page.clock.run_for(1_500)
        await expect(button).to_have_text(ONLINE)
        refresh = calls[-1]
        assert (refresh.request.method, refresh.url.split("/api/")[1]) == (
            "GET",
            "widgets/hill/status",
        )
        status_bytes = len(await refresh.body())
        assert status_bytes <= 1024
        assert sockets == [], [s.url for s in sockets]
        print(
            f"page view with the widget, nobody chatting: 0 WebSockets, one request "
            f"(POST views, {view_bytes} bytes of body); each 30 s refresh: GET status, "
            f"{status_bytes} bytes"
        )

        # Opened by the patron: now the frame, and its socket.
        await button.click()
        chat = page.frame_locator("#refdesk-frame")
        await expect(chat.locator("#availability")).to_have_text("A librarian is available.")
        assert len(sockets) == 1 and "/ws/patron?widget=hill" in sockets[0].url
    finally:
        await context.close()
        if ann is not None:
            await ann.close()


async def test_a_chat_going_on_resumes_at_once_on_reload(system: LocalSystem, browser: Browser):
    base = system.gateway_url
    ann = await operator(base, "demo-hill-ann", ["demo-hill"])
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await widget_online(page, base, "hill")
        await page.goto(f"{base}/demo")
        button = page.locator("button[data-refdesk]")
        await button.click()
        chat = page.frame_locator("#refdesk-frame")
        await chat.locator("#question").fill("Where are the maps?")
        await chat.locator("#start-form button").click()
        await expect(chat.locator("#status")).to_contain_text("You are number 1 in line")
        added = await ann.expect(lambda f: f["type"] == "queue.chat_added")
        chat_id = added["chat"]["id"]

        # Reloaded (or the next page of the site): the socket opens with no click, and the
        # chat is there, resumed, when the patron opens the widget.
        async with page.expect_websocket() as opened:
            await page.reload()
        assert "/ws/patron?widget=hill" in (await opened.value).url
        await expect(button).to_have_attribute("aria-expanded", "false")
        await expect(chat.locator("#log")).to_contain_text("Where are the maps?")
        await ann.ok({"type": "chat.claim", "chat_id": chat_id})
        await button.click()
        await expect(chat.locator("#status")).to_have_text("You are chatting with Ann.")

        # Ended: the next page view holds no socket again.
        await ann.ok({"type": "chat.close", "chat_id": chat_id})
        await expect(chat.locator("#log")).to_contain_text("The chat has ended.")
        sockets: list[WebSocket] = []
        page.on("websocket", lambda ws: sockets.append(ws))
        await page.reload()
        await expect(button).to_have_text(ONLINE)
        await page.wait_for_load_state("networkidle")
        assert sockets == [] and await page.locator("#refdesk-frame").count() == 0
    finally:
        await context.close()
        await ann.close()


async def test_a_live_socket_widget_opens_its_socket_on_every_page(
    system: LocalSystem, browser: Browser
):
    base = system.gateway_url
    live = {
        "id": "hill-live",
        "institution": "hill",
        "queue": "demo-hill",
        "title": "Ask Hill Library",
        "allowed_origins": [],
        "live_socket": True,
    }
    # A page of the library's site (on the gateway's own origin, which the widget allows).
    html = (
        "<!doctype html><title>Hill</title><body>"
        f'<script src="{base}/widget.js" data-widget="hill-live"></script>'
    )
    async with scratch_admin(base, "widgets", live, "hill-live"):
        context = await browser.new_context()
        try:
            page = await context.new_page()
            await page.route(
                f"{base}/library-page",
                lambda route: route.fulfill(content_type="text/html", body=html),
            )
            async with page.expect_websocket() as opened:
                await page.goto(f"{base}/library-page")
            assert "/ws/patron?widget=hill-live" in (await opened.value).url
            await expect(page.locator("button[data-refdesk]")).to_have_attribute(
                "aria-expanded", "false"
            )
        finally:
            await context.close()
