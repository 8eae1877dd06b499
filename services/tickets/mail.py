"""Mail to patrons: how a letter becomes the bytes of a mail, where it goes (an SMTP server,
or an outbox folder when none is configured), and the sender that works through the
durable outbox with back-off, on the injected clock.

No input becomes a header or a recipient, whatever the Python version: header values are
written here, each one line of text (`domain.header_text`) encoded so that what looks
like an encoded word stays text (the standard library's header folding decodes encoded
words into line breaks in some versions: CVE-2024-6923); the built mail is read back with
a strict policy and must have exactly a letter's headers, its `From` the sender and its
`To` the recipient; and the envelope (`MAIL FROM`, the one `RCPT TO`) is the code's,
never read from headers. A queued mail is checked again before it is sent."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import errors, policy
from email.header import Header
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path
from typing import Literal, Protocol

import aiosmtplib

from services.tickets import domain, metrics
from services.tickets.store import TicketStore
from shared.clock import Clock
from shared.periodic import Periodic
from shared.schemas.tickets import MailState
from shared.store import Document

log = logging.getLogger(__name__)

MailReport = Callable[[Document, MailState, str | None], Awaitable[None]]

# How mail is written and read back: CRLF line ends, every part 7-bit (so no server needs
# 8BITMIME or SMTPUTF8), lines folded at 78, and any defect in what is read an error.
STRICT = policy.SMTP.clone(raise_on_defect=True, cte_type="7bit", max_line_length=78)
CRLF = "\r\n"
# How an SMTP client (aiosmtplib) ends lines: the check reads a mail as a server will.
_LINE_ENDS = re.compile(rb"\r\n|\n|\r(?!\n)")


class MailRefused(ValueError):
    """A mail this service will not send: built or stored, it is not a letter."""


@dataclass(frozen=True)
class Outgoing:
    """A mail as it is sent: the envelope is the code's (`sender`, the one `recipient`)."""

    sender: str
    recipient: str
    data: bytes


def _text_value(text: str, name: str) -> str:
    """One line of text as a header value: as it is when it is plain ASCII with nothing a
    reader would decode, otherwise UTF-8 encoded words (so an encoded word someone typed
    is shown as they typed it); folded with CRLF."""
    charset = "us-ascii" if text.isascii() and "=?" not in text else "utf-8"
    return Header(text, charset, header_name=name).encode(linesep=CRLF)


@dataclass(frozen=True)
class Mailbox:
    """The service's own address (`From`, `Reply-To`): a display name and an address."""

    name: str
    address: str

    @classmethod
    def parse(cls, text: str) -> Mailbox:
        """From the configuration (`Ask a Librarian <refdesk@localhost>`), read strictly:
        one address, in ASCII; ValueError otherwise."""
        try:
            header = STRICT.header_factory("from", text)
            found = header.addresses
        except (ValueError, errors.MessageError):
            raise ValueError(f"not a mail address: {text!r}") from None
        if header.defects or len(found) != 1 or not found[0].username or not found[0].domain:
            raise ValueError(f"not one mail address: {text!r}")
        address = found[0].addr_spec
        if not address.isascii() or "=?" in address:
            raise ValueError(f"not a mail address in ASCII: {text!r}")
        return cls(domain.header_text(found[0].display_name), address)

    def value(self) -> str:
        if not self.name:
            return self.address
        if self.name.isascii() and "=?" not in self.name:
            return formataddr((self.name, self.address))  # quoted when it must be
        return f"{_text_value(self.name, 'From')} <{self.address}>"


def mime(
    letter: domain.Letter, sender: Mailbox, reply_to: Mailbox | None, now: datetime
) -> Outgoing:
    """The mail of a letter, checked (`check`). A Refusal when the ticket's address is
    not one mail can be sent to; any subject makes a mail."""
    recipient = domain.mail_address(letter.to)
    subject = domain.header_text(letter.subject)
    headers = [("From", sender.value()), ("To", recipient)]
    if reply_to is not None:
        headers.append(("Reply-To", reply_to.value()))
    headers += [
        ("Subject", _text_value(subject, "Subject")),
        ("Date", format_datetime(now)),
        ("Message-ID", make_msgid(domain="refdesk")),
    ]
    content = EmailMessage(policy=STRICT)
    content.set_content(letter.body)  # MIME-Version, Content-Type, Content-Transfer-Encoding
    head = "".join(f"{name}: {value}{CRLF}" for name, value in headers).encode("ascii")
    outgoing = Outgoing(sender.address, recipient, head + content.as_bytes())
    check(outgoing, subject)
    return outgoing


def _read(data: bytes) -> EmailMessage:
    parsed = BytesParser(policy=STRICT).parsebytes(data)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _addresses(message: EmailMessage, name: str) -> list[str]:
    return [a.addr_spec for header in message.get_all(name, []) for a in header.addresses]


