"""Tickets through the real services: from a chat under way, from a missed chat and from the
offline form; assignment pushed to the assignee; status changes with their history;
lists; replies mailed (to the outbox folder, as `make run` has no mail server) and a
patron's answer by email threaded back through the inbound SMTP port."""

from __future__ import annotations

import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx

from deploy.local.system import LocalSystem
from tests.client import (
    ProtocolClient,
    about,
    assert_a_letter_of,
    clients,
    eventually,
    operator,
    patron,
    signed_in,
)


def mail_to(outbox: Path, address: str, ref: str) -> list[EmailMessage]:
    found = []
    for path in sorted(outbox.glob("*.eml")) if outbox.exists() else []:
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        if message["To"] == address and f"[{ref}]" in str(message["Subject"]):
            found.append(message)
    return found


async def mailed(system: LocalSystem, address: str, ref: str, count: int) -> list[EmailMessage]:
    async def arrived() -> list[EmailMessage] | None:
        found = mail_to(system.outbox, address, ref)
        return found if len(found) >= count else None

    return await eventually(arrived, f"{count} mail(s) [{ref}] to {address} in the outbox")


def assert_a_letter(outbox: Path, address: str, ref: str, subject: str) -> None:
    """The one `.eml` of the reference, byte for byte: a letter to the address alone."""
    found = []
    for path in outbox.glob("*.eml"):
        data = path.read_bytes()
        if f"[{ref}]" in str(message_from_bytes(data, policy=policy.default)["Subject"]):
            found.append(data)
    [data] = found
    assert_a_letter_of(data, address, subject)


async def ticket_frame(client: ProtocolClient, kind: str, ticket_id: str) -> dict[str, Any]:
    return await client.expect(lambda f: f["type"] == kind and f["ticket"]["id"] == ticket_id)


async def test_a_ticket_from_a_chat_under_way_then_the_chat_closes(system: LocalSystem):
    email = f"pat-{uuid.uuid4().hex[:6]}@example.org"
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    quiet = await patron(system.gateway_url, "hill")
    pat = await patron(system.gateway_url, "hill")
    async with (
        clients(ann, pat, quiet),
        await signed_in(system.gateway_url, "demo-hill-ann") as http,
    ):
        # A patron who gave no address: the ticket needs one, so Ann asks for it.
        silent_id = (await quiet.ok({"type": "chat.start", "question": "Interlibrary loan?"}))[
            "chat_id"
        ]
        await ann.expect(about(silent_id, "queue.chat_added"))
        await ann.ok({"type": "chat.claim", "chat_id": silent_id})
        refused = await http.post("/api/tickets", json={"chat_id": silent_id})
        assert refused.status_code == 422 and "email" in refused.text
        given = await http.post("/api/tickets", json={"chat_id": silent_id, "email": email})
        assert given.status_code == 201 and given.json()["email"] == email

        chat_id = (
            await pat.ok(
                {"type": "chat.start", "question": "Can you find the 1923 map?", "email": email}
            )
        )["chat_id"]
        await ann.expect(about(chat_id, "queue.chat_added"))
        await ann.ok({"type": "chat.claim", "chat_id": chat_id})
        await ann.ok({"type": "message", "chat_id": chat_id, "body": "I will look and write."})
        made = await http.post("/api/tickets", json={"chat_id": chat_id})
        assert made.status_code == 201, made.text
        ticket = made.json()
        assert (ticket["source"], ticket["email"], ticket["subject"]) == (
            "chat",
            email,
            "Can you find the 1923 map?",
        )
        assert [line["body"] for line in ticket["transcript"]] == [
            "Can you find the 1923 map?",
            "I will look and write.",
        ]
        # The chat then closes with a tag, as the procedure has it.
        await ann.ok({"type": "chat.close", "chat_id": chat_id, "tags": ["follow-up"]})
        await ann.ok({"type": "chat.close", "chat_id": silent_id, "tags": ["follow-up"]})
        # Another library's chat does not exist for Hill.
        other = await http.post("/api/tickets", json={"chat_id": uuid.uuid4().hex})
        assert other.status_code == 404


async def test_a_ticket_from_a_missed_chat(system: LocalSystem):
    email = f"pat-{uuid.uuid4().hex[:6]}@example.org"
    eve = await operator(system.gateway_url, "demo-hill-eve", ["demo-hill"])  # on the desk
    pat = await patron(system.gateway_url, "hill")
    async with clients(pat, eve):
        chat_id = (await pat.ok({"type": "chat.start", "question": "Still open?", "email": email}))[
            "chat_id"
        ]
        assert (await pat.ok({"type": "chat.end", "chat_id": chat_id}))["state"] == "missed"
    async with await signed_in(system.gateway_url, "demo-hill-bob") as bob:
        made = await bob.post("/api/tickets", json={"chat_id": chat_id})
        assert made.status_code == 201, made.text
        assert (made.json()["source"], made.json()["email"]) == ("missed_chat", email)


