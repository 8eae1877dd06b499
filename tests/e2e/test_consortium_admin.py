"""Consortium administration through the REST API, on the session's system: staff accounts
made, used and disabled; institutions and their admins; the naming convention; scope that
never tells one library about another's records.

Accounts cannot be deleted (a disabled one keeps its name on transcripts), so each test
makes its own under a fresh name.
"""

from __future__ import annotations

import uuid
from urllib.parse import quote

import httpx
import pytest

from deploy.local.system import LocalSystem
from tests.client import (
    PASSWORD,
    about,
    account,
    claimed_chat,
    clients,
    fresh,
    login,
    operator,
    patron,
    signed_in,
)


async def test_a_library_admin_adds_an_operator_who_answers_then_disables_them(
    system: LocalSystem,
):
    base = system.gateway_url
    name = fresh("demo-hill-new")
    async with await signed_in(base, "demo-hill-admin") as admin:
        made = await admin.post("/api/users", json=account(name, "hill", max_chats=2))
        assert made.status_code == 201, made.text
        assert "password" not in made.text
        listed = [u["username"] for u in (await admin.get("/api/users")).json()]
        assert name in listed and "demo-river-cat" not in listed

        newt = await operator(base, name, ["demo-hill"], password=PASSWORD)
        token = await login(base, name, PASSWORD)
        pat = await patron(base, "hill")
        try:
            chat_id = (await pat.ok({"type": "chat.start", "question": "Maps?"}))["chat_id"]
            await newt.expect(about(chat_id, "queue.chat_added"))
            await newt.ok({"type": "chat.claim", "chat_id": chat_id})
            claimed = await pat.expect("chat.claimed")
            assert claimed["operator"] == "Newt"
            await newt.ok({"type": "message", "chat_id": chat_id, "body": "Third floor."})
            said = await pat.expect("message")
            assert said["body"] == "Third floor."
            await newt.ok({"type": "chat.close", "chat_id": chat_id})

            disabled = {**made.json(), "disabled": True}
            assert (await admin.put(f"/api/users/{name}", json=disabled)).status_code == 200
            ended = await newt.expect("session.ended", timeout=3.0)
            assert ended["reason"] == "account_disabled"
        finally:
            await pat.close()
            await newt.close()

        async with httpx.AsyncClient(base_url=base) as http:
            me = await http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 401
            again = await http.post(
                "/api/auth/login", json={"username": name, "password": PASSWORD}
            )
            assert again.status_code == 401 and "disabled" in again.json()["message"]


async def test_names_must_carry_their_own_consortium_and_institution(system: LocalSystem):
    async with await signed_in(system.gateway_url, "demo-hill-admin") as admin:
        squat = await admin.post(
            "/api/queues",
            json={"name": "demo-river-squat", "institution": "hill", "display_name": "Squat"},
        )
        assert squat.status_code == 422, squat.text
        assert "name" in squat.json()["message"] and "'demo-hill-<suffix>'" in squat.text
        assert (await admin.get("/api/queues/demo-river-squat")).status_code == 404

        cases = [
            (account("demo-river-squat", "hill"), "'demo-hill-<name>'"),
            (account("other-hill-squat", "hill"), "'demo-hill-<name>'"),
            (account("demo-hill", "hill"), "username"),
            (account("Demo-Hill-Squat", "hill"), "username"),
        ]
        for body, expected in cases:
            refused = await admin.post("/api/users", json=body)
            assert refused.status_code == 422 and expected in refused.text, refused.text
        users = {u["username"] for u in (await admin.get("/api/users")).json()}
        assert not users & {"demo-river-squat", "other-hill-squat"}


async def test_refusals_name_the_field_and_change_nothing(system: LocalSystem):
    name = fresh("demo-hill-rules")
    async with await signed_in(system.gateway_url, "demo-hill-admin") as admin:
        cases: list[tuple[dict, int, str]] = [
            (account(name, "hill", password="short-pw"), 422, "password"),
            (account(name, "hill", password="Librarian1234"), 422, "common"),
            (account(name, "hill", password=None), 422, "password"),
            (account(name, "hill", max_chats=0), 422, "max_chats"),
            (account(name, "hill", role="superuser"), 422, "role"),
            (account(name, "hill", role="institution_admin"), 403, "role"),
            # Another library does not exist for Hill's admin.
            (account(fresh("demo-river-x"), "river"), 404, "no institution river"),
        ]
        for body, status, field in cases:
            refused = await admin.post("/api/users", json=body)
            assert refused.status_code == status and field in refused.text, (body, refused.text)
        assert (await admin.get(f"/api/users/{name}")).status_code == 404


