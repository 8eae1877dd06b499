"""Transcripts over the real services: search by text and filters a page at a time, a
returning guest's earlier chats, and statistics; another institution finds nothing."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from deploy.local.system import LocalSystem
from tests.client import ProtocolClient, about, clients, eventually, operator, patron, signed_in


async def answered_chat(
    ann: ProtocolClient, pat: ProtocolClient, question: str, reply: str, tags: list[str]
) -> str:
    chat_id: str = (await pat.ok({"type": "chat.start", "question": question, "name": "Pat"}))[
        "chat_id"
    ]
    await ann.expect(about(chat_id, "queue.chat_added"))
    await ann.ok({"type": "chat.claim", "chat_id": chat_id})
    await ann.ok({"type": "message", "chat_id": chat_id, "body": reply})
    await ann.ok({"type": "chat.close", "chat_id": chat_id, "tags": tags})
    return chat_id


async def found(http: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await http.get("/api/transcripts", params=params)
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["chats"]]


@pytest.fixture(scope="module")
async def two_chats(system: LocalSystem) -> dict[str, Any]:
    """One guest's two chats with Ann today, with words and a tag no other test uses."""
    word, other = (f"zx{uuid.uuid4().hex[:8]}" for _ in range(2))
    tag = f"t-{word}"
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    pat = await patron(system.gateway_url, "hill")
    welcome = next(f for f in pat.frames if f["type"] == "welcome")
    async with clients(ann, pat):
        first = await answered_chat(
            ann, pat, f"Where is the {word} collection?", "On the third floor.", [tag]
        )
        second = await answered_chat(
            ann, pat, "And the printers?", f"Next to the {other} archive.", [tag, "printing"]
        )
    return {
        "word": word,
        "other": other,
        "tag": tag,
        "chats": [first, second],
        "guest": welcome["guest_id"],
    }


