"""The operator's desk in headless Chromium: a new chat alerts (title and tone) and its wait
ticks; typing both ways; a snippet and a tag; the guest's earlier chat of the day; a ticket
from the chat in one step and one from the offline form in the follow-up list; and the
desk reconnects by itself after its gateway restarts, with its chat."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, WebSocketRoute, expect

from deploy.local.system import LocalSystem
from tests.browser.pages import (
    at_the_desk,
    serious_violations,
    shot,
    sign_in,
    widget_online,
)
from tests.client import (
    ProtocolClient,
    about,
    create_record,
    eventually,
    hill_queue,
    operator,
    patron,
    signed_in,
)
from tests.conftest import start_system
from tests.servers import Servers


async def start(
    pat: ProtocolClient, question: str, email: str | None = None, page: str | None = None
) -> str:
    frame = {"type": "chat.start", "question": question, "name": "Pat", "email": email}
    if page:
        frame["page"] = page
    chat_id: str = (await pat.ok(frame))["chat_id"]
    return chat_id


async def claim_on(desk: Page, question: str) -> None:
    waiting = desk.locator("#waiting li", has_text=question)
    await expect(waiting).to_be_visible()
    await waiting.locator("button").click()
    await expect(desk.locator("#log")).to_contain_text(question)


async def test_a_new_chat_alerts_ticks_and_is_worked_from_the_desk(
    system: LocalSystem,
    browser: Browser,
):
    base = system.gateway_url
    word = uuid.uuid4().hex[:6]
    async with await signed_in(base, "demo-hill-admin") as admin:
        snippet = {"name": f"hill (hours {word})", "institution": "hill", "body": "We open at 8."}
        assert (await admin.post("/api/snippets", json=snippet)).status_code == 201
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    pat = await patron(base, "hill")
    try:
        desk = await context.new_page()
        await at_the_desk(desk, base, "demo-hill-ann", "demo-hill")
        await widget_online(desk, base, "hill")
        # An earlier chat of this guest today, answered and closed.
        first = await start(pat, f"First question {word}")
        await claim_on(desk, f"First question {word}")
        await desk.fill("#tags", "warmup")
        await desk.click("#close")
        await expect(desk.locator("#chat-title")).to_contain_text("closed")

        question = f"Can I renew {word}?"
        came_from = "https://library.example.org/renewals"
        chat_id = await start(pat, question, email="pat@example.org", page=came_from)
        row = desk.locator("#waiting li", has_text=question)
        await expect(row.locator(".wait")).to_have_text("0:01", timeout=4000)  # it ticks
        await expect(desk).to_have_title("(1) waiting — refdesk")
        assert await desk.evaluate("document.body.dataset.alerts") is not None
        await shot(desk, "operator-waiting")
        assert await serious_violations(desk) == []
        await claim_on(desk, question)
        await expect(desk).to_have_title("refdesk — operator")
        await expect(desk.locator("#patron")).to_contain_text("pat@example.org")
        await expect(desk.locator("#patron a[data-page]")).to_have_attribute("href", came_from)
        # The guest came back today: their first chat is beside this one.
        await expect(desk.locator("#earlier")).to_be_visible()
        await expect(desk.locator("#earlier-list")).to_contain_text(f"First question {word}")

        # Typing, both ways.
        await pat.ok({"type": "typing", "chat_id": chat_id})
        await expect(desk.locator("#typing")).to_have_text("Pat is typing…")
        await desk.locator("#body").press_sequentially("One moment")
        typing = await pat.expect(about(chat_id, "typing"))
        assert typing["from"]["kind"] == "operator"
        # A snippet by name, then sent.
        await desk.select_option("#snippet", f"hill (hours {word})")
        await expect(desk.locator("#body")).to_have_value("One moment We open at 8.")
        await desk.click("#send")
        heard = await pat.expect(lambda f: f["type"] == "message" and f["from"]["kind"] != "patron")
        assert heard["body"] == "One moment We open at 8."
        # A tag during the chat, and a ticket in one step.
        await desk.fill("#tag", "Renewals")
        await desk.click("#tag-add")
        await expect(desk.locator("#patron")).to_contain_text("tags: renewals")
        await desk.click("#ticket")
        await expect(desk.locator("#notices")).to_contain_text("made from this chat")
        await desk.click("#tickets-open")
        made = desk.locator("#tickets li", has_text=question)
        await expect(made).to_be_visible()
        await made.locator("[data-take-ticket]").click()
        await desk.click("#tickets-mine")
        await expect(desk.locator("#tickets li", has_text=question)).to_be_visible()
        assert await serious_violations(desk) == []
        await shot(desk, "operator-chat")
        await desk.click("#close")
        await pat.expect(about(chat_id, "chat.closed"))
        assert first != chat_id

        # The offline form's ticket is announced and listed, unassigned.
        async with httpx.AsyncClient(base_url=base) as public:
            left = await public.post(
                "/api/widgets/hill/offline-message",
                json={"email": "pat@example.org", "question": f"Laptops {word}?"},
            )
            assert left.status_code == 201
        await expect(desk.locator("#notices")).to_contain_text(f"Laptops {word}?")
        await desk.click("#tickets-open")
        await expect(desk.locator("#tickets li", has_text=f"Laptops {word}?")).to_be_visible()

        # Alerts off: no count in the title however many wait.
        await desk.uncheck("#alerts")
        await start(pat, f"Third {word}")
        await expect(desk.locator("#waiting li", has_text=f"Third {word}")).to_be_visible()
        await expect(desk).to_have_title("refdesk — operator")
    finally:
        await context.close()
        await pat.close()


@pytest.fixture(scope="module")
def restartable(
    servers: Servers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalSystem]:
    """A system of its own, whose gateway the test kills."""
    system = start_system(
        servers, Path(tmp_path_factory.mktemp("desk")), db="refdesk_desk", own_nats=True
    )
    try:
        yield system
    finally:
        system.stop()


async def test_the_desk_reconnects_after_its_gateway_restarts(
    restartable: LocalSystem,
    browser: Browser,
):
    base = restartable.gateway_url
    context = await browser.new_context()
    pat = await patron(base, "hill")
    try:
        desk = await context.new_page()
        await at_the_desk(desk, base, "demo-hill-ann", "demo-hill")
        await expect(desk.locator("#connection")).to_have_text("Connected")
        guest = next(f for f in pat.frames if f["type"] == "welcome")["token"]
        chat_id = await start(pat, "Still there after a restart?")
        await claim_on(desk, "Still there after a restart?")

        restartable.services["gateway"].kill()
        await expect(desk.locator("#connection")).to_have_text("Reconnecting…")
        said = await asyncio.to_thread(restartable.recover, "gateway")
        assert any("gateway restarted" in line for line in said)
        await expect(desk.locator("#connection")).to_have_text("Connected", timeout=15000)
        await expect(desk.locator("#mine")).to_contain_text("Pat (active)")
        pat = await patron(base, "hill", guest)
        await pat.expect(about(chat_id, "chat.resumed"))
        await pat.ok({"type": "message", "chat_id": chat_id, "body": "Back again"})
        await desk.locator("#mine li", has_text="Pat").click()
        await expect(desk.locator("#log")).to_contain_text("Back again")
    finally:
        await context.close()
        await pat.close()


async def test_a_chat_taken_over_while_the_desk_was_cut_off_is_marked_on_its_return(
    system: LocalSystem,
    browser: Browser,
):
    """The desk's connection drops (the test cuts it); Bob takes the chat over; when the
    desk is back, the chat is marked as no longer Ann's, with a notice, not left open."""
    base = system.gateway_url
    question = f"Who has it now {uuid.uuid4().hex[:6]}?"
    context = await browser.new_context()
    bob = await operator(base, "demo-hill-bob", ["demo-hill"])
    pat = await patron(base, "hill")
    cut = asyncio.Event()
    routes: list[WebSocketRoute] = []

    async def through(route: WebSocketRoute) -> None:
        if cut.is_set():
            await route.close(code=1000)
            return
        routes.extend((route, route.connect_to_server()))

    try:
        desk = await context.new_page()
        await desk.route_web_socket(re.compile(r".*/ws/operator$"), through)
        await at_the_desk(desk, base, "demo-hill-ann", "demo-hill")
        chat_id = await start(pat, question)
        await claim_on(desk, question)
        cut.set()
        for side in routes:  # both the desk's side and the gateway's
            await side.close(code=1000)
        await expect(desk.locator("#connection")).to_have_text("Reconnecting…")
        await bob.expect(about(chat_id, "chat.owner_left"))
        await bob.ok({"type": "chat.take", "chat_id": chat_id})
        cut.clear()
        await expect(desk.locator("#connection")).to_have_text("Connected", timeout=15000)
        await expect(desk.locator("#notices")).to_contain_text("While you were away")
        await expect(desk.locator("#mine")).to_contain_text("no longer yours")
        await expect(desk.locator("#body")).to_be_disabled()
        await bob.ok({"type": "chat.close", "chat_id": chat_id})
    finally:
        await context.close()
        await bob.close()
        await pat.close()


