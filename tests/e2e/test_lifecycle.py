"""The chat lifecycle over real WebSockets: transfers, reclaim, expiry, take-over, operator
and patron disconnects, proactive chats, internal messages and queue positions.

The system under test runs with short waits (see tests/conftest.py): offers expire and
grace periods end after a few seconds, so these tests can watch them happen.
"""

from __future__ import annotations

import httpx

from deploy.local.system import LocalSystem
from services.routing import domain
from shared.bus import Bus
from tests.client import (
    ProtocolClient,
    about,
    claimed_chat,
    clients,
    eventually,
    login,
    operator,
    patron,
    signed_in,
    transcript,
)
from tests.conftest import OFFER_TIMEOUT_S, OWNER_GRACE_S, PATRON_GRACE_S

TIMING = domain.Timing(
    offer_timeout_s=OFFER_TIMEOUT_S, owner_grace_s=OWNER_GRACE_S, patron_grace_s=PATRON_GRACE_S
)


async def nothing_due(bus: Bus, chat_id: str, owner: str) -> None:
    """Waits until the chat, as its last record in the stream says, is `owner`'s with no
    deadline left: routing changes a chat by itself only when a deadline comes, so no
    requeue or close can follow. (Where a test once waited out a grace period to see that
    nothing happened.)"""

    async def settled() -> bool | None:
        found = await bus.last_chat_record(chat_id)
        if found is None:
            return None
        state = found[0].state
        return True if state.chat.owner == owner and not domain.deadlines(state, TIMING) else None

    await eventually(settled, f"chat {chat_id} with {owner} and nothing due", OWNER_GRACE_S)


async def offered_to_bob(
    system: LocalSystem,
) -> tuple[ProtocolClient, ProtocolClient, ProtocolClient, str]:
    """Ann's claimed chat, offered to Bob, who has the offer: (ann, bob, patron, chat id)."""
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    bob = await operator(system.gateway_url, "demo-hill-bob", [])
    pat, chat_id, _ = await claimed_chat(system, ann)
    await ann.ok({"type": "chat.transfer", "chat_id": chat_id, "to": {"operator": "demo-hill-bob"}})
    await bob.expect(about(chat_id, "transfer.offer"))
    return ann, bob, pat, chat_id


async def test_transfer_to_an_operator(system: LocalSystem):
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    bob = await operator(system.gateway_url, "demo-hill-bob", [])
    pat, chat_id, _ = await claimed_chat(system, ann)
    async with clients(ann, bob, pat):
        await pat.ok({"type": "message", "chat_id": chat_id, "body": "It's for my thesis"})
        ack = await ann.ok(
            {
                "type": "chat.transfer",
                "chat_id": chat_id,
                "to": {"operator": "demo-hill-bob"},
                "note": "Bob knows theses",
            }
        )
        assert ack["targets"] == ["demo-hill-bob"] and ack["chat"]["state"] == "transferring"
        offer = await bob.expect(about(chat_id, "transfer.offer"))
        assert offer["from"] == "Ann" and offer["note"] == "Bob knows theses"
        assert [m["body"] for m in offer["messages"]] == [
            "Where are the theses?",
            "It's for my thesis",
        ]
        await pat.expect(about(chat_id, "chat.transferring"))

        accepted = await bob.ok({"type": "transfer.accept", "chat_id": chat_id})
        assert accepted["chat"]["owner"] == "demo-hill-bob"
        assert len(accepted["messages"]) == 2
        assert (await pat.expect(about(chat_id, "chat.transferred")))["operator"] == "Bob"
        assert (await ann.expect(about(chat_id, "transfer.accepted")))["operator_name"] == "Bob"

        refused = await ann.request({"type": "message", "chat_id": chat_id, "body": "me?"})
        assert refused["type"] == "error" and refused["code"] == "forbidden"
        await bob.ok({"type": "message", "chat_id": chat_id, "body": "Hi, Bob here"})
        assert (await pat.expect("message"))["body"] == "Hi, Bob here"
        await bob.ok({"type": "chat.close", "chat_id": chat_id})


