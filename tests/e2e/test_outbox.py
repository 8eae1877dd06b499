"""Mail to patrons in the local run's outbox folder (no mail server there) is its user's
alone, as the rest of the data directory is: the folder 0700, each mail 0600, whatever the
umask of the process that started the system (the tickets service runs with its own)."""

from __future__ import annotations

import stat
import uuid
from pathlib import Path

from deploy.local.system import LocalSystem
from tests.client import eventually, signed_in


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_mail_in_the_outbox_is_readable_by_its_user_alone(system: LocalSystem):
    email = f"pat-{uuid.uuid4().hex[:6]}@example.org"
    async with await signed_in(system.gateway_url, "demo-hill-ann") as ann:
        made = await ann.post(
            "/api/tickets",
            json={"email": email, "subject": "Renewals", "body": "Can I renew by mail?"},
        )
        assert made.status_code == 201, made.text
        ticket = made.json()
        sent = await ann.post(f"/api/tickets/{ticket['id']}/replies", json={"body": "Yes."})
        assert sent.status_code == 201, sent.text

    async def mailed() -> list[Path] | None:
        found = [p for p in system.outbox.glob("*.eml") if email in p.read_text()]
        return found or None

    mails = await eventually(mailed, f"the reply to {email} in the outbox")
    assert mode(system.outbox) == 0o700
    assert {p.name: mode(p) for p in mails} == {p.name: 0o600 for p in mails}