async def test_a_transfer_to_a_colleague_chosen_from_who_is_online(
    system: LocalSystem,
    browser: Browser,
):
    base = system.gateway_url
    word = uuid.uuid4().hex[:6]
    ann_ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    bob_ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    pat = await patron(base, "hill")
    try:
        bob = await bob_ctx.new_page()
        await at_the_desk(bob, base, "demo-hill-bob", "demo-hill")
        ann = await ann_ctx.new_page()
        await at_the_desk(ann, base, "demo-hill-ann", "demo-hill")
        await widget_online(ann, base, "hill")
        chat_id = await start(pat, f"Who knows theses {word}?")
        await claim_on(ann, f"Who knows theses {word}?")
        # Bob was claimed from too: both desks see the chat leave the queue.
        choice = ann.locator("#transfer-choice")
        await expect(choice.locator("option", has_text="Bob (hill)")).to_be_attached()
        # Other libraries only on purpose: the backup service's queue appears when asked.
        await expect(choice.locator("optgroup[label='Backup service']")).to_have_count(0)
        await ann.check("#transfer-cross")
        await expect(choice.locator("optgroup[label='Backup service']")).to_have_count(1)
        await ann.uncheck("#transfer-cross")
        await choice.select_option(label="Bob (hill)")
        await ann.fill("#transfer-note", "Bob knows theses")
        assert await serious_violations(ann) == []
        await shot(ann, "operator-transfer")
        await ann.click("#transfer")
        offer = bob.locator("#offers li", has_text="Bob knows theses")
        await expect(offer).to_be_visible()
        # Taken back before Bob answers: his offer goes, the chat is Ann's again.
        await ann.click("#transfer-cancel")
        await expect(offer).to_have_count(0)
        await expect(ann.locator("#chat-title")).to_contain_text("active")
        await choice.select_option(label="Bob (hill)")
        await ann.fill("#transfer-note", "Bob knows theses")
        await ann.click("#transfer")
        await expect(offer).to_be_visible()
        await offer.locator("[data-accept]").click()
        assert (await pat.expect(about(chat_id, "chat.transferred")))["operator"] == "Bob"
        await expect(bob.locator("#chat-title")).to_contain_text("active")
        await bob.click("#close")
    finally:
        await ann_ctx.close()
        await bob_ctx.close()
        await pat.close()