async def test_transfer_to_a_queue_first_accept_wins(system: LocalSystem):
    ann = await operator(system.gateway_url, "demo-hill-ann", [])
    bob = await operator(system.gateway_url, "demo-hill-bob", ["demo-hill"])
    eve = await operator(system.gateway_url, "demo-hill-eve", ["demo-hill"])
    await ann.ok({"type": "monitor.set", "queues": ["demo-hill"]})
    pat, chat_id, _ = await claimed_chat(system, ann)
    async with clients(ann, bob, eve, pat):
        ack = await ann.ok(
            {"type": "chat.transfer", "chat_id": chat_id, "to": {"queue": "demo-hill"}}
        )
        assert ack["targets"] == ["demo-hill-bob", "demo-hill-eve"]
        for target in (bob, eve):
            offer = await target.expect(about(chat_id, "transfer.offer"))
            assert offer["to_queue"] == "demo-hill"
        won = await eve.ok({"type": "transfer.accept", "chat_id": chat_id})
        assert won["chat"]["owner"] == "demo-hill-eve"
        assert (await bob.expect(about(chat_id, "transfer.accepted")))["operator"] == (
            "demo-hill-eve"
        )
        late = await bob.request({"type": "transfer.accept", "chat_id": chat_id})
        assert late["code"] == "conflict" and late["owner"] == "demo-hill-eve"
        await eve.ok({"type": "chat.close", "chat_id": chat_id})


async def test_owner_typing_during_a_transfer_takes_the_chat_back(system: LocalSystem):
    ann, bob, pat, chat_id = await offered_to_bob(system)
    async with clients(ann, bob, pat):
        await ann.ok({"type": "message", "chat_id": chat_id, "body": "Actually, I have it"})
        withdrawn = await bob.expect(about(chat_id, "transfer.withdrawn"))
        assert withdrawn["reason"] == "reclaimed"
        late = await bob.request({"type": "transfer.accept", "chat_id": chat_id})
        assert late["code"] == "conflict" and late["owner"] == "demo-hill-ann"
        assert (await pat.expect("message"))["body"] == "Actually, I have it"
        await ann.ok({"type": "chat.close", "chat_id": chat_id})


async def test_unanswered_offer_expires_back_to_the_owner(system: LocalSystem):
    ann, bob, pat, chat_id = await offered_to_bob(system)
    async with clients(ann, bob, pat):
        wait = OFFER_TIMEOUT_S + 3
        assert (await ann.expect(about(chat_id, "transfer.expired"), wait))["reason"] == "timeout"
        await bob.expect(about(chat_id, "transfer.expired"), 2)
        late = await bob.request({"type": "transfer.accept", "chat_id": chat_id})
        assert late["code"] == "conflict"
        await ann.ok({"type": "message", "chat_id": chat_id, "body": "Still with you"})
        await ann.ok({"type": "chat.close", "chat_id": chat_id})


async def test_a_declined_offer_goes_back_at_once(system: LocalSystem):
    ann, bob, pat, chat_id = await offered_to_bob(system)
    async with clients(ann, bob, pat):
        await bob.ok({"type": "transfer.decline", "chat_id": chat_id})
        assert (await ann.expect(about(chat_id, "transfer.expired")))["reason"] == "declined"
        await ann.ok({"type": "chat.close", "chat_id": chat_id})


