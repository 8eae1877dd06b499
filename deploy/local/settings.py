"""The launcher's settings (`make run`): the same `REFDESK_*` variables the services read,
with the defaults of one machine, read once here."""

from __future__ import annotations

from pathlib import Path

from deploy.local.demo_data import DEFAULT_PASSWORD
from deploy.local.system import ROOT
from services.gateway.settings import GatewaySettings
from shared.settings import INBOUND_SMTP_PORT, CommonSettings


class LauncherSettings(CommonSettings):
    data_dir: Path = ROOT / ".data"
    nats_port: int = 4222
    mongodb_port: int = 27017
    port: int = GatewaySettings.model_fields["port"].default
    inbound_smtp_port: int = INBOUND_SMTP_PORT
    # None: the launcher starts the embedded MongoDB wire-protocol server.
    mongodb_uri: str | None = None  # type: ignore[assignment]
    demo_password: str = DEFAULT_PASSWORD
