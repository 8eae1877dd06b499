from typing import Literal

from shared.settings import CommonSettings


class TicketsSettings(CommonSettings):
    ops_port: int = 9104
    # Outgoing mail. With no SMTP host, mail is written to `mail_outbox_dir` instead, so
    # that a deployment without a mail server (`make run`) loses nothing.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: str | None = None
    mail_outbox_dir: str = ".data/outbox"
    mail_from: str = "Ask a Librarian <refdesk@localhost>"
    # Where patrons' replies go: an address the mail system forwards to the inbound port.
    mail_reply_to: str | None = None
    # Acknowledgements of offline messages mailed to one address within an hour of the
    # last one asked for (the tickets are made all the same; past it they go unanswered).
    acknowledgements_per_recipient: int = 3
    mail_retry_base_s: float = 30.0
    mail_retry_max_s: float = 3600.0
    mail_max_attempts: int = 10
    # Patrons' replies by email (0: not listening).
    inbound_smtp_host: str = "127.0.0.1"
    inbound_smtp_port: int = 0
    inbound_max_bytes: int = 1_000_000
    # How often the retention job deletes closed tickets past their library's retention.
    retention_every_s: float = 3600.0