async def test_transfer_refusals(system: LocalSystem):
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    bob = await operator(system.gateway_url, "demo-hill-bob", [], status="away")
    pat, chat_id, _ = await claimed_chat(system, ann)
    async with clients(ann, bob, pat):

        async def refused(to: dict) -> str:
            reply = await ann.request({"type": "chat.transfer", "chat_id": chat_id, "to": to})
            assert reply["type"] == "error", reply
            return str(reply["code"])

        assert await refused({"operator": "demo-hill-nobody"}) == "not_found"
        assert await refused({"operator": "demo-river-cat"}) == "not_found"  # not a colleague
        assert await refused({"operator": "demo-hill-bob"}) == "unavailable"  # away
        assert await refused({"queue": "demo-nowhere"}) == "not_found"
        assert await refused({"operator": "demo-hill-bob", "queue": "demo-hill"}) == "invalid"
        not_mine = await bob.request(
            {"type": "chat.transfer", "chat_id": chat_id, "to": {"operator": "demo-hill-ann"}}
        )
        assert not_mine["code"] == "forbidden"
        not_mine = await bob.request({"type": "message", "chat_id": chat_id, "body": "hi"})
        assert not_mine["code"] == "forbidden"
        # None of it changed anything: the chat is Ann's, and active.
        await ann.ok({"type": "message", "chat_id": chat_id, "body": "Still mine"})
        closed = await ann.ok({"type": "chat.close", "chat_id": chat_id})
        assert closed["changed"] is True
        again = await ann.ok({"type": "chat.close", "chat_id": chat_id})
        assert again["changed"] is False and again["chat"]["state"] == "closed"
        gone = await ann.request(
            {"type": "chat.transfer", "chat_id": chat_id, "to": {"queue": "demo-hill"}}
        )
        assert gone["code"] == "gone"


async def test_proactive_chat_reaches_the_guest_and_transfers(system: LocalSystem):
    ann = await operator(system.gateway_url, "demo-hill-ann", [])
    bob = await operator(system.gateway_url, "demo-hill-bob", [])
    pat = await patron(system.gateway_url, "hill")
    guest_id = pat.frames[-1]["guest_id"]
    async with clients(ann, bob, pat):
        ack = await ann.ok(
            {"type": "chat.start_proactive", "guest_id": guest_id, "body": "Finding everything?"}
        )
        chat_id = ack["chat_id"]
        assert ack["chat"]["origin"] == "proactive" and ack["chat"]["state"] == "active"
        started = await pat.expect("chat.started")
        assert started["chat"]["id"] == chat_id and started["chat"]["operator"] == "Ann"
        assert (await pat.expect("message"))["body"] == "Finding everything?"
        await pat.ok({"type": "message", "chat_id": chat_id, "body": "Not really"})
        assert (await ann.expect(about(chat_id, "message")))["body"] == "Not really"

        await ann.ok(
            {"type": "chat.transfer", "chat_id": chat_id, "to": {"operator": "demo-hill-bob"}}
        )
        await bob.expect(about(chat_id, "transfer.offer"))
        await bob.ok({"type": "transfer.accept", "chat_id": chat_id})
        assert (await pat.expect(about(chat_id, "chat.transferred")))["operator"] == "Bob"
        await bob.ok({"type": "message", "chat_id": chat_id, "body": "Bob here"})
        await bob.ok({"type": "chat.close", "chat_id": chat_id})
        await pat.expect(about(chat_id, "chat.closed"))
        token = await login(system.gateway_url, "demo-hill-bob")
        record = await transcript(system, token, chat_id, messages=3)
        assert record["chat"]["origin"] == "proactive" and record["chat"]["owner"] == (
            "demo-hill-bob"
        )
        assert [m["from"]["kind"] for m in record["messages"]] == [
            "operator",
            "patron",
            "operator",
        ]

        unknown = await ann.request(
            {"type": "chat.start_proactive", "guest_id": "nobody", "body": "Hi"}
        )
        assert unknown["code"] == "not_found"


async def test_owner_crash_requeues_to_the_front_and_a_colleague_gets_the_history(
    system: LocalSystem,
):
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    bob = await operator(system.gateway_url, "demo-hill-bob", ["demo-hill"])
    pat, chat_id, _ = await claimed_chat(system, ann)
    async with clients(bob, pat):
        await pat.ok({"type": "message", "chat_id": chat_id, "body": "Chapter 3 please"})
        await ann.ok({"type": "message", "chat_id": chat_id, "body": "Looking now"})
        ann.crash()
        left = await bob.expect(about(chat_id, "chat.owner_left"))
        assert left["owner"] == "demo-hill-ann"
        requeued = await bob.expect(about(chat_id, "chat.requeued"), OWNER_GRACE_S + 4)
        assert requeued["reason"] == "owner_disconnected"
        added = await bob.expect(
            lambda f: about(chat_id, "queue.chat_added")(f) and f["chat"]["requeued_at"]
        )
        assert added["chat"]["state"] == "queued" and added["chat"]["owner"] is None
        assert (await pat.expect(about(chat_id, "chat.requeued")))["queue"] == "demo-hill"

        claim = await bob.ok({"type": "chat.claim", "chat_id": chat_id})
        assert [m["body"] for m in claim["messages"]] == [
            "Where are the theses?",
            "Chapter 3 please",
            "Looking now",
        ]
        assert (await pat.expect("chat.claimed"))["operator"] == "Bob"
        await bob.ok({"type": "chat.close", "chat_id": chat_id})


