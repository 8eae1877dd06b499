"""The library's widget in headless Chromium: the one-line snippet on a page, a chat with
typing both ways, a reload that resumes with its history, a new chat after one ends, the
offline form, a 360 px phone, and axe-core's accessibility checks. Screenshots of each
state go to docs/screenshots/."""

from __future__ import annotations

import uuid

from playwright.async_api import Browser, FrameLocator, Page, expect

from deploy.local.system import LocalSystem
from tests.browser.pages import (
    serious_violations,
    shot,
    sign_in,
    widget_online,
)
from tests.client import ProtocolClient, about, operator


async def opened(page: Page, base: str, query: str = "") -> FrameLocator:
    """The demo page with the snippet, the widget opened from its button."""
    await page.goto(f"{base}/demo{query}")
    button = page.locator("button[data-refdesk]")
    await expect(button).to_have_text("Ask a librarian")
    await button.click()
    await expect(button).to_have_attribute("aria-expanded", "true")
    return page.frame_locator("#refdesk-frame")


async def test_the_snippet_starts_a_chat_that_survives_a_reload(
    system: LocalSystem,
    browser: Browser,
):
    base = system.gateway_url
    ann = await operator(base, "demo-hill-ann", ["demo-hill"])
    context = await browser.new_context(viewport={"width": 1100, "height": 800})
    try:
        page = await context.new_page()
        await widget_online(page, base, "hill")
        chat = await opened(page, base, "?q=private+words#results")
        await expect(chat.locator("#start-form")).to_be_visible()
        await chat.locator("#name").fill("Pat")
        await chat.locator("#email").fill("pat@example.org")
        await chat.locator("#question").fill("Do you have the 1923 yearbook?")
        await shot(page, "widget-open")
        await chat.locator("#start-form button").click()
        await expect(chat.locator("#status")).to_contain_text("You are number 1 in line")
        await shot(page, "widget-waiting")

        added = await ann.expect(lambda f: f["type"] == "queue.chat_added")
        chat_id = added["chat"]["id"]
        assert added["chat"]["patron"]["email"] == "pat@example.org"
        # The page the patron is on goes with the chat, without its query or fragment.
        assert added["chat"]["patron"]["page"] == f"{base}/demo"
        await ann.ok({"type": "chat.claim", "chat_id": chat_id})
        await expect(chat.locator("#status")).to_have_text("You are chatting with Ann.")
        # Typing, both ways.
        await ann.ok({"type": "typing", "chat_id": chat_id})
        await expect(chat.locator("#typing")).to_have_text("Ann is typing…")
        await ann.ok(
            {"type": "message", "chat_id": chat_id, "body": "Yes, in Special Collections."}
        )
        await expect(chat.locator("#log")).to_contain_text("Yes, in Special Collections.")
        await expect(chat.locator("#typing")).to_have_text("")
        await chat.locator("#body").press_sequentially("Thank you")
        typing = await ann.expect(about(chat_id, "typing"))
        assert typing["from"]["kind"] == "patron"
        await chat.locator("#send-form button").click()
        await ann.expect(lambda f: f["type"] == "message" and f["body"] == "Thank you")
        await shot(page, "widget-chatting")

        # A reload (or a dropped network) resumes the chat with its history.
        await page.reload()
        chat = page.frame_locator("#refdesk-frame")
        await page.locator("button[data-refdesk]").click()
        log = chat.locator("#log")
        for said in ("Do you have the 1923 yearbook?", "Yes, in Special Collections.", "Thank you"):
            await expect(log).to_contain_text(said)

        # Ended by the librarian: the patron can ask again without a reload.
        await ann.ok({"type": "chat.close", "chat_id": chat_id})
        await expect(log).to_contain_text("The chat has ended.")
        again = chat.locator("#again")
        await expect(again).to_be_focused()
        await again.click()
        await expect(chat.locator("#start-form")).to_be_visible()
        await expect(chat.locator("#question")).to_be_focused()
        # Ann leaves the desk: the open widget and the page's button both say so.
        await ann.ok({"type": "status.set", "status": "offline"})
        await expect(chat.locator("#offline-form")).to_be_visible(timeout=5000)
        label = page.locator("button[data-refdesk]")
        await expect(label).to_have_text("Ask a librarian (leave a message)", timeout=5000)
    finally:
        await context.close()
        await ann.close()


async def test_on_a_phone_offline_and_accessible(
    system: LocalSystem,
    browser: Browser,
):
    base = system.gateway_url
    phone = await browser.new_context(
        viewport={"width": 360, "height": 740}, device_scale_factor=2, has_touch=True
    )
    office = await browser.new_context(viewport={"width": 1280, "height": 900})
    question = f"Can I renew a laptop loan ({uuid.uuid4().hex[:6]})?"
    try:
        # River's operator at the desk (offline: nobody answers chats) sees the ticket come.
        desk = await office.new_page()
        await sign_in(desk, base, "demo-river-cat")
        await desk.select_option("#status", "offline")
        await expect(desk.locator("#status")).to_have_attribute("data-confirmed", "offline")
        page = await phone.new_page()
        # Nobody staffs River or the backup service here: its widget offers the message form.
        await page.goto(f"{base}/widget?widget=river")
        await expect(page.locator("#offline-form")).to_be_visible()
        width = await page.evaluate(
            "() => document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth"
        )
        assert width <= 0, f"{width} px of horizontal scroll at 360 px"
        assert await serious_violations(page) == []
        await shot(page, "widget-offline-phone")
        await page.fill("#off-email", "pat@example.org")
        await page.fill("#off-question", question)
        await page.click("#offline-form button")
        await expect(page.locator("#offline-sent")).to_contain_text("ticket T")
        await expect(desk.locator("#notices")).to_contain_text(question)
        await desk.click("#tickets-open")
        await expect(desk.locator("#tickets li", has_text=question)).to_be_visible()

        # The loader on a host page: the frame fits the phone, the button says what is on.
        await page.goto(f"{base}/demo")
        await page.locator("button[data-refdesk]").click()
        box = await page.locator("#refdesk-frame").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360
        chat = page.frame_locator("#refdesk-frame")
        await expect(chat.locator("#availability")).not_to_have_text("Connecting…")
        assert await serious_violations(page) == []
    finally:
        await phone.close()
        await office.close()


async def test_the_chat_states_pass_axe(
    system: LocalSystem,
    browser: Browser,
):
    base = system.gateway_url
    ann: ProtocolClient = await operator(base, "demo-hill-ann", ["demo-hill"])
    context = await browser.new_context(viewport={"width": 420, "height": 720})
    try:
        page = await context.new_page()
        await widget_online(page, base, "hill")
        await page.goto(f"{base}/widget?widget=hill")
        await expect(page.locator("#start-form")).to_be_visible()
        assert await serious_violations(page) == []
        await page.fill("#question", "Is the library open on Sunday?")
        await page.click("#start-form button")
        added = await ann.expect(lambda f: f["type"] == "queue.chat_added")
        await ann.ok({"type": "chat.claim", "chat_id": added["chat"]["id"]})
        await expect(page.locator("#status")).to_contain_text("chatting with Ann")
        assert await serious_violations(page) == []
        await ann.ok({"type": "chat.close", "chat_id": added["chat"]["id"]})
        await expect(page.locator("#again")).to_be_visible()
        assert await serious_violations(page) == []
    finally:
        await context.close()
        await ann.close()
