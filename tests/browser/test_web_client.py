"""The operator client and the patron widget, in real headless Chromium (Debian's package,
driven by Playwright), against the whole system running as processes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright, expect

from deploy.local.system import LocalSystem

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("REFDESK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FOUND = Path(CHROMIUM).exists()
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest_asyncio.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM_FOUND:
        pytest.fail(f"Chromium not found at {CHROMIUM}: `make test` installs Debian's chromium")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        await launched.close()


async def sign_in(page: Page, base: str, username: str) -> None:
    await page.goto(f"{base}/operator")
    await page.fill("#username", username)
    await page.fill("#password", "refdesk-demo")
    await page.click("button[type=submit]")
    await expect(page.locator("#whoami")).to_contain_text(username)


async def widget_online(page: Page, base: str, widget: str, timeout: float = 5.0) -> None:
    """Wait until the system says the widget is staffed (presence has taken the change)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status = await page.request.get(f"{base}/api/widgets/{widget}/status")
        if (await status.json())["online"]:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"widget {widget} never came online")
        await asyncio.sleep(0.1)


async def test_patron_asks_operator_claims_and_they_talk(system: LocalSystem, browser: Browser):
    base = system.gateway_url
    operator_ctx = await browser.new_context()
    patron_ctx = await browser.new_context()
    try:
        desk = await operator_ctx.new_page()
        await sign_in(desk, base, "demo-hill-ann")
        await desk.select_option("#status", "online")
        await desk.check("#queues input[value=demo-hill]")
        await widget_online(desk, base, "hill")

        widget = await patron_ctx.new_page()
        await widget.goto(f"{base}/widget?widget=hill")
        await expect(widget.locator("#availability")).to_have_text("A librarian is available.")
        await widget.fill("#name", "Pat")
        await widget.fill("#question", "Do you have the 1923 yearbook?")
        await widget.click("#start-form button")
        await expect(widget.locator("#log")).to_contain_text("You are number")

        waiting = desk.locator("#waiting li", has_text="Do you have the 1923 yearbook?")
        await expect(waiting).to_be_visible()
        await waiting.locator("button").click()
        await expect(desk.locator("#log")).to_contain_text("Do you have the 1923 yearbook?")
        await expect(widget.locator("#log")).to_contain_text("Ann joined the chat.")

        await desk.fill("#body", "Yes, in Special Collections.")
        await desk.click("#send")
        await expect(widget.locator("#log")).to_contain_text("Yes, in Special Collections.")
        await widget.fill("#body", "Thank you!")
        await widget.click("#send-form button")
        await expect(desk.locator("#log")).to_contain_text("Pat:Thank you!")

        await desk.fill("#tags", "archives")
        await desk.click("#close")
        await expect(desk.locator("#chat-title")).to_contain_text("closed")
        await expect(widget.locator("#log")).to_contain_text("The chat has ended.")
        await expect(desk.locator("#body")).to_be_disabled()
    finally:
        await operator_ctx.close()
        await patron_ctx.close()


async def test_wrong_password_is_shown(system: LocalSystem, browser: Browser):
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"{system.gateway_url}/operator")
        await page.fill("#username", "demo-hill-ann")
        await page.fill("#password", "not-it")
        await page.click("button[type=submit]")
        await expect(page.locator("#login-error")).to_have_text("wrong user name or password")
        await expect(page.locator("#desk")).to_be_hidden()
    finally:
        await context.close()


async def test_demo_page_loader_opens_the_widget(system: LocalSystem, browser: Browser):
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"{system.gateway_url}/demo")
        button = page.locator("button[data-refdesk=open]")
        await expect(button).to_be_visible()
        frame = page.locator("iframe[title='Chat with a librarian']")
        await expect(frame).to_be_hidden()
        await button.click()
        await expect(frame).to_be_visible()
        inner = page.frame_locator("iframe[title='Chat with a librarian']")
        await expect(inner.locator("#availability")).not_to_have_text("Connecting…")
    finally:
        await context.close()
