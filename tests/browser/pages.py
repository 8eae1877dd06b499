"""What the browser tests do on a page: sign in at the desk, wait for a widget's status,
watch the frames a page sends, take a screenshot for the README, run axe-core."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from tests.client import eventually


async def sign_in(page: Page, base: str, username: str) -> None:
    await page.goto(f"{base}/operator")
    await page.fill("#username", username)
    await page.fill("#password", "refdesk-demo")
    await page.click("button[type=submit]")
    await expect(page.locator("#whoami")).to_contain_text(username)
    # The session is open once the server has said which status it holds.
    await expect(page.locator("#status[data-confirmed]")).to_be_attached()


async def at_the_desk(page: Page, base: str, username: str, queue: str) -> None:
    """Signed in, monitoring `queue` and online, once the server has confirmed it."""
    await sign_in(page, base, username)
    await page.check(f"#queues input[value={queue}]")
    await page.select_option("#status", "online")
    await expect(page.locator("#status[data-confirmed=online]")).to_be_attached()


async def accept_offer(page: Page, note: str) -> None:
    offer = page.locator("#offers li", has_text=note)
    await expect(offer).to_be_visible()
    await offer.locator("[data-accept]").click()


async def widget_online(page: Page, base: str, widget: str, timeout: float = 5.0) -> None:
    """Wait until the system says the widget is staffed (presence has taken the change)."""

    async def online() -> bool | None:
        status = await page.request.get(f"{base}/api/widgets/{widget}/status")
        return True if (await status.json())["online"] else None

    await eventually(online, f"widget {widget} online", timeout)


def frames_sent(page: Page) -> list[dict[str, Any]]:
    """Every frame the page sends on its WebSockets, as it sends them."""
    sent: list[dict[str, Any]] = []

    def on_socket(ws: Any) -> None:
        ws.on("framesent", lambda payload: sent.append(json.loads(payload)))

    page.on("websocket", on_socket)
    return sent


def message_client_ids(sent: list[dict[str, Any]]) -> list[str]:
    return [f.get("client_id", "") for f in sent if f["type"] == "message"]


ROOT = Path(__file__).resolve().parents[2]

AXE = (ROOT / "tests" / "vendor" / "axe.min.js").read_text()

SHOTS = ROOT / "docs" / "screenshots"


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"))


async def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core, run in the page: violations of impact serious or critical."""
    await page.add_script_tag(content=AXE)
    found: list[dict[str, Any]] = await page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations
              .filter((v) => ["serious", "critical"].includes(v.impact))
              .map((v) => ({id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target)}));
        }"""
    )
    return found