async def test_another_librarys_accounts_do_not_exist_for_an_institution_admin(
    system: LocalSystem,
):
    async with await signed_in(system.gateway_url, "demo-hill-admin") as admin:
        there = await admin.get("/api/users/demo-river-cat")
        nowhere = await admin.get("/api/users/demo-river-nobody")
        assert there.status_code == nowhere.status_code == 404
        assert there.json()["code"] == nowhere.json()["code"] == "not_found"
        cat = account("demo-river-cat", "river")
        assert (await admin.put("/api/users/demo-river-cat", json=cat)).status_code == 404
        password = await admin.put(
            "/api/users/demo-river-cat/password", json={"password": PASSWORD}
        )
        assert password.status_code == 404
    # Cat still signs in with her own password.
    await login(system.gateway_url, "demo-river-cat")


async def test_a_consortium_admin_adds_a_library_with_its_own_admin(system: LocalSystem):
    base = system.gateway_url
    lib = fresh("lake")
    async with await signed_in(base, "demo-admin") as coordinator:
        made = await coordinator.post(
            "/api/institutions",
            json={
                "name": lib,
                "institution": lib,
                "display_name": "Lake Library",
                "timezone": "America/Chicago",
            },
        )
        assert made.status_code == 201, made.text
        head = f"demo-{lib}-admin"
        appointed = await coordinator.post(
            "/api/users", json=account(head, lib, role="institution_admin")
        )
        assert appointed.status_code == 201, appointed.text

    token = await login(base, head, PASSWORD)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}
    ) as lake:
        queue = await lake.post(
            "/api/queues",
            json={"name": f"demo-{lib}", "institution": lib, "display_name": "Ask Lake"},
        )
        assert queue.status_code == 201, queue.text
        assert [i["name"] for i in (await lake.get("/api/institutions")).json()] == [lib]
        refused = await lake.post(
            "/api/institutions",
            json={"name": fresh("x"), "institution": "x", "display_name": "X", "timezone": "UTC"},
        )
        assert refused.status_code == 403


async def test_the_consortium_always_keeps_an_enabled_consortium_admin(system: LocalSystem):
    async with await signed_in(system.gateway_url, "demo-admin") as coordinator:
        me = (await coordinator.get("/api/users/demo-admin")).json()
        for change in ({"disabled": True}, {"role": "institution_admin", "institution": "hill"}):
            refused = await coordinator.put("/api/users/demo-admin", json={**me, **change})
            assert refused.status_code in (409, 422), refused.text
        assert (await coordinator.get("/api/users/demo-admin")).json() == me


async def test_operators_change_their_own_password_and_nobody_elses(system: LocalSystem):
    base = system.gateway_url
    name = fresh("demo-hill-pw")
    async with await signed_in(base, "demo-hill-admin") as admin:
        assert (await admin.post("/api/users", json=account(name, "hill"))).status_code == 201
    token = await login(base, name, PASSWORD)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}
    ) as own:
        bob = await own.put("/api/users/demo-hill-bob/password", json={"password": PASSWORD})
        assert bob.status_code == 403
        new = "a-longer-phrase-for-the-desk"
        changed = await own.put(f"/api/users/{name}/password", json={"password": new})
        assert changed.status_code == 204, changed.text
    await login(base, name, new)
    with pytest.raises(httpx.HTTPStatusError):
        await login(base, name, PASSWORD)
    await login(base, "demo-hill-bob")


