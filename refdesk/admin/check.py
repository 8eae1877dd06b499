"""`refdesk-admin check`: is this deployment reachable and set up as its settings say?
NATS, MongoDB and the SMTP relay answer; the chat stream and every bucket have the
settings their owners apply; every index is there with its options. Each finding is one
line; any problem makes the exit status 1."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiosmtplib
from nats.js.errors import NotFoundError

from refdesk.admin import expected
from services.tickets.settings import TicketsSettings
from shared import indexes, store, stream_settings
from shared.bus import Bus
from shared.settings import CommonSettings

REACH_TIMEOUT_S = 10.0


async def _nats(settings: CommonSettings) -> tuple[Bus | None, list[str]]:
    try:
        bus = await asyncio.wait_for(
            Bus.connect(settings.nats_url, "admin", REACH_TIMEOUT_S, settings.nats_ca_file),
            REACH_TIMEOUT_S,
        )
    except Exception as exc:
        return None, [f"NATS: cannot connect ({type(exc).__name__}: {exc})"]
    return bus, []


async def stream_problems(bus: Bus) -> list[str]:
    found = []
    for name, wanted in expected.streams().items():
        try:
            info = await bus.js.stream_info(name)
        except NotFoundError:
            found.append(f"{name}: missing (its owner makes it at start)")
            continue
        found += stream_settings.differences(name, info.config, wanted)
    return found


async def mongodb_problems(settings: CommonSettings) -> list[str]:
    client = store.connect(settings.mongodb_uri, "admin")
    try:
        if not await store.ping(client):
            return [f"MongoDB: no answer from {settings.mongodb_uri.split('@')[-1]}"]
        db = store.database(client, settings.mongodb_db)
        steps = await indexes.drift(db, expected.wanted_indexes())
        return [f"MongoDB {settings.mongodb_db}: {s.describe()}" for s in steps]
    finally:
        await client.close()


async def smtp_problems(settings: TicketsSettings) -> list[str]:
    """The relay answers (and takes the credentials, if any); no relay is no problem: mail
    is then written to files (say so)."""
    if not settings.smtp_host:
        return []
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    smtp = aiosmtplib.SMTP(
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        use_tls=settings.smtp_security == "tls",
        start_tls=settings.smtp_security == "starttls",
        timeout=REACH_TIMEOUT_S,
    )
    try:
        async with smtp:
            if settings.smtp_username and settings.smtp_password:
                await smtp.login(settings.smtp_username, settings.smtp_password)
    except (aiosmtplib.SMTPException, OSError) as exc:
        return [f"SMTP {where}: {type(exc).__name__}: {exc}"]
    return []


async def check(settings: CommonSettings, say: Callable[[str], None]) -> list[str]:
    """Every problem found, each also said as it is found; ok lines are said too."""
    problems: list[str] = []

    async def part(what: str, found: Awaitable[list[str]]) -> None:
        lines = await found
        problems.extend(lines)
        for line in lines or [f"{what}: ok"]:
            say(line)

    bus, reached = await _nats(settings)
    await part("NATS", _done(reached))
    if bus is not None:
        try:
            await part("streams and buckets", stream_problems(bus))
        finally:
            await bus.close()
    await part("MongoDB and indexes", mongodb_problems(settings))
    tickets = TicketsSettings()
    if tickets.smtp_host:
        await part("SMTP", smtp_problems(tickets))
    else:
        say("SMTP: no relay set (REFDESK_SMTP_HOST): mail to patrons is written to files")
    return problems


async def _done(found: list[str]) -> list[str]:
    return found
