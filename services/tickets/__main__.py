"""Start the tickets service: `python -m services.tickets`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from services.tickets import domain, inbound
from services.tickets.handlers import TicketHandlers
from services.tickets.mail import Backoff, FolderTransport, MailSender, SmtpTransport, Transport
from services.tickets.retention import TicketRetention
from services.tickets.settings import TicketsSettings
from services.tickets.store import TicketStore
from shared import subjects
from shared.counters import Counters
from shared.runtime import Runtime, run_service
from shared.version import VERSION


def transport(settings: TicketsSettings) -> Transport:
    if settings.smtp_host:
        return SmtpTransport(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_security,
            settings.smtp_username,
            settings.smtp_password,
        )
    return FolderTransport(Path(settings.mail_outbox_dir))


@asynccontextmanager
async def start(runtime: Runtime) -> AsyncIterator[None]:
    settings = runtime.settings
    assert isinstance(settings, TicketsSettings)
    # Who may be assigned a ticket, and each library's name for its mail.
    view = await runtime.config_view()
    store = TicketStore(runtime.db)
    await store.ensure_indexes()
    acknowledgements = Counters(
        await runtime.bus.key_value(
            subjects.ACKNOWLEDGEMENTS_BUCKET,
            settings.stream_replicas,
            ttl=domain.ACKNOWLEDGEMENT_WINDOW.total_seconds(),
        )
    )
    handlers = TicketHandlers(
        runtime.bus,
        store,
        view,
        runtime.clock,
        settings.consortium,
        settings.mail_from,
        settings.mail_reply_to,
        acknowledgements,
        settings.acknowledgements_per_recipient,
    )
    backoff = Backoff(
        timedelta(seconds=settings.mail_retry_base_s),
        timedelta(seconds=settings.mail_retry_max_s),
        settings.mail_max_attempts,
    )
    mailer = MailSender(store, transport(settings), runtime.clock, handlers.mail_reported, backoff)
    handlers.mailer = mailer
    mailer.start()
    retention = TicketRetention(
        store,
        lambda: view.institutions,
        runtime.clock,
        every=timedelta(seconds=settings.retention_every_s),
    )
    retention.start()
    listening = None
    if settings.inbound_smtp_port:
        listening = await inbound.serve(
            handlers.patron_mail,
            settings.inbound_smtp_host,
            settings.inbound_smtp_port,
            settings.inbound_max_bytes,
        )
    await runtime.bus.serve("tickets", VERSION, handlers.endpoints())
    try:
        yield
    finally:
        if listening is not None:
            listening.close()
        await retention.stop()
        await mailer.stop()
        await view.stop()


if __name__ == "__main__":
    run_service("tickets", TicketsSettings(), start, chat_stream=False)