async def test_offline_message_assignment_status_history_replies_and_mail(system: LocalSystem):
    email = f"pat-{uuid.uuid4().hex[:6]}@example.org"
    word = f"zl{uuid.uuid4().hex[:8]}"  # found by this test's searches alone
    asked = f"Do you lend laptops {word}?"
    bob = await operator(system.gateway_url, "demo-hill-bob", ["demo-hill"])
    async with clients(bob), await signed_in(system.gateway_url, "demo-hill-ann") as ann:
        async with httpx.AsyncClient(base_url=system.gateway_url) as public:
            left = await public.post(
                "/api/widgets/hill/offline-message",
                json={"name": "Pat", "email": email, "question": asked},
            )
        assert left.status_code == 201
        ticket_id = left.json()["ticket_id"]
        # Hill's signed-in staff hear of it at once.
        announced = await ticket_frame(bob, "ticket.created", ticket_id)
        assert announced["ticket"]["source"] == "offline_form" and announced["by"] == "widget:hill"
        ticket = (await ann.get(f"/api/tickets/{ticket_id}")).json()
        ref = ticket["ref"]
        [ack] = await mailed(system, email, ref, 1)
        # It says nothing the sender wrote: the form mails any address it is given.
        assert word not in ack.get_content() and "Pat" not in ack.get_content()
        assert ack["Subject"] == f"[{ref}] We have your question"

        unassigned_open = {"assignee": "none", "status": "open"}
        waiting = (await ann.get("/api/tickets", params=unassigned_open)).json()
        assert ticket_id in [t["id"] for t in waiting["tickets"]], waiting
        # Assigned to Bob: pushed to his open client.
        assigned = await ann.patch(f"/api/tickets/{ticket_id}", json={"assignee": "demo-hill-bob"})
        assert assigned.status_code == 200 and assigned.json()["assignee"] == "demo-hill-bob"
        pushed = await ticket_frame(bob, "ticket.assigned", ticket_id)
        assert pushed["by"] == "demo-hill-ann" and pushed["ticket"]["assignee"] == "demo-hill-bob"
        for body, code in (
            ({"assignee": "demo-river-cat"}, 403),
            ({"assignee": "demo-hill-nobody"}, 422),
            ({"status": "lost"}, 422),
        ):
            assert (await ann.patch(f"/api/tickets/{ticket_id}", json=body)).status_code == code

        mine = (await ann.get("/api/tickets", params={"assignee": "demo-hill-bob"})).json()
        assert ticket_id in [t["id"] for t in mine["tickets"]]
        unassigned = (await ann.get("/api/tickets", params={"assignee": "none"})).json()
        assert ticket_id not in [t["id"] for t in unassigned["tickets"]]
        found = (await ann.get("/api/tickets", params={"q": word})).json()
        assert [t["id"] for t in found["tickets"]] == [ticket_id]
        for params, name in (({"colour": "red"}, "colour"), ({"cursor": "nope"}, "cursor")):
            refused = await ann.get("/api/tickets", params=params)
            assert refused.status_code == 422 and name in refused.text

        # A note stays inside; a reply is mailed with the reference; too long is too large.
        noted = await ann.post(
            f"/api/tickets/{ticket_id}/replies", json={"body": "Ask IT", "internal": True}
        )
        assert noted.status_code == 201 and noted.json()["notes"][0]["body"] == "Ask IT"
        sent = await ann.post(
            f"/api/tickets/{ticket_id}/replies", json={"body": "Yes, for two weeks."}
        )
        assert sent.status_code == 201 and sent.json()["status"] == "pending"
        too_long = await ann.post(f"/api/tickets/{ticket_id}/replies", json={"body": "x" * 20_001})
        assert too_long.status_code == 413
        replies = await mailed(system, email, ref, 2)
        assert any(m.get_content().startswith("Yes, for two weeks.") for m in replies)
        assert all("Ask IT" not in m.get_content() for m in replies)

        # The patron answers by email: threaded in, and Bob (who has it) hears.
        answer = EmailMessage()
        answer["From"], answer["To"] = email, "desk@hill.example"
        answer["Subject"] = f"Re: [{ref}] Re: {asked}"
        answer.set_content("Great, thank you.\n\n> Yes, for two weeks.\n")
        await aiosmtplib.send(answer, hostname="127.0.0.1", port=system.ports.inbound_mail)
        heard = await ticket_frame(bob, "ticket.answered", ticket_id)
        assert heard["ticket"]["status"] == "open"

        # Closing, and closing again: the second changes nothing.
        closed = await ann.patch(f"/api/tickets/{ticket_id}", json={"status": "closed"})
        again = await ann.patch(f"/api/tickets/{ticket_id}", json={"status": "closed"})
        assert closed.json()["history"] == again.json()["history"]
        history = [(h["what"], h["by"], h["new"]) for h in again.json()["history"]]
        assert history[0] == ("created", "widget:hill", "offline_form")
        assert ("assignee", "demo-hill-ann", "demo-hill-bob") in history
        assert [h[0] for h in history[2:]] == ["note", "reply", "patron_reply", "status"]
        assert [r["kind"] for r in again.json()["replies"]] == ["reply", "patron"]
        assert again.json()["replies"][1]["body"] == "Great, thank you."

    async with await signed_in(system.gateway_url, "demo-river-cat") as river:
        assert (await river.get(f"/api/tickets/{ticket_id}")).status_code == 404
        theirs = (await river.get("/api/tickets", params={"q": word})).json()
        assert theirs["tickets"] == []