async def test_colleague_takes_over_before_the_grace_period_ends(system: LocalSystem, bus: Bus):
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    bob = await operator(system.gateway_url, "demo-hill-bob", ["demo-hill"])
    pat, chat_id, _ = await claimed_chat(system, ann)
    async with clients(bob, pat):
        early = await bob.request({"type": "chat.take", "chat_id": chat_id})
        assert early["code"] == "conflict" and early["owner"] == "demo-hill-ann"
        ann.crash()
        await bob.expect(about(chat_id, "chat.owner_left"))
        taken = await bob.ok({"type": "chat.take", "chat_id": chat_id})
        assert taken["chat"]["owner"] == "demo-hill-bob" and len(taken["messages"]) == 1
        assert (await pat.expect(about(chat_id, "chat.transferred")))["operator"] == "Bob"
        await nothing_due(bus, chat_id, "demo-hill-bob")
        # Ann back: her session lists no chat of hers (her desk marks the one it had).
        back = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
        async with clients(back):
            assert next(f for f in back.frames if f["type"] == "session")["chats"] == []
        await bob.ok({"type": "chat.close", "chat_id": chat_id})


async def test_owner_reconnecting_within_grace_gets_the_chat_back(system: LocalSystem, bus: Bus):
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    pat, chat_id, _ = await claimed_chat(system, ann)
    await ann.ok({"type": "message", "chat_id": chat_id, "body": "One moment"})
    ann.crash()
    token = await login(system.gateway_url, "demo-hill-ann")
    again = await ProtocolClient.connect(system.gateway_url.replace("http", "ws") + "/ws/operator")
    async with clients(again, pat):
        await again.ok({"type": "auth", "token": token})
        resumed = await again.expect(about(chat_id, "chat.resumed"))
        assert resumed["chat"]["owner"] == "demo-hill-ann"
        assert [m["body"] for m in resumed["messages"]] == ["Where are the theses?", "One moment"]
        await nothing_due(bus, chat_id, "demo-hill-ann")
        await again.ok({"type": "message", "chat_id": chat_id, "body": "Back"})
        assert (await pat.expect(lambda f: f["type"] == "message" and f["body"] == "Back"))[
            "seq"
        ] == 3
        await again.ok({"type": "chat.close", "chat_id": chat_id})


async def test_patron_message_to_an_ownerless_chat_requeues_it_at_once(system: LocalSystem):
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    bob = await operator(system.gateway_url, "demo-hill-bob", ["demo-hill"])
    pat, chat_id, _ = await claimed_chat(system, ann)
    async with clients(bob, pat):
        ann.crash()
        await bob.expect(about(chat_id, "chat.owner_left"))
        await pat.ok({"type": "message", "chat_id": chat_id, "body": "Hello?"})
        requeued = await bob.expect(about(chat_id, "chat.requeued"), 2)
        assert requeued["reason"] == "patron_wrote"
        await bob.ok({"type": "chat.claim", "chat_id": chat_id})
        await bob.ok({"type": "chat.close", "chat_id": chat_id})


