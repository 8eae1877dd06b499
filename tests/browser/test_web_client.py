"""The operator client and the patron widget, in real headless Chromium (Debian's package,
driven by Playwright), against the whole system running as processes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.async_api import Browser, Dialog, expect

from deploy.local.system import LocalSystem
from tests.browser.pages import (
    accept_offer,
    at_the_desk,
    frames_sent,
    message_client_ids,
    sign_in,
    widget_online,
)
from tests.client import eventually, signed_in
from tests.conftest import tuesday_system
from tests.servers import Servers


async def test_patron_asks_operator_claims_and_they_talk(system: LocalSystem, browser: Browser):
    base = system.gateway_url
    operator_ctx = await browser.new_context()
    patron_ctx = await browser.new_context()
    try:
        desk = await operator_ctx.new_page()
        desk_sent = frames_sent(desk)
        await at_the_desk(desk, base, "demo-hill-ann", "demo-hill")
        await widget_online(desk, base, "hill")

        widget = await patron_ctx.new_page()
        widget_sent = frames_sent(widget)
        await widget.goto(f"{base}/widget?widget=hill")
        await expect(widget.locator("#availability")).to_have_text("A librarian is available.")
        await widget.fill("#name", "Pat")
        await widget.fill("#email", "pat@example.org")
        await widget.fill("#question", "Do you have the 1923 yearbook?")
        await widget.click("#start-form button")
        await expect(widget.locator("#status")).to_contain_text("You are number")
        # The address goes with the question, so a missed chat can be followed up.
        start = next(f for f in widget_sent if f["type"] == "chat.start")
        assert start["email"] == "pat@example.org" and start["name"] == "Pat"

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
        # Both clients give each message an id of their own, so that a resend after a
        # timeout or `busy` is posted once.
        ids = message_client_ids(desk_sent) + message_client_ids(widget_sent)
        assert len(ids) == 2 and all(ids) and len(set(ids)) == 2, ids

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


async def test_transfer_in_the_browser_and_staff_messages(system: LocalSystem, browser: Browser):
    """Ann transfers a chat to Bob, who accepts it from his offers with the history; the
    patron is told; the two also talk in the staff pane. Then a reload of the patron's
    page resumes the chat from the remembered token."""
    base = system.gateway_url
    contexts = [await browser.new_context() for _ in range(3)]
    try:
        ann, bob, widget = [await c.new_page() for c in contexts]
        await at_the_desk(ann, base, "demo-hill-ann", "demo-hill")
        await at_the_desk(bob, base, "demo-hill-bob", "demo-hill")
        await widget_online(ann, base, "hill")

        await widget.goto(f"{base}/widget?widget=hill")
        await widget.fill("#name", "Pat")
        await widget.fill("#question", "Who handles interlibrary loans?")
        await widget.click("#start-form button")
        waiting = ann.locator("#waiting li", has_text="Who handles interlibrary loans?")
        await waiting.locator("button").click()
        await expect(widget.locator("#log")).to_contain_text("Ann joined the chat.")

        await ann.fill("#transfer-to", "demo-hill-bob")
        await ann.fill("#transfer-note", "ILL question")
        await ann.click("#transfer")
        await expect(ann.locator("#chat-title")).to_contain_text("transferring")
        await expect(widget.locator("#log")).to_contain_text("Connecting you with a colleague")
        await accept_offer(bob, "ILL question")
        await expect(bob.locator("#log")).to_contain_text("Who handles interlibrary loans?")
        await expect(widget.locator("#log")).to_contain_text("Bob has taken over the chat.")
        await expect(ann.locator("#chat-title")).to_contain_text("transferred to Bob")
        await expect(ann.locator("#body")).to_be_disabled()
        await bob.fill("#body", "I do! What do you need?")
        await bob.click("#send")
        await expect(widget.locator("#log")).to_contain_text("I do! What do you need?")

        # Staff conversations: Ann writes to Bob; Bob, reading the library-wide one, sees
        # it counted, opens it and finds it in the history; his answer reaches Ann live.
        direct = "dm:demo-hill-ann:demo-hill-bob"
        await ann.select_option("#staff-conversation", direct)
        await ann.fill("#staff-body", "Thanks for taking that one")
        await ann.click("#staff-send")
        await expect(ann.locator("#staff-log")).to_contain_text("Thanks for taking that one")
        await expect(bob.locator(f"#staff-conversation option[value='{direct}']")).to_have_text(
            "Ann (1 new)"
        )
        await expect(bob.locator("#staff-log")).not_to_contain_text("Thanks for taking")
        await bob.select_option("#staff-conversation", direct)
        await expect(bob.locator("#staff-log")).to_contain_text("Ann:Thanks for taking that one")
        await bob.fill("#staff-body", "Any time")
        await bob.click("#staff-send")
        await expect(ann.locator("#staff-log")).to_contain_text("Bob:Any time")
        # A queue's conversation has its own history, apart from the direct one.
        await ann.select_option("#staff-conversation", "queue:demo-hill")
        await expect(ann.locator("#staff-log")).to_have_attribute(
            "data-conversation", "queue:demo-hill"
        )
        await expect(ann.locator("#staff-log")).not_to_contain_text("Any time")
        await ann.fill("#staff-body", "Queue is busy today")
        await ann.click("#staff-send")
        await expect(
            bob.locator("#staff-conversation option[value='queue:demo-hill']")
        ).to_have_text("Queue demo-hill (1 new)")
        await ann.select_option("#staff-conversation", direct)
        await expect(ann.locator("#staff-log")).to_contain_text("Bob:Any time")
        await expect(ann.locator("#staff-log")).not_to_contain_text("Queue is busy")

        await widget.reload()
        await expect(widget.locator("#log")).to_contain_text("I do! What do you need?")
        await expect(widget.locator("#log")).to_contain_text("Who handles interlibrary loans?")
        await widget.fill("#body", "A 1923 yearbook")
        await widget.click("#send-form button")
        await expect(bob.locator("#log")).to_contain_text("Pat:A 1923 yearbook")
        await bob.click("#close")
        await expect(widget.locator("#log")).to_contain_text("The chat has ended.")
    finally:
        for context in contexts:
            await context.close()


async def test_widget_follows_live_status_and_takes_a_message_when_offline(
    system: LocalSystem, browser: Browser
):
    base = system.gateway_url
    operator_ctx = await browser.new_context()
    patron_ctx = await browser.new_context()
    try:
        widget = await patron_ctx.new_page()
        await widget.goto(f"{base}/widget?widget=hill")
        await expect(widget.locator("#availability")).to_have_text("No one is available right now.")
        await expect(widget.locator("#offline-form")).to_be_visible()
        await expect(widget.locator("#start-form")).to_be_hidden()

        # An operator comes online: the open page turns to the question form by itself.
        desk = await operator_ctx.new_page()
        await sign_in(desk, base, "demo-hill-ann")
        await desk.check("#queues input[value=demo-hill]")
        await desk.select_option("#status", "online")
        await expect(widget.locator("#start-form")).to_be_visible(timeout=3000)
        await expect(widget.locator("#availability")).to_have_text("A librarian is available.")

        # And goes away again: back to the message form, which becomes a ticket.
        await desk.select_option("#status", "offline")
        await expect(widget.locator("#offline-form")).to_be_visible(timeout=3000)
        await widget.fill("#off-email", "pat@example.org")
        await widget.fill("#off-question", "Can I renew a laptop loan?")
        await widget.click("#offline-form button")
        await expect(widget.locator("#offline-sent")).to_contain_text("ticket")
    finally:
        await operator_ctx.close()
        await patron_ctx.close()


@pytest.fixture(scope="module")
def tuesday(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    with tuesday_system(servers, tmp_path_factory.mktemp("tuesday"), "refdesk_tuesday") as running:
        yield running


async def test_the_backup_service_hands_a_chat_back_to_the_library(
    tuesday: LocalSystem, browser: Browser
):
    """River is unstaffed, so its patron reaches Dan at the backup service; when Cat comes
    to River's desk, Dan hands the chat back to River's queue, which the transfer box
    suggests, and Cat takes it over with the history."""
    base = tuesday.gateway_url
    contexts = [await browser.new_context() for _ in range(3)]
    try:
        dan, cat, widget = [await c.new_page() for c in contexts]
        await at_the_desk(dan, base, "demo-backup-dan", "demo-backup")
        await widget_online(dan, base, "river")

        await widget.goto(f"{base}/widget?widget=river")
        await widget.fill("#name", "Pat")
        await widget.fill("#question", "Can River renew my thesis loan?")
        await widget.click("#start-form button")
        waiting = dan.locator("#waiting li", has_text="Can River renew my thesis loan?")
        await expect(waiting).to_contain_text("[river]")
        await waiting.locator("button").click()
        await expect(widget.locator("#log")).to_contain_text("Dan joined the chat.")

        await at_the_desk(cat, base, "demo-river-cat", "demo-river")

        hand_back = dan.locator("#transfer-targets option[value=demo-river]")
        await expect(hand_back).to_have_attribute("label", "hand back to river")
        await dan.fill("#transfer-to", "demo-river")
        await dan.fill("#transfer-note", "Renewals are River's")
        # Outside Dan's own institution: the client asks him first, and he confirms.
        asked: list[str] = []

        async def confirm(dialog: Dialog) -> None:
            asked.append(dialog.message)
            await dialog.accept()

        dan.once("dialog", confirm)
        await dan.click("#transfer")
        await accept_offer(cat, "Renewals are River's")
        assert asked == ["demo-river is outside your library. Transfer the chat there?"]
        await expect(cat.locator("#log")).to_contain_text("Can River renew my thesis loan?")
        await expect(widget.locator("#log")).to_contain_text("Cat has taken over the chat.")
        await expect(dan.locator("#chat-title")).to_contain_text("transferred to Cat")
        await cat.fill("#body", "Renewed until June.")
        await cat.click("#send")
        await expect(widget.locator("#log")).to_contain_text("Renewed until June.")
        await cat.click("#close")
        await expect(widget.locator("#log")).to_contain_text("The chat has ended.")
    finally:
        for context in contexts:
            await context.close()


async def test_a_library_hands_a_chat_to_the_backup_service_at_the_desk(
    tuesday: LocalSystem, browser: Browser
):
    """River's Cat claims her patron's chat and hands it to Dan at the backup service,
    chosen from the backup service's list; Dan accepts, answers and closes; River and the
    backup service both read the transcript, and Hill does not."""
    base = tuesday.gateway_url
    contexts = [await browser.new_context() for _ in range(3)]
    question = "Can someone help with a citation tonight?"
    try:
        cat, dan, widget = [await c.new_page() for c in contexts]
        await at_the_desk(cat, base, "demo-river-cat", "demo-river")
        await at_the_desk(dan, base, "demo-backup-dan", "demo-backup")
        await widget_online(cat, base, "river")

        await widget.goto(f"{base}/widget?widget=river")
        await widget.fill("#name", "Pat")
        await widget.fill("#question", question)
        await widget.click("#start-form button")
        waiting = cat.locator("#waiting li", has_text=question)
        await waiting.locator("button").click()
        await expect(widget.locator("#log")).to_contain_text("Cat joined the chat.")

        await cat.check("#transfer-cross")
        backup = cat.locator("#transfer-choice optgroup[label='Backup service']")
        await expect(backup.locator("option", has_text="Dan (backup)")).to_be_attached()
        await cat.select_option("#transfer-choice", label="Dan (backup)")
        await cat.fill("#transfer-note", "Citation help after our hours")
        await cat.click("#transfer")
        await accept_offer(dan, "Citation help after our hours")
        await expect(dan.locator("#log")).to_contain_text(question)
        await expect(widget.locator("#log")).to_contain_text("Dan has taken over the chat.")
        await expect(cat.locator("#chat-title")).to_contain_text("transferred to Dan")
        await dan.fill("#body", "Which style does your course use?")
        await dan.click("#send")
        await expect(widget.locator("#log")).to_contain_text("Which style does your course use?")
        await widget.fill("#body", "APA, please.")
        await widget.click("#send-form button")
        await expect(dan.locator("#log")).to_contain_text("APA, please.")
        await dan.click("#close")
        await expect(widget.locator("#log")).to_contain_text("The chat has ended.")
    finally:
        for context in contexts:
            await context.close()

    async def transcript(username: str) -> httpx.Response:
        async with await signed_in(base, username) as http:
            return await http.get("/api/transcripts", params={"q": "citation"})

    for reader in ("demo-river-cat", "demo-backup-dan"):

        async def closed(reader: str = reader) -> list[str] | None:
            found = (await transcript(reader)).json()["chats"]
            done = [c for c in found if c["question"] == question and c["state"] == "closed"]
            return [c["id"] for c in done] or None

        ids = await eventually(closed, f"{reader} reads the closed chat")
        async with await signed_in(base, reader) as http:
            read = (await http.get(f"/api/transcripts/{ids[0]}")).json()
        assert [m["body"] for m in read["messages"]][-2:] == [
            "Which style does your course use?",
            "APA, please.",
        ]
        assert read["chat"]["handled_by"] == ["river", "backup"]
        assert read["chat"]["answered_institution"] == "backup"
    hill = (await transcript("demo-hill-admin")).json()["chats"]
    assert not [c for c in hill if c["question"] == question]