def check(outgoing: Outgoing, subject: str | None = None) -> None:
    """MailRefused unless the mail is a letter as a server and a reader will see it:
    exactly a letter's headers, each line printable ASCII (`domain.header_fault`); read
    with the strict policy, no defect, `From` the envelope's sender alone and `To` its
    recipient alone; and the subject, if given, read back as it was meant."""
    head, blank, _ = outgoing.data.partition(b"\r\n\r\n")
    fault = domain.header_fault(head + b"\r\n") if blank else "no header block"
    if fault is None:
        try:
            parsed = _read(outgoing.data)
            fault = domain.addresses_fault(
                _addresses(parsed, "from"),
                _addresses(parsed, "to"),
                outgoing.sender,
                outgoing.recipient,
            )
            if any(parsed[name].defects for name in parsed.keys()):
                fault = fault or "a header has defects"
            if subject is not None and str(parsed["subject"]) != subject:
                fault = fault or "the subject does not read back as written"
        except (ValueError, errors.MessageError) as error:
            fault = f"unreadable: {error}"
    if fault is not None:
        raise MailRefused(fault)


def stored(mail: Document) -> Outgoing:
    """A queued mail as it will be sent, checked again (`check`). One queued before the
    envelope was stored with it has the sender and recipient of its own `From` and `To`,
    and goes only if it passes the same check."""
    data = _LINE_ENDS.sub(b"\r\n", str(mail["message"]).encode("utf-8", "surrogateescape"))
    sender, recipient = mail.get("sender"), mail.get("recipient")
    if sender is None or recipient is None:
        try:
            parsed = _read(data)
            senders, recipients = _addresses(parsed, "from"), _addresses(parsed, "to")
        except (ValueError, errors.MessageError) as error:
            raise MailRefused(f"unreadable: {error}") from None
        if len(senders) != 1 or len(recipients) != 1:
            raise MailRefused("not one sender and one recipient")
        sender, recipient = senders[0], recipients[0]
    outgoing = Outgoing(str(sender), str(recipient), data)
    check(outgoing)
    return outgoing


class Transport(Protocol):
    async def send(self, mail: Outgoing) -> None: ...


@dataclass(frozen=True)
class SmtpTransport:
    host: str
    port: int
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    timeout_s: float = 20.0

    async def send(self, mail: Outgoing) -> None:
        # The envelope is given: nothing is read from the mail's headers.
        await aiosmtplib.send(
            mail.data,
            sender=mail.sender,
            recipients=[mail.recipient],
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

    async def send(self, mail: Outgoing) -> None:
        await asyncio.to_thread(self._write, mail.data)

    def _write(self, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{uuid.uuid4().hex}.eml"
        partial = self.folder / f".{name}"
        partial.write_bytes(data)
        os.replace(partial, self.folder / name)  # readers never see half a mail


def outbox_document(
    institution: str, ticket_id: str, entry_id: str | None, mail: Outgoing, now: datetime
) -> Document:
    return {
        "_id": f"{ticket_id}:{entry_id or 'ack'}",
        "institution": institution,
        "ticket_id": ticket_id,
        "entry_id": entry_id,
        "message": mail.data.decode("ascii"),
        "sender": mail.sender,
        "recipient": mail.recipient,
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


@dataclass(eq=False)
class MailSender:
    """Sends what is due in the outbox, one mail at a time; a failure is retried later
    (doubling waits) and reported to the ticket; after `attempts` it is `failed`. Wakes
    when told a mail was queued, or when the next retry is due by its clock."""

    store: TicketStore
    transport: Transport
    clock: Clock
    report: MailReport
    backoff: Backoff
    poll: timedelta = timedelta(seconds=30)
    lease: timedelta = timedelta(minutes=2)

    def __post_init__(self) -> None:
        self._runs = Periodic("sending mail", self.clock, self.poll, self.run_once, self._next_due)

    def wake(self) -> None:
        self._runs.wake()

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
        try:
            outgoing = stored(mail)
        except MailRefused as refused:
            log.warning("mail %s refused: %s", mail["_id"], refused)
            await self._failed(mail, f"not sent: {refused}"[:300], final=True)
            return
        try:
            await self.transport.send(outgoing)
        except Exception as error:
            await self._failed(mail, f"{type(error).__name__}: {error}"[:300], final=False)
            return
        await self.store.mail_done(mail["_id"], {"state": "sent", "error": None})
        metrics.MAIL_SENT.inc()
        await self.report(mail, "sent", None)

    async def _failed(self, mail: Document, reason: str, final: bool) -> None:
        """Tried later (doubling waits), or given up on after the last attempt or at once
        (`final`: a mail that is not a letter is never sent)."""
        attempts = int(mail["attempts"]) + 1
        state: MailState = "failed" if final or attempts >= self.backoff.attempts else "retrying"
        wait = domain.retry_after(attempts, self.backoff.base, self.backoff.most)
        next_ms = int((self.clock.now() + wait).timestamp() * 1000)
        await self.store.mail_done(
            mail["_id"],
            {"state": state, "attempts": attempts, "error": reason, "next_ms": next_ms},
        )
        metrics.MAIL_FAILURES.labels(state).inc()
        log.warning("mail %s not sent (%s); attempt %d", mail["_id"], state, attempts)
        await self.report(mail, state, reason)

    async def _next_due(self) -> datetime | None:
        due_ms = await self.store.next_due_ms()
        return None if due_ms is None else datetime.fromtimestamp(due_ms / 1000, tz=UTC)

    def start(self) -> None:
        self._runs.start()

    async def stop(self) -> None:
        await self._runs.stop()
