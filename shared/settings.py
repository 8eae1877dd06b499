"""Settings common to every service; each service extends them with its own fields.

Every field is an environment variable `REFDESK_<FIELD>` with a default that works on one
machine, so `make run` needs no configuration at all.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.telemetry import Tracing

# Where the tickets service takes patrons' replies by SMTP when it listens (under `make
# run` and in production; the service's own default is not to listen).
INBOUND_SMTP_PORT = 2525


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REFDESK_", extra="ignore")

    nats_url: str = "nats://127.0.0.1:4222"
    # The CA of a NATS server with TLS (`tls://` URLs), if the system does not trust it.
    nats_ca_file: str | None = None
    mongodb_uri: str = "mongodb://127.0.0.1:27017"
    mongodb_db: str = "refdesk"
    # The consortium this deployment serves: the first part of every user and queue name.
    consortium: str = "demo"
    ops_host: str = "127.0.0.1"
    ops_port: int = 0
    log_level: str = "INFO"
    log_json: bool = True
    request_timeout_s: float = 2.0
    # A process whose event loop runs this late refuses new work as `busy` until it has
    # caught up (see shared/load.py).
    max_loop_lag_s: float = 0.1
    stream_replicas: int = 1
    # The chat stream keeps each record only as long as delivery and transcription need
    # it (and tags after close, follow-up tickets from a chat): transcripts keep the rest.
    stream_max_age_hours: int = 72
    # Traces: to an OTLP/HTTP collector, a folder of JSON lines, the console (all off).
    otel_endpoint: str | None = None
    otel_span_dir: str | None = None
    otel_console: bool = False

    def tracing(self) -> Tracing:
        return Tracing(self.otel_endpoint, self.otel_span_dir, self.otel_console)

    # Seconds added to the wall clock, so that a whole system can run as if at another
    # moment (tests of hours and holidays, demos). Zero in production.
    clock_shift_s: float = 0.0
    # How long a patron's chat waits for them to come back (routing's deadline), and so how
    # long the gateway lists a proactive chat in an idle page's widget status: one setting,
    # so that the two cannot disagree.
    patron_grace_s: float = 600.0