async def test_snippets_are_kept_by_admins_and_inserted_by_name(system: LocalSystem):
    base = system.gateway_url
    tag = uuid.uuid4().hex[:6]
    hills = {"name": f"hill (renewals {tag})", "institution": "hill", "body": "Renew at /renew."}
    everyone = {"name": f"demo (hours {tag})", "institution": "demo", "body": "Open 8 to 8."}
    async with await signed_in(base, "demo-hill-admin") as admin:
        assert (await admin.post("/api/snippets", json=hills)).status_code == 201
        refusals = [
            ({**hills, "name": "renewals"}, 422, "name"),
            ({**hills, "name": f"river (renewals {tag})"}, 422, "'hill (<description>)'"),
            ({**hills, "institution": "river", "name": f"river (x {tag})"}, 404, "institution"),
            (everyone, 403, "consortium"),
        ]
        for body, status, words in refusals:
            refused = await admin.post("/api/snippets", json=body)
            assert refused.status_code == status and words in refused.text, refused.text
    async with await signed_in(base, "demo-admin") as coordinator:
        assert (await coordinator.post("/api/snippets", json=everyone)).status_code == 201
    try:
        async with await signed_in(base, "demo-river-cat") as cat:
            listed = {s["name"] for s in (await cat.get("/api/snippets")).json()}
            assert everyone["name"] in listed and hills["name"] not in listed
            assert (await cat.get(f"/api/snippets/{quote(hills['name'])}")).status_code == 404

        ann = await operator(base, "demo-hill-ann", ["demo-hill"])
        pat, chat_id, _ = await claimed_chat(system, ann)
        async with clients(ann, pat):
            for snippet in (hills, everyone):
                await ann.ok({"type": "message", "chat_id": chat_id, "snippet": snippet["name"]})
                assert (await pat.expect("message"))["body"] == snippet["body"]
            unknown = await ann.request(
                {"type": "message", "chat_id": chat_id, "snippet": f"river (x {tag})"}
            )
            assert (unknown["type"], unknown["code"]) == ("error", "not_found")
            both = await ann.request(
                {"type": "message", "chat_id": chat_id, "snippet": hills["name"], "body": "Hi"}
            )
            assert (both["type"], both["code"]) == ("error", "invalid")
            await ann.ok({"type": "chat.close", "chat_id": chat_id})
    finally:
        async with await signed_in(base, "demo-admin") as coordinator:
            for snippet in (hills, everyone):
                gone = await coordinator.delete(f"/api/snippets/{quote(snippet['name'])}")
                assert gone.status_code == 204


async def test_a_new_chat_limit_holds_from_the_next_claim(system: LocalSystem):
    base = system.gateway_url
    name = fresh("demo-hill-lim")
    async with await signed_in(base, "demo-hill-admin") as admin:
        made = await admin.post("/api/users", json=account(name, "hill", max_chats=3))
        assert made.status_code == 201, made.text
        newt = await operator(base, name, ["demo-hill"], password=PASSWORD)
        first, second = await patron(base, "hill"), await patron(base, "hill")
        async with clients(newt, first, second):
            chats = []
            for pat in (first, second):
                chats.append((await pat.ok({"type": "chat.start", "question": "Q?"}))["chat_id"])
                await newt.expect(about(chats[-1], "queue.chat_added"))
            limited = {**made.json(), "max_chats": 1}
            assert (await admin.put(f"/api/users/{name}", json=limited)).status_code == 200
            await newt.ok({"type": "chat.claim", "chat_id": chats[0]})
            refused = await newt.request({"type": "chat.claim", "chat_id": chats[1]})
            assert refused["type"] == "error" and "limit" in refused["message"], refused
            await newt.ok({"type": "chat.close", "chat_id": chats[0]})
            await second.ok({"type": "chat.end", "chat_id": chats[1]})


async def test_an_institution_that_could_not_be_a_subject_token_is_invalid(system: LocalSystem):
    async with await signed_in(system.gateway_url, "demo-admin") as coordinator:
        for bad in ("a.b", "*", ">", "hill river", "Hill"):
            for route in ("/api/stats", "/api/chats/missed"):
                params = {"institution": bad, "from": "2026-11-01T00:00:00Z"}
                params |= {"to": "2026-11-02T00:00:00Z", "since": "2026-11-01T00:00:00Z"}
                r = await coordinator.get(route, params=params)
                assert r.status_code == 422 and "institution" in r.text, (route, bad, r.text)