async def test_reports_statistics_render_and_new_hours_show_in_the_coverage_strip(
    system: LocalSystem,
    browser: Browser,
):
    base = system.gateway_url
    queue = f"demo-hill-x{uuid.uuid4().hex[:6]}"
    word = f"zr{uuid.uuid4().hex[:8]}"
    # A chat of today with a word of its own, answered and closed, for the search.
    ann = await operator(base, "demo-hill-ann", ["demo-hill"])
    pat = await patron(base, "hill")
    asked = await start(pat, f"Where is the {word} collection?")
    await ann.expect(about(asked, "queue.chat_added"))
    await ann.ok({"type": "chat.claim", "chat_id": asked})
    await ann.ok({"type": "message", "chat_id": asked, "body": "On the third floor."})
    await ann.ok({"type": "chat.close", "chat_id": asked})
    await ann.close()
    await pat.close()
    async with await signed_in(base, "demo-hill-admin") as admin:

        async def indexed() -> bool | None:
            found = (await admin.get("/api/transcripts", params={"q": word})).json()
            return True if found["chats"] else None

        await eventually(indexed, "the chat in the transcripts")
        await create_record(admin, "queues", hill_queue(queue, "Evening desk"))
    context = await browser.new_context(viewport={"width": 1280, "height": 1100})
    try:
        page = await context.new_page()
        await sign_in(page, base, "demo-hill-admin")
        await page.click("#reports-toggle")
        await expect(page.locator("#figures")).to_have_text(re.compile(r"^\d+ chats?, \d+ missed"))
        # Earlier tests' chats of today are in the figures and the charts.
        await expect(page.locator("#chart-days svg rect").first).to_be_attached()
        await expect(page.locator("#chart-hours svg rect")).to_have_count(7 * 24)
        await expect(page.locator("#chart-answered svg rect")).to_have_count(4)
        # Waits per day: the median and the 90th percentile of today's answered chats.
        await expect(page.locator("#chart-waits svg rect[data-series='1']").first).to_be_attached()
        await page.select_option("#coverage-queue", queue)
        # A week with no holiday in the calendars the test uses (US, US-TX).
        await page.fill("#coverage-from", "2027-03-08")
        await page.click("#coverage-form button")
        strip = page.locator("#coverage-strip")
        await expect(strip).to_have_attribute("data-revision", "2")
        mine = strip.locator(f"rect[data-queue='{queue}']")
        before = await mine.count()
        await page.select_option("#hours-day", "wed")
        await page.fill("#hours-open", "10:00")
        await page.fill("#hours-close", "14:00")
        await page.click("#hours-form button")
        await expect(strip).to_have_attribute("data-revision", "3")
        assert await mine.count() == before + 1  # Wednesday 10-14 is covered now
        await page.evaluate("document.getElementById('reports').scrollIntoView()")
        await shot(page, "operator-reports")
        # Transcript search, and the widget's line to paste.
        await page.fill("#search-q", word)
        await page.click("#search-form button")
        result = page.locator(f"#search-results li[data-found='{asked}']")
        await expect(result).to_contain_text(f"Where is the {word} collection?")
        await result.locator("button").click()
        await expect(page.locator("#transcript")).to_contain_text("On the third floor.")
        await expect(page.locator("#widgets li[data-widget='hill'] code")).to_contain_text(
            'data-widget="hill"'
        )
        # Records in forms: a snippet made, refused while a field is wrong, and deleted.
        await page.select_option("#records-kind", "snippets")
        await page.click("#records-new")
        name = f"hill (records {word})"
        fields = page.locator("#record-fields")
        await fields.locator("[data-field='name']").fill(name)
        await fields.locator("[data-field='body']").fill("See the desk.")
        await page.click("#record-save")
        await expect(page.locator("#record-said")).to_have_text("Saved.")
        await expect(page.locator("#records-name")).to_have_value(name)
        await expect(fields.locator("[data-field='name']")).to_have_attribute("readonly", "")
        await fields.locator("[data-field='body']").fill("")
        await page.click("#record-save")
        await expect(page.locator("#record-said")).to_contain_text("Not saved")
        await expect(page.locator("#record-said")).to_contain_text("body")
        await expect(fields.locator("[data-field='body']")).to_have_attribute(
            "aria-invalid", "true"
        )
        page.once("dialog", lambda dialog: dialog.accept())
        await page.click("#record-delete")
        await expect(page.locator("#record-said")).to_have_text("Deleted.")

        # The queue's form: hours, a closed day, holidays, the fallback chain and rollover.
        await page.select_option("#records-kind", "queues")
        # A day open to midnight closes at 24:00, which the form shows as it is.
        await page.select_option("#records-name", "demo-hill")
        first_window = fields.locator("[data-field='hours'] li").first
        await expect(first_window.locator("input").nth(1)).to_have_value("24:00")
        await page.select_option("#records-name", queue)
        await expect(fields.locator("[data-field='hours'] li")).to_have_count(2)
        await fields.locator("[data-add='hours']").click()
        added = fields.locator("[data-field='hours'] li").last
        await added.locator("select").select_option("fri")
        await added.locator("input").nth(0).fill("12:00")
        await added.locator("input").nth(1).fill("16:00")
        await fields.locator("[data-add='closures']").click()
        await fields.locator("[data-field='closures'] input").last.fill("2026-12-24")
        await fields.locator("[data-add='fallback']").click()
        await fields.locator("[data-field='fallback'] input").last.fill("demo-hill")
        await fields.locator("[data-field='rollover']").check()
        await fields.locator("[data-field='rollover_after_s']").fill("90")
        # A calendar the holidays package does not know is refused, and marked.
        await fields.locator("[data-field='holidays.calendar']").fill("XX")
        await page.click("#record-save")
        await expect(page.locator("#record-said")).to_contain_text("holidays")
        calendar = fields.locator("[data-field='holidays.calendar']")
        await expect(calendar).to_have_attribute("aria-invalid", "true")
        await calendar.fill("US-TX")
        await page.click("#record-save")
        await expect(page.locator("#record-said")).to_have_text("Saved.")
        # The strip shows the queue's new Friday afternoon (its revision moves on).
        await expect(strip).to_have_attribute("data-revision", "4")
        assert await mine.count() == before + 2
        async with await signed_in(base, "demo-hill-admin") as admin:
            saved = (await admin.get(f"/api/queues/{queue}")).json()
        assert saved["hours"][-1] == {"day": "fri", "open": "12:00", "close": "16:00"}
        assert saved["holidays"] == {
            "calendar": "US-TX",
            "covered": False,
            "closures": ["2026-12-24"],
        }
        assert saved["fallback"] == ["demo-hill"] and saved["rollover_after_s"] == 90
        await page.evaluate("document.getElementById('records-form').scrollIntoView()")
        await shot(page, "operator-queue-form")

        # A widget's form shows the line to paste; a user made in the form can sign in.
        await page.select_option("#records-kind", "widgets")
        await page.select_option("#records-name", "hill")
        await expect(fields.locator("code.paste")).to_contain_text('data-widget="hill"')
        await page.select_option("#records-kind", "users")
        await page.click("#records-new")
        colleague = f"demo-hill-{word}"
        await fields.locator("[data-field='username']").fill(colleague)
        await fields.locator("[data-field='display_name']").fill("Flo")
        await fields.locator("[data-field='max_chats']").fill("2")
        await fields.locator("[data-field='password']").fill("a long enough passphrase")
        await page.click("#record-save")
        await expect(page.locator("#record-said")).to_have_text("Saved.")
        async with httpx.AsyncClient(base_url=base) as public:
            signed = await public.post(
                "/api/auth/login",
                json={"username": colleague, "password": "a long enough passphrase"},
            )
            assert signed.status_code == 200, signed.text
            assert signed.json()["user"]["display_name"] == "Flo"
        # Accounts are disabled rather than deleted (their names stay on transcripts).
        await expect(page.locator("#record-delete")).to_be_hidden()
        await fields.locator("[data-field='disabled']").check()
        await page.click("#record-save")
        await expect(page.locator("#record-said")).to_have_text("Saved.")
        async with httpx.AsyncClient(base_url=base) as public:
            refused = await public.post(
                "/api/auth/login",
                json={"username": colleague, "password": "a long enough passphrase"},
            )
            assert refused.status_code == 401, refused.text
        assert await serious_violations(page) == []
    finally:
        await context.close()
        async with await signed_in(base, "demo-hill-admin") as admin:
            await admin.delete(f"/api/queues/{queue}")