async def test_patron_reconnects_with_token_and_gets_the_history(system: LocalSystem, bus: Bus):
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    pat, chat_id, token = await claimed_chat(system, ann)
    await ann.ok({"type": "message", "chat_id": chat_id, "body": "Which campus?"})
    await pat.expect("message")
    await pat.close()
    back = await patron(system.gateway_url, "hill", token)
    async with clients(ann, back):
        resumed = await back.expect("chat.resumed")
        assert resumed["chat"]["id"] == chat_id and resumed["chat"]["state"] == "active"
        assert [m["seq"] for m in resumed["messages"]] == [1, 2]
        await nothing_due(bus, chat_id, "demo-hill-ann")
        await ann.ok({"type": "message", "chat_id": chat_id, "body": "Still there?"})
        assert (await back.expect("message"))["body"] == "Still there?"
        await back.ok({"type": "message", "chat_id": chat_id, "body": "Yes, Hill campus"})
        await ann.ok({"type": "chat.close", "chat_id": chat_id})


async def test_patron_gone_past_grace_misses_unclaimed_and_closes_claimed(system: LocalSystem):
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    async with clients(ann):
        waiting = await patron(system.gateway_url, "hill")
        missed_id = (await waiting.ok({"type": "chat.start", "question": "Hours?"}))["chat_id"]
        await ann.expect(about(missed_id, "queue.chat_added"))
        talking, closed_id, _ = await claimed_chat(system, ann)
        await waiting.close()
        await talking.close()
        removed = await ann.expect(about(missed_id, "queue.chat_removed"), PATRON_GRACE_S + 4)
        assert removed["reason"] == "missed"
        ended = await ann.expect(about(closed_id, "chat.closed"), PATRON_GRACE_S + 4)
        assert ended["reason"] == "patron_left" and ended["state"] == "closed"
        token = await login(system.gateway_url, "demo-hill-ann")
        assert (await transcript(system, token, missed_id, 1, state="missed"))["chat"]["closed_at"]
        await transcript(system, token, closed_id, 1, state="closed")


async def test_queue_positions_move_as_chats_are_claimed(system: LocalSystem):
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    first = await patron(system.gateway_url, "hill")
    second = await patron(system.gateway_url, "hill")
    async with clients(ann, first, second):
        one = (await first.ok({"type": "chat.start", "question": "First"}))["chat_id"]
        two = (await second.ok({"type": "chat.start", "question": "Second"}))["chat_id"]
        before = (await second.expect("chat.queued"))["position"]
        await ann.expect(about(two, "queue.chat_added"))
        await ann.ok({"type": "chat.claim", "chat_id": one})
        moved = await second.expect(about(two, "queue.position"))
        assert moved["position"] == before - 1
        assert "estimated_wait_s" in moved
        await ann.ok({"type": "chat.close", "chat_id": one})
        await second.ok({"type": "chat.end", "chat_id": two})


async def test_chat_limit_keeps_an_operator_from_taking_more(system: LocalSystem):
    eve = await operator(system.gateway_url, "demo-hill-eve", ["demo-hill"])
    pat, chat_id, _ = await claimed_chat(system, eve)
    other = await patron(system.gateway_url, "hill")
    async with clients(eve, pat, other):
        second = await other.request({"type": "chat.start", "question": "Me too"})
        # Eve is the only one online, and at her limit of one: nobody can answer.
        assert second["code"] == "unavailable"
        ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
        async with clients(ann):
            queued = await other.ok({"type": "chat.start", "question": "Me too"})
            refused = await eve.request({"type": "chat.claim", "chat_id": queued["chat_id"]})
            assert refused["code"] == "forbidden" and "limit" in refused["message"]
            await ann.ok({"type": "chat.claim", "chat_id": queued["chat_id"]})
            await ann.ok({"type": "chat.close", "chat_id": queued["chat_id"]})
        await eve.ok({"type": "chat.close", "chat_id": chat_id})


async def test_claiming_from_a_queue_you_do_not_monitor_is_forbidden(system: LocalSystem):
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    bob = await operator(system.gateway_url, "demo-hill-bob", [])
    pat = await patron(system.gateway_url, "hill")
    async with clients(ann, bob, pat):
        chat_id = (await pat.ok({"type": "chat.start", "question": "Hi"}))["chat_id"]
        refused = await bob.request({"type": "chat.claim", "chat_id": chat_id})
        assert refused["code"] == "forbidden"
        claim = await ann.ok({"type": "chat.claim", "chat_id": chat_id})
        assert claim["chat"]["owner"] == "demo-hill-ann"
        await ann.ok({"type": "chat.close", "chat_id": chat_id})


