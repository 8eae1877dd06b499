"""Mail to patrons: how a letter becomes a MIME message, where it goes (an SMTP server, or
an outbox folder when none is configured), and the sender that works through the durable
outbox with back-off, on the injected clock."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import message_from_string, policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Literal, Protocol

import aiosmtplib

from services.tickets import domain, metrics
from services.tickets.store import TicketStore
from shared.clock import Clock, until_or_woken
from shared.schemas.tickets import MailState
from shared.store import Document
from shared.tasks import cancel_and_wait

log = logging.getLogger(__name__)

MailReport = Callable[[Document, MailState, str | None], Awaitable[None]]


class Transport(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


@dataclass(frozen=True)
class SmtpTransport:
    host: str
    port: int
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    timeout_s: float = 20.0

    async def send(self, message: EmailMessage) -> None:
        await aiosmtplib.send(
            message,
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.security == "tls",
            start_tls=True if self.security == "starttls" else False,
            timeout=self.timeout_s,
        )


@dataclass(frozen=True)
class FolderTransport:
    """Mail written as `.eml` files, for a deployment with no SMTP server (`make run`)."""

    folder: Path

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._write, message)

    def _write(self, message: EmailMessage) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{uuid.uuid4().hex}.eml"
        partial = self.folder / f".{name}"
        partial.write_bytes(bytes(message))
        os.replace(partial, self.folder / name)  # readers never see half a mail


def mime(letter: domain.Letter, sender: str, reply_to: str | None, now: datetime) -> EmailMessage:
    """The MIME message of a letter. Header values are single lines (the ticket rules
    refuse control characters), and the standard library refuses any that is not."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = letter.to
    if reply_to:
        message["Reply-To"] = reply_to
    message["Subject"] = letter.subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain="refdesk")
    message.set_content(letter.body)
    return message


def outbox_document(
    institution: str, ticket_id: str, entry_id: str | None, message: EmailMessage, now: datetime
) -> Document:
    return {
        "_id": f"{ticket_id}:{entry_id or 'ack'}",
        "institution": institution,
        "ticket_id": ticket_id,
        "entry_id": entry_id,
        "message": bytes(message).decode(),
        "state": "queued",
        "attempts": 0,
        "next_ms": int(now.timestamp() * 1000),
        "error": None,
    }


@dataclass(frozen=True)
class Backoff:
    base: timedelta
    most: timedelta
    attempts: int


class MailSender:
    """Sends what is due in the outbox, one mail at a time; a failure is retried later
    (doubling waits) and reported to the ticket; after `attempts` it is `failed`. Wakes
    when told a mail was queued, or when the next retry is due by its clock."""

    def __init__(
        self,
        store: TicketStore,
        transport: Transport,
        clock: Clock,
        report: MailReport,
        backoff: Backoff,
        poll: timedelta = timedelta(seconds=30),
        lease: timedelta = timedelta(minutes=2),
    ) -> None:
        self.store = store
        self.transport = transport
        self.clock = clock
        self.report = report
        self.backoff = backoff
        self.poll = poll
        self.lease = lease
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    async def run_once(self) -> int:
        """Send every mail due now; returns how many were tried."""
        tried = 0
        lease_ms = int(self.lease.total_seconds() * 1000)
        while (mail := await self.store.claim_due(self.clock.now(), lease_ms)) is not None:
            tried += 1
            await self._attempt(mail)
        metrics.MAIL_WAITING.set(await self.store.waiting_mail())
        return tried

    async def _attempt(self, mail: Document) -> None:
        message = message_from_string(mail["message"], policy=policy.default)
        assert isinstance(message, EmailMessage)
        try:
            await self.transport.send(message)
        except Exception as error:
            attempts = int(mail["attempts"]) + 1
            reason = f"{type(error).__name__}: {error}"[:300]
            state: MailState = "failed" if attempts >= self.backoff.attempts else "retrying"
            wait = domain.retry_after(attempts, self.backoff.base, self.backoff.most)
            next_ms = int((self.clock.now() + wait).timestamp() * 1000)
            await self.store.mail_done(
                mail["_id"],
                {"state": state, "attempts": attempts, "error": reason, "next_ms": next_ms},
            )
            metrics.MAIL_FAILURES.labels(state).inc()
            log.warning("mail %s not sent (%s); attempt %d", mail["_id"], state, attempts)
            await self.report(mail, state, reason)
            return
        await self.store.mail_done(mail["_id"], {"state": "sent", "error": None})
        metrics.MAIL_SENT.inc()
        await self.report(mail, "sent", None)

    def start(self) -> None:
        async def forever() -> None:
            while True:
                self._wake.clear()
                try:
                    await self.run_once()
                except Exception:
                    log.exception("sending mail failed; trying again shortly")
                await self._sleep()

        self._task = asyncio.create_task(forever())

    async def _sleep(self) -> None:
        now = self.clock.now()
        wake_at = now + self.poll
        due_ms = await self.store.next_due_ms()
        if due_ms is not None:
            wake_at = min(wake_at, datetime.fromtimestamp(due_ms / 1000, tz=now.tzinfo))
        await until_or_woken(self.clock, wake_at, self._wake)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