async def test_no_question_or_subject_becomes_a_mail_header(system: LocalSystem):
    """The three ways in of the probe, through the gateway, with an encoded word that
    Python 3.11.7's header folding turns into a `Bcc`: the offline form (its
    acknowledgement), a staff ticket's subject and a chat's question made into a ticket
    (their replies). Each mail is a letter to the patron alone."""
    email = f"pat-{uuid.uuid4().hex[:6]}@example.org"
    evil = f"=?utf-8?q?a=0D=0ABcc:_v1@evil.example?= hours? zm{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=system.gateway_url) as public:
        left = await public.post(
            "/api/widgets/hill/offline-message", json={"email": email, "question": evil}
        )
    assert left.status_code == 201, left.text
    eve = await operator(system.gateway_url, "demo-hill-eve", ["demo-hill"])  # on the desk
    pat = await patron(system.gateway_url, "hill")
    async with clients(pat, eve):
        asked = await pat.ok({"type": "chat.start", "question": evil, "email": email})
        assert (await pat.ok({"type": "chat.end", "chat_id": asked["chat_id"]}))[
            "state"
        ] == "missed"
    async with await signed_in(system.gateway_url, "demo-hill-ann") as ann:
        offline_ref = (await ann.get(f"/api/tickets/{left.json()['ticket_id']}")).json()["ref"]
        await mailed(system, email, offline_ref, 1)
        assert_a_letter(system.outbox, email, offline_ref, f"[{offline_ref}] We have your question")
        from_staff = await ann.post(
            "/api/tickets", json={"email": email, "subject": evil, "body": "Hours?"}
        )
        from_chat = await ann.post("/api/tickets", json={"chat_id": asked["chat_id"]})
        for made in (from_staff, from_chat):
            assert made.status_code == 201, made.text
            ticket = made.json()
            assert ticket["subject"] == evil
            replied = await ann.post(
                f"/api/tickets/{ticket['id']}/replies", json={"body": "9 to 5"}
            )
            assert replied.status_code == 201, replied.text
            await mailed(system, email, ticket["ref"], 1)
            assert_a_letter(system.outbox, email, ticket["ref"], f"[{ticket['ref']}] Re: {evil}")


async def test_a_subject_or_name_with_any_line_break_is_refused_naming_it(system: LocalSystem):
    """Every Unicode line or paragraph break and control character: 422 naming the
    field, and no ticket (the input is not sent back)."""
    word = f"zb{uuid.uuid4().hex[:8]}"  # found by this test's search alone
    async with await signed_in(system.gateway_url, "demo-hill-ann") as ann:
        for character in ("\u2028", "\x85", "\u2029", "\x0b", "\x1c", "\x9b"):
            for field in ("subject", "name"):
                ticket = {"email": "pat@example.org", "subject": "Hours?", "body": word}
                ticket[field] = f"Hours?{character}Bcc: victim@example.org"
                refused = await ann.post("/api/tickets", json=ticket)
                assert refused.status_code == 422, (field, character, refused.text)
                assert refused.json()["message"].startswith(f"{field}:")
                assert "victim" not in refused.text
        assert (await ann.get("/api/tickets", params={"q": word})).json()["tickets"] == []


async def test_the_offline_form_is_rate_limited_per_address(system: LocalSystem):
    """From a loopback address of its own: the allowance it uses up is that address's for
    a minute, and every other test posts from 127.0.0.1."""
    word = f"zq{uuid.uuid4().hex[:8]}"
    question = {"email": "pat@example.org", "question": f"Question {word}"}
    codes = []
    own = httpx.AsyncHTTPTransport(local_address="127.0.0.9")
    async with httpx.AsyncClient(base_url=system.gateway_url, transport=own) as public:
        for _ in range(12):
            posted = await public.post("/api/widgets/hill/offline-message", json=question)
            codes.append(posted.status_code)
            if posted.status_code == 429:
                assert posted.json()["code"] == "rate_limited"
                break
    assert codes[-1] == 429 and set(codes[:-1]) == {201}, codes
    async with await signed_in(system.gateway_url, "demo-hill-ann") as ann:
        found = (await ann.get("/api/tickets", params={"q": word, "limit": 100})).json()
        assert len(found["tickets"]) == len(codes) - 1  # the refused one made no ticket