async def test_internal_messages_reach_colleagues_and_are_kept(system: LocalSystem):
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    bob = await operator(system.gateway_url, "demo-hill-bob", ["demo-hill"], status="internal")
    eve = await operator(system.gateway_url, "demo-hill-eve", [], status="away")
    cat = await operator(system.gateway_url, "demo-river-cat", ["demo-river"])
    async with clients(ann, bob, eve, cat):
        direct = await ann.ok(
            {"type": "internal.send", "to": {"operator": "demo-hill-bob"}, "body": "Lunch?"}
        )
        assert direct["conversation"] == "dm:demo-hill-ann:demo-hill-bob"
        got = await bob.expect("internal.message")
        assert got["body"] == "Lunch?" and got["from"]["name"] == "Ann"
        await ann.ok({"type": "internal.send", "to": {"queue": "demo-hill"}, "body": "Busy!"})
        assert (await bob.expect("internal.message"))["to"]["queue"] == "demo-hill"
        await bob.ok({"type": "internal.send", "to": {"all": True}, "body": "Fire drill at 3"})
        assert (await ann.expect("internal.message"))["body"] == "Fire drill at 3"
        # Away staff hear only what is sent to them, other libraries nothing. A message
        # sent after the others, through the same gateway, comes after anything they had:
        # its being the first each hears shows that nothing else reached them.
        await ann.ok(
            {"type": "internal.send", "to": {"operator": "demo-hill-eve"}, "body": "For Eve"}
        )
        assert (await eve.expect("internal.message"))["body"] == "For Eve"
        async with await signed_in(system.gateway_url, "demo-admin") as coordinator:
            sent = await coordinator.post("/api/announcements", json={"body": "Staff meeting"})
            assert sent.status_code == 202
        heard = await cat.expect(lambda f: f["type"] in ("internal.message", "announcement"))
        assert heard["type"] == "announcement"
        refused = await ann.request(
            {"type": "internal.send", "to": {"operator": "demo-river-cat"}, "body": "hi"}
        )
        assert refused["code"] == "not_found"
        bad = await ann.request(
            {"type": "internal.send", "to": {"all": True, "queue": "demo-hill"}, "body": "x"}
        )
        assert bad["code"] == "invalid"

        async with httpx.AsyncClient(base_url=system.gateway_url) as http:

            async def thread(who: str, conversation: str) -> httpx.Response:
                token = await login(system.gateway_url, who)
                return await http.get(
                    f"/api/internal/{conversation}",
                    headers={"Authorization": f"Bearer {token}"},
                )

            kept = await thread("demo-hill-bob", "dm:demo-hill-ann:demo-hill-bob")
            assert kept.status_code == 200
            assert [m["body"] for m in kept.json()["messages"]][-1] == "Lunch?"
            assert (
                await thread("demo-hill-eve", "dm:demo-hill-ann:demo-hill-bob")
            ).status_code == (404)
            everyone = await thread("demo-river-cat", "all")
            assert "Fire drill at 3" not in [m["body"] for m in everyone.json()["messages"]]


async def test_sign_in_elsewhere_keeps_the_operators_chats(system: LocalSystem, bus: Bus):
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    pat, chat_id, _ = await claimed_chat(system, ann)
    token = await login(system.gateway_url, "demo-hill-ann")
    other = await ProtocolClient.connect(system.gateway_url.replace("http", "ws") + "/ws/operator")
    async with clients(ann, other, pat):
        await other.ok({"type": "auth", "token": token})
        assert (await other.expect("session"))["chats"] == [chat_id]
        assert (await ann.expect("session.ended"))["reason"] == "signed_in_elsewhere"
        resumed = await other.expect(about(chat_id, "chat.resumed"))
        assert resumed["chat"]["owner"] == "demo-hill-ann"
        await other.ok({"type": "status.set", "status": "online"})
        await other.ok({"type": "message", "chat_id": chat_id, "body": "New tab, same me"})
        await nothing_due(bus, chat_id, "demo-hill-ann")
        await other.ok({"type": "chat.close", "chat_id": chat_id})