async def test_search_finds_chats_by_text_and_filters_and_pages(
    system: LocalSystem, two_chats: dict[str, Any]
):
    first, second = two_chats["chats"]
    word, tag = two_chats["word"], two_chats["tag"]
    async with await signed_in(system.gateway_url, "demo-hill-admin") as hill:

        async def both_indexed() -> list[str] | None:
            ids = await found(hill, tag=tag)
            return ids if len(ids) == 2 else None

        assert await eventually(both_indexed, "both chats in the transcripts") == [second, first]
        assert await found(hill, q=word) == [first]  # the question's text
        await eventually(
            lambda: _only(hill, second, q=two_chats["other"]), "the closed chat's messages indexed"
        )
        assert await found(hill, tag=tag, queue="demo-hill", operator="demo-hill-ann") == [
            second,
            first,
        ]
        assert await found(hill, tag=tag, state="missed") == []
        assert await found(hill, tag="printing", q="printers") == [second]
        today = datetime.now(UTC).replace(microsecond=0)
        window = {
            "from": (today - timedelta(hours=1)).isoformat(),
            "to": (today + timedelta(hours=1)).isoformat(),
        }
        assert await found(hill, tag=tag, **window) == [second, first]
        assert await found(hill, tag=tag, to=(today - timedelta(days=2)).isoformat()) == []
        # A page at a time, newest first; the cursor carries on the same query only.
        page = (await hill.get("/api/transcripts", params={"tag": tag, "limit": 1})).json()
        assert [c["id"] for c in page["chats"]] == [second] and page["next_cursor"]
        more = {"tag": tag, "limit": 1, "cursor": page["next_cursor"]}
        rest = (await hill.get("/api/transcripts", params=more)).json()
        assert [c["id"] for c in rest["chats"]] == [first] and rest["next_cursor"] is None
        for params, name in (
            ({"q": word, "cursor": page["next_cursor"]}, "cursor"),
            ({"cursor": "not-a-cursor"}, "cursor"),
            ({"colour": "red"}, "colour"),
            ({"from": "yesterday"}, "from"),
            ({"limit": 1000}, "limit"),
            ({"from": "2024-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
            ({"state": "lost"}, "state"),
        ):
            refused = await hill.get("/api/transcripts", params=params)
            assert refused.status_code == 422 and name in refused.text, (params, refused.text)
    async with await signed_in(system.gateway_url, "demo-river-cat") as river:
        for params in (
            {"q": word},
            {"tag": tag},
            {"operator": "demo-hill-ann", "tag": tag},
            {"home": "hill", "tag": tag},
        ):
            assert await found(river, **params) == [], params
        refused = await river.get("/api/transcripts", params={"institution": "hill"})
        assert refused.status_code == 403
    async with await signed_in(system.gateway_url, "demo-admin") as coordinator:
        assert await found(coordinator, tag=tag) == [second, first]
        assert await found(coordinator, tag=tag, institution="river") == []


async def _only(http: httpx.AsyncClient, chat_id: str, **params: Any) -> bool | None:
    return True if await found(http, **params) == [chat_id] else None


async def test_a_returning_guest_s_chats_of_today(system: LocalSystem, two_chats: dict[str, Any]):
    guest = two_chats["guest"]
    first, second = two_chats["chats"]
    async with await signed_in(system.gateway_url, "demo-hill-bob") as bob:

        async def history() -> list[str] | None:
            chats = (await bob.get(f"/api/guests/{guest}/chats")).json()["chats"]
            ids = [c["id"] for c in chats]
            return ids if ids == [second, first] else None

        await eventually(history, "the guest's two chats today")
        chats = (await bob.get(f"/api/guests/{guest}/chats")).json()["chats"]
        assert chats[0]["patron"]["name"] == "Pat" and chats[0]["owner"] == "demo-hill-ann"
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        assert (await bob.get(f"/api/guests/{guest}/chats", params={"since": later})).json() == {
            "chats": []
        }
        refused = await bob.get(f"/api/guests/{guest}/chats", params={"since": "soon"})
        assert refused.status_code == 422
    async with await signed_in(system.gateway_url, "demo-river-cat") as river:
        answer = await river.get(f"/api/guests/{guest}/chats")
        assert answer.status_code == 200 and answer.json() == {"chats": []}
    async with await signed_in(system.gateway_url, "demo-backup-dan") as backup:
        # The backup service answers for every library: it sees who is coming back.
        ids = [c["id"] for c in (await backup.get(f"/api/guests/{guest}/chats")).json()["chats"]]
        assert ids == [second, first]


async def test_statistics_by_group_csv_and_consortium_breakdown(
    system: LocalSystem, two_chats: dict[str, Any]
):
    tag = two_chats["tag"]
    now = datetime.now(UTC)
    span = {
        "from": (now - timedelta(days=1)).isoformat(),
        "to": (now + timedelta(days=1)).isoformat(),
    }
    async with await signed_in(system.gateway_url, "demo-hill-admin") as hill:
        by_tag = (await hill.get("/api/stats", params={**span, "group_by": "tag"})).json()
        ours = next(g for g in by_tag["groups"] if g["key"] == tag)
        assert ours["chats"] == 2 and ours["answered_at_home"] == 2 and ours["missed"] == 0
        assert ours["messages"] == 4  # each chat: the question and Ann's reply
        assert ours["wait_p50_s"] is not None and ours["duration_p50_s"] is not None
        assert by_tag["chats"] >= 2 and by_tag["institution"] == "hill"
        for group_by in ("day", "hour", "queue", "operator", "institution"):
            grouped = (await hill.get("/api/stats", params={**span, "group_by": group_by})).json()
            assert sum(g["chats"] for g in grouped["groups"]) >= 2, group_by
        day = (await hill.get("/api/stats", params={**span, "group_by": "day"})).json()
        assert sum(g["chats"] for g in day["groups"]) == day["chats"]
        sheet = await hill.get("/api/stats", params={**span, "group_by": "tag", "format": "csv"})
        assert sheet.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(sheet.text)))
        assert next(r for r in rows if r["key"] == tag)["chats"] == "2"
        assert rows[-1]["key"] == "total" and rows[-1]["chats"] == str(by_tag["chats"])
        for params, name in (
            ({**span, "group_by": "colour"}, "group_by"),
            ({**span, "format": "xls"}, "format"),
            ({**span, "since": "x"}, "since"),
            ({"from": "2024-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
        ):
            refused = await hill.get("/api/stats", params=params)
            assert refused.status_code == 422 and name in refused.text, (params, refused.text)
    async with await signed_in(system.gateway_url, "demo-river-cat") as river:
        theirs = (await river.get("/api/stats", params={**span, "group_by": "tag"})).json()
        assert all(g["key"] != tag for g in theirs["groups"])
    async with await signed_in(system.gateway_url, "demo-admin") as coordinator:
        whole = (await coordinator.get("/api/stats", params=span)).json()
        assert whole["institution"] is None
        names = [g["key"] for g in whole["institutions"]]
        assert "hill" in names
        assert sum(g["chats"] for g in whole["institutions"]) == whole["chats"]
        one = (await coordinator.get("/api/stats", params={**span, "institution": "hill"})).json()
        assert next(g for g in whole["institutions"] if g["key"] == "hill")["chats"] == one["chats"]
