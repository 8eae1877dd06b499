"""The inbound SMTP endpoint: a patron's answer by email is threaded back into its ticket,
found by the `[T...]` reference in the subject. The deployment's mail system forwards the
reply address (`REFDESK_MAIL_REPLY_TO`) here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from email import errors, message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.smtp import SMTP, Envelope, Session

from services.tickets import domain, metrics
from shared.errors import Refusal

log = logging.getLogger(__name__)

# (reference, sender's address, text) -> stored, or a refusal.
Deliver = Callable[[str, str, str], Awaitable[None]]

# One answer for a reference no ticket has, for mail not from the ticket's address and
# for a `From` that is not one address: the port does not tell which references exist.
NOT_ACCEPTED = "550 5.7.1 Not accepted: no ticket with this reference takes mail from you"
# A ticket changing as the mail came (another answer at once): the sender tries again.
TRY_AGAIN = "451 4.3.0 Not accepted now; try again later"


def from_addresses(message: EmailMessage) -> list[str]:
    """Every address of every `From` header, as the patron's mail program wrote them."""
    try:
        return [a.addr_spec for h in message.get_all("from", []) for a in h.addresses]
    except (ValueError, errors.MessageError):
        return []


def plain_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        return ""
    content = part.get_content()
    return content if isinstance(content, str) else ""


class PatronMail:
    """aiosmtpd's handler: every accepted mail is stored before the server says 250, so
    a sender's retry after a failure here is what keeps it from being lost."""

    def __init__(self, deliver: Deliver) -> None:
        self.deliver = deliver

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        data = raw if isinstance(raw, bytes) else str(raw).encode()
        message = message_from_bytes(data, policy=policy.default)
        assert isinstance(message, EmailMessage)
        ref = domain.find_ref(str(message.get("subject", "")))
        if ref is None:
            metrics.INBOUND_MAIL.labels("no_reference").inc()
            return "550 5.1.1 No ticket reference in the subject"
        text = domain.fresh_text(plain_text(message))
        try:
            await self.deliver(ref, domain.patron_sender(from_addresses(message)), text)
        except Refusal as refusal:
            metrics.INBOUND_MAIL.labels(refusal.code).inc()
            return NOT_ACCEPTED if refusal.code in ("not_found", "forbidden") else TRY_AGAIN
        metrics.INBOUND_MAIL.labels("threaded").inc()
        return "250 2.0.0 Added to your question"


async def serve(deliver: Deliver, host: str, port: int, max_bytes: int) -> asyncio.Server:
    """Listen for patrons' mail on (host, port); close the returned server to stop."""
    handler = PatronMail(deliver)
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SMTP(handler, data_size_limit=max_bytes, hostname="refdesk"), host, port
    )
