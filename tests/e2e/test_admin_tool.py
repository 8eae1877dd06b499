"""`refdesk-admin` on systems of their own (their own nats-server and MongoDB server):
day one on a system with no demo data (settings left by an earlier release reconciled,
the first admin made and signed in), and a backup restored into an empty server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from nats.js.api import KeyValueConfig, StreamConfig

from deploy.local import demo_data
from deploy.local.system import ROOT, LocalSystem, Ports
from shared import store, subjects
from shared.bus import Bus
from tests.client import claimed_chat, login, operator, signed_in, transcript
from tests.conftest import E2E_ENV

ADMIN_PASSWORD = "a long first admin password"


@contextmanager
def own_system(data: Path) -> Iterator[LocalSystem]:
    """A system with its own nats-server and an empty MongoDB server, services not yet
    started."""
    system = LocalSystem(data=data, ports=Ports.free(), extra_env=dict(E2E_ENV))
    try:
        system.start_infra()
        yield system
    finally:
        system.stop()


def admin_tool(system: LocalSystem, *args: str) -> subprocess.CompletedProcess[str]:
    """`refdesk-admin` with the services' settings (NATS as the admin user)."""
    env = {**os.environ, **system.env(), "REFDESK_NATS_URL": system.nats_url or ""}
    return subprocess.run(
        [sys.executable, "-m", "refdesk.admin", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def earlier_release(system: LocalSystem) -> None:
    """Buckets, the chat stream and indexes as an earlier release with other settings
    left them: shorter TTLs, another history, other index options."""
    assert system.nats_url and system.mongodb_uri
    bus = await Bus.connect(system.nats_url, "tests")
    try:
        for bucket, ttl, history in (
            (subjects.REVOKED_BUCKET, 60.0, 1),
            (subjects.PRESENCE_BUCKET, 5.0, 1),
            (subjects.DESKS_BUCKET, None, 4),
            (subjects.ACKNOWLEDGEMENTS_BUCKET, 10.0, 1),
            (subjects.CONFIG_BUCKET, None, 3),
        ):
            await bus.js.create_key_value(
                KeyValueConfig(bucket=bucket, ttl=ttl, history=history, limit_marker_ttl=ttl)
            )
        await bus.js.add_stream(
            StreamConfig(
                name=subjects.CHAT_STREAM, subjects=[subjects.chat_events_all()], max_age=3600.0
            )
        )
    finally:
        await bus.close()
    client = store.connect(system.mongodb_uri, "tests")
    try:
        db = client["refdesk"]
        await db.guests.create_index("last_seen", expireAfterSeconds=100)
        await db.guests.create_index([("institution", 1), ("guest_id", 1)])
        await db.users.create_index("username")
        await db.chats.create_index("email_key")
    finally:
        await client.close()


async def settings_of(system: LocalSystem) -> dict[str, object]:
    assert system.nats_url and system.mongodb_uri
    bus = await Bus.connect(system.nats_url, "tests")
    try:
        revoked = (await bus.js.stream_info(subjects.kv_stream(subjects.REVOKED_BUCKET))).config
        desks = (await bus.js.stream_info(subjects.kv_stream(subjects.DESKS_BUCKET))).config
        chat = (await bus.js.stream_info(subjects.CHAT_STREAM)).config
    finally:
        await bus.close()
    client = store.connect(system.mongodb_uri, "tests")
    try:
        guests = await client["refdesk"].guests.index_information()
    finally:
        await client.close()
    return {
        "revoked_ttl": revoked.max_age,
        "revoked_markers": revoked.subject_delete_marker_ttl,
        "desks_history": desks.max_msgs_per_subject,
        "chat_max_age": chat.max_age,
        "guests_ttl": guests["last_seen_1"].get("expireAfterSeconds"),
        "guests_unique": guests["institution_1_guest_id_1"].get("unique", False),
    }


def test_day_one_reconciles_an_earlier_release_and_makes_the_first_admin(tmp_path: Path):
    with own_system(tmp_path / "fresh") as system:
        asyncio.run(earlier_release(system))
        before = admin_tool(system, "check")
        assert before.returncode == 1, before.stdout + before.stderr
        assert "KV_revoked_tokens: max_age is 60.0, should be 43200.0" in before.stdout
        assert "guests: index last_seen_1 should expire after 86400 s" in before.stdout

        system.start_services()  # every one ready: none crashed on what it found
        assert asyncio.run(settings_of(system)) == {
            "revoked_ttl": 43200.0,
            "revoked_markers": 43200.0,
            "desks_history": 1,
            "chat_max_age": 72 * 3600.0,
            "guests_ttl": 86400,
            "guests_unique": True,
        }
        after = admin_tool(system, "check")
        assert after.returncode == 0, after.stdout + after.stderr

        secret = tmp_path / "password"
        secret.write_text(ADMIN_PASSWORD + "\n")
        made = admin_tool(
            system, "bootstrap", "--username", "demo-root", "--password-file", str(secret)
        )
        assert made.returncode == 0, made.stderr
        assert "demo-root created" in made.stdout
        token = asyncio.run(login(system.gateway_url, "demo-root", ADMIN_PASSWORD))
        me = httpx.get(f"{system.gateway_url}/api/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.json()["role"] == "consortium_admin"

        again = admin_tool(
            system, "bootstrap", "--username", "demo-root", "--password-file", str(secret)
        )
        assert again.returncode == 0 and "nothing changed" in again.stdout
        other = admin_tool(
            system, "bootstrap", "--username", "demo-two", "--password-file", str(secret)
        )
        assert other.returncode == 1 and "already has consortium admins (demo-root)" in other.stderr


async def chat_to_keep(system: LocalSystem) -> dict[str, object]:
    """A chat answered and closed, and what the API says of it and of the statistics."""
    ann = await operator(system.gateway_url, "demo-hill-ann", ["demo-hill"])
    try:
        pat, chat_id, _ = await claimed_chat(system, ann, "Is the archive open?")
        await ann.ok({"type": "message", "chat_id": chat_id, "body": "Until five."})
        await ann.ok({"type": "chat.close", "chat_id": chat_id})
        await pat.close()
    finally:
        await ann.close()
    admin_token = await login(system.gateway_url, "demo-hill-admin")
    await transcript(system, admin_token, chat_id, messages=2)
    return await answers(system, chat_id)


# The statistics' span, the same before and after.
NOW = datetime.now(UTC)


async def answers(system: LocalSystem, chat_id: str) -> dict[str, object]:
    now = NOW
    span = {
        "from": (now - timedelta(days=1)).isoformat(),
        "to": (now + timedelta(days=1)).isoformat(),
    }
    async with await signed_in(system.gateway_url, "demo-hill-admin") as hill:
        return {
            "transcript": (await hill.get(f"/api/transcripts/{chat_id}")).json(),
            "search": (await hill.get("/api/transcripts")).json(),
            "stats": (await hill.get("/api/stats", params={**span, "group_by": "day"})).json(),
        }


async def demo(system: LocalSystem) -> None:
    assert system.mongodb_uri
    client = store.connect(system.mongodb_uri, "tests")
    try:
        await demo_data.load(client["refdesk"])
    finally:
        await client.close()


def test_a_backup_restored_into_an_empty_server_answers_the_same(tmp_path: Path):
    archive = tmp_path / "refdesk.tar.gz"
    with own_system(tmp_path / "before") as system:
        asyncio.run(demo(system))
        system.start_services()
        kept = asyncio.run(chat_to_keep(system))
        chat_id = kept["transcript"]["chat"]["id"]  # type: ignore[index]
        saved = admin_tool(system, "backup", "--archive", str(archive))
        assert saved.returncode == 0, saved.stderr

    with own_system(tmp_path / "after") as system:
        restored = admin_tool(system, "restore", str(archive))
        assert restored.returncode == 0, restored.stderr
        again = admin_tool(system, "restore", str(archive))
        assert again.returncode == 1 and "not empty" in again.stderr
        system.start_services()
        assert asyncio.run(answers(system, chat_id)) == kept
        assert admin_tool(system, "check").returncode == 0