async def test_two_chats_missed_chats_and_a_ticket_worked_to_the_end(
    system: LocalSystem,
    browser: Browser,
):
    base = system.gateway_url
    word = uuid.uuid4().hex[:6]
    context = await browser.new_context(viewport={"width": 1280, "height": 1000})
    first, second, gone = [await patron(base, "hill") for _ in range(3)]
    try:
        page = await context.new_page()
        await page.goto(f"{base}/operator")
        assert await serious_violations(page) == []  # the sign-in screen
        await at_the_desk(page, base, "demo-hill-ann", "demo-hill")
        await widget_online(page, base, "hill")
        # A patron who left before anyone answered: a missed chat of today.
        missed = await start(gone, f"Anyone there {word}?", email="gone@example.org")
        await gone.ok({"type": "chat.end", "chat_id": missed})
        # Two chats at once: new messages in the one not shown are counted.
        one = await start(first, f"First of two {word}")
        await claim_on(page, f"First of two {word}")
        await start(second, f"Second of two {word}")
        await claim_on(page, f"Second of two {word}")
        await first.ok({"type": "message", "chat_id": one, "body": "Hello?"})
        unread = page.locator(f"#mine li[data-chat='{one}'] .unread")
        await expect(unread).to_have_text("1")
        await shot(page, "operator-two-chats")
        await page.locator(f"#mine li[data-chat='{one}']").click()
        await expect(page.locator("#log")).to_contain_text("Hello?")
        await expect(unread).to_have_count(0)

        # Missed today: a ticket in one step, then worked: a reply, an assignee, closed.
        await page.click("#tickets-missed")
        row = page.locator(f"#tickets li[data-missed='{missed}']")
        await expect(row).to_contain_text(f"Anyone there {word}?")
        await row.locator("button").click()
        await expect(page.locator("#notices")).to_contain_text("made from a missed chat")
        await page.click("#tickets-open")
        ticket = page.locator("#tickets li", has_text=f"Anyone there {word}?")
        await ticket.locator("[data-open-ticket]").click()
        await expect(page.locator("#ticket-title")).to_contain_text(f"Anyone there {word}?")
        await page.fill("#ticket-reply", "Sorry we missed you: yes, until nine.")
        await page.click("#ticket-reply-form button[type=submit]")
        await expect(page.locator("#ticket-log")).to_contain_text("Sorry we missed you")
        assert await serious_violations(page) == []  # the follow-up and ticket screens
        await expect(page.locator("#ticket-title")).to_contain_text("pending")
        await page.select_option("#ticket-assignee", "demo-hill-bob")
        await expect(page.locator("#ticket-assignee")).to_have_value("demo-hill-bob")
        await page.click("#ticket-close")
        await expect(page.locator("#ticket-title")).to_contain_text("closed")
        assert await serious_violations(page) == []
    finally:
        await context.close()
        for client in (first, second, gone):
            await client.close()


