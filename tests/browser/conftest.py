"""Headless Chromium for the browser tests: Debian's package, driven by Playwright with
its executable path set (nothing is downloaded at run time)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright

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
