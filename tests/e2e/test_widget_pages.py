"""The endpoints the widget loader calls from a library's pages, so that a page nobody
chats from holds no socket: the status (small, cacheable, revalidated by its ETag), the
page view (the guest staff may invite, within the library's scope; bad input refused,
storing nothing), and an invitation that reaches the guest through the status.

Runs on the session's system with the demo data."""

from __future__ import annotations

import json
from typing import Any

import httpx

from deploy.local.system import LocalSystem
from tests.client import about, clients, eventually, operator, patron, signed_in

EVIL = "https://evil.example"


async def view(
    http: httpx.AsyncClient, body: dict[str, Any] | bytes, widget: str = "hill"
) -> httpx.Response:
    """A page view as the loader sends it: JSON as text/plain (no preflight), from a page
    of the gateway's own origin (`page_client`)."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await http.post(
        f"/api/widgets/{widget}/views",
        content=content,
        headers={"Content-Type": "text/plain;charset=UTF-8"},
    )


def page_client(base: str) -> httpx.AsyncClient:
    """HTTP as a page on the gateway's own origin (an allowed one) calls it."""
    return httpx.AsyncClient(base_url=base, headers={"Origin": base})


async def guests_seen(base: str, username: str) -> dict[str, dict[str, Any]]:
    async with await signed_in(base, username) as staff:
        listed = (await staff.get("/api/guests", params={"limit": 200})).json()["guests"]
    return {g["guest_id"]: g for g in listed}


async def test_the_status_is_small_cacheable_and_revalidated_by_its_etag(system: LocalSystem):
    base = system.gateway_url
    async with httpx.AsyncClient(base_url=base) as http:
        first = await http.get("/api/widgets/hill/status", headers={"Origin": base})
        assert first.status_code == 200
        assert len(first.content) <= 1024, len(first.content)
        assert first.headers["cache-control"] == "public, max-age=5"
        assert first.headers["access-control-allow-origin"] == base
        assert "Origin" in first.headers["vary"]
        tag = first.headers["etag"]
        assert set(first.json()) == {"online", "queue", "reason", "live_socket", "invitations"}
        print(f"widget status: {len(first.content)} bytes, ETag {tag}")

        again = await http.get(
            "/api/widgets/hill/status", headers={"Origin": base, "If-None-Match": tag}
        )
        assert (again.status_code, again.content) == (304, b"")
        assert again.headers["etag"] == tag
        assert again.headers["cache-control"] == "public, max-age=5"
        stale = await http.get("/api/widgets/hill/status", headers={"If-None-Match": '"old"'})
        assert stale.status_code == 200 and stale.headers["etag"] == tag

        # Another widget's status is another body; another site's page is refused.
        river = await http.get("/api/widgets/river/status")
        assert river.headers["etag"] != tag or river.json() == first.json()
        refused = await http.get("/api/widgets/hill/status", headers={"Origin": EVIL})
        assert refused.status_code == 403 and "etag" not in refused.headers


async def test_a_page_view_shows_the_guest_to_their_library_only(system: LocalSystem):
    base = system.gateway_url
    async with page_client(base) as http:
        seen = await view(http, {"token": None, "page": f"{base}/catalogue/search"})
        assert seen.status_code == 200, seen.text
        assert seen.headers["cache-control"] == "no-store"
        answer = seen.json()
        assert set(answer) == {"token", "invite_key", "status"}
        assert set(answer["status"]) >= {"online", "live_socket", "invitations"}
        hill = await guests_seen(base, "demo-hill-ann")
        guest_id, guest = next(
            (g, s) for g, s in hill.items() if s["page"] == f"{base}/catalogue/search"
        )
        assert guest["widget"] == "hill"
        assert guest_id not in await guests_seen(base, "demo-river-cat")

        # The same browser again, on another page: the same guest, now there.
        back = await view(http, {"token": answer["token"], "page": f"{base}/hours"})
        assert back.json()["invite_key"] == answer["invite_key"]
        assert (await guests_seen(base, "demo-hill-ann"))[guest_id]["page"] == f"{base}/hours"
        # A hill token on river's widget is not river's guest: a new one there.
        other = await view(http, {"token": answer["token"], "page": f"{base}/"}, "river")
        assert other.json()["invite_key"] != answer["invite_key"]
        assert guest_id not in await guests_seen(base, "demo-river-cat")


async def test_a_bad_page_view_is_refused_and_changes_nothing(system: LocalSystem):
    base = system.gateway_url
    before = await guests_seen(base, "demo-hill-ann")
    async with page_client(base) as http:
        for body, field in (
            ({"page": "javascript:alert(1)"}, "page"),
            ({"page": f"{base}/" + "x" * 600}, "page"),
            ({"token": "t" * 3000}, "token"),
            ({"page": f"{base}/", "who": "me"}, "who"),
        ):
            refused = await view(http, body)
            assert refused.status_code == 422, (body, refused.text)
            assert refused.json()["code"] == "invalid" and field in refused.json()["fields"]
            assert "alert" not in refused.text and "xxxx" not in refused.text
        not_json = await view(http, b"{not json")
        assert (not_json.status_code, not_json.json()["code"]) == (422, "invalid")
        elsewhere = await http.post(
            "/api/widgets/hill/views", content=b"{}", headers={"Origin": EVIL}
        )
        assert (elsewhere.status_code, elsewhere.json()["code"]) == (403, "forbidden")
        unknown = await view(http, {}, "no-such-widget")
        assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    assert await guests_seen(base, "demo-hill-ann") == before


async def test_an_invitation_reaches_a_page_without_a_socket_through_the_status(
    system: LocalSystem,
):
    base = system.gateway_url
    ann = await operator(base, "demo-hill-ann", [])
    async with clients(ann), page_client(base) as http:
        viewed = (await view(http, {"page": f"{base}/reading-room"})).json()
        key, token = viewed["invite_key"], viewed["token"]
        assert not any(i.startswith(f"{key}.") for i in viewed["status"]["invitations"])
        guest_id = next(
            g
            for g, s in (await guests_seen(base, "demo-hill-ann")).items()
            if s["page"] == f"{base}/reading-room"
        )
        before = (await http.get("/api/widgets/hill/status")).headers["etag"]
        ack = await ann.ok(
            {"type": "chat.start_proactive", "guest_id": guest_id, "body": "Need a hand?"}
        )
        chat_id = ack["chat"]["id"]

        async def listed() -> str | None:
            status = await http.get("/api/widgets/hill/status")
            mine = [i for i in status.json()["invitations"] if i.startswith(f"{key}.")]
            return status.headers["etag"] if mine == [f"{key}.{chat_id[:8]}"] else None

        # The next refresh lists it (a new body, so a new ETag); the page opens the widget,
        # whose socket resumes the chat with the opening line.
        assert await eventually(listed, "the invitation in the status", timeout=2) != before
        pat = await patron(base, "hill", token)
        async with clients(pat):
            resumed = await pat.expect("chat.resumed")
            assert resumed["chat"]["id"] == chat_id
            assert [m["body"] for m in resumed["messages"]] == ["Need a hand?"]
            await pat.ok({"type": "message", "chat_id": chat_id, "body": "Yes please"})
            assert (await ann.expect(about(chat_id, "message")))["body"] == "Yes please"
            await ann.ok({"type": "chat.close", "chat_id": chat_id})