async def test_a_chat_started_with_a_guest_on_the_library_s_pages(
    system: LocalSystem,
    browser: Browser,
):
    base = system.gateway_url
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    guest = await patron(base, "hill")  # on the page, not asking anything
    guest_id = next(f for f in guest.frames if f["type"] == "welcome")["guest_id"]
    try:
        page = await context.new_page()
        await at_the_desk(page, base, "demo-hill-ann", "demo-hill")
        await page.click("#guests-refresh")
        row = page.locator(f"#guests li[data-guest='{guest_id}']")
        await expect(row).to_contain_text("on hill")
        page.once("dialog", lambda dialog: dialog.accept("Hello! Looking for the archives?"))
        await row.locator("[data-start-chat]").click()
        started = await guest.expect("chat.started")
        opening = await guest.expect("message")
        assert opening["body"] == "Hello! Looking for the archives?"
        await expect(page.locator("#chat-title")).to_contain_text("active")
        await guest.ok({"type": "message", "chat_id": started["chat"]["id"], "body": "Yes!"})
        await expect(page.locator("#log")).to_contain_text("Yes!")
        await page.click("#close")
    finally:
        await context.close()
        await guest.close()


async def test_an_announcement_reaches_the_desk_which_fits_a_phone(
    system: LocalSystem,
    browser: Browser,
):
    base = system.gateway_url
    text = f"The catalogue is down until noon ({uuid.uuid4().hex[:6]})."
    phone = await browser.new_context(viewport={"width": 390, "height": 844})
    desk = await browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        ann = await phone.new_page()
        await at_the_desk(ann, base, "demo-hill-ann", "demo-hill")
        overflow = await ann.evaluate(
            "() => document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth"
        )
        assert overflow <= 0, f"{overflow} px of horizontal scroll at 390 px"
        coordinator = await desk.new_page()
        await sign_in(coordinator, base, "demo-admin")
        await coordinator.select_option("#staff-conversation", "announcements")
        await coordinator.fill("#staff-body", text)
        await coordinator.click("#staff-send")
        await expect(coordinator.locator("#staff-log")).to_contain_text(text)
        await expect(ann.locator("#notices")).to_contain_text(text)
        await expect(ann.locator("#desk-error")).to_contain_text("Announcement from")
        # The announcements are a conversation with its history, which operators read only.
        await ann.select_option("#staff-conversation", "announcements")
        await expect(ann.locator("#staff-log")).to_contain_text(text)
        await expect(ann.locator("#staff-body")).to_be_disabled()
        await shot(ann, "operator-phone")
    finally:
        await phone.close()
        await desk.close()
