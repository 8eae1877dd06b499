"""The gateway never signs tokens with a secret anyone could know."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.gateway.settings import DEV_SECRET, GatewaySettings, signing_secret

ROOT = Path(__file__).resolve().parents[2]
REAL = "x" * 40


def test_only_a_real_secret_signs_outside_a_development_run():
    assert signing_secret(GatewaySettings(jwt_secret=REAL)) == REAL
    for weak in ("", "short", DEV_SECRET):
        with pytest.raises(SystemExit, match="REFDESK_JWT_SECRET"):
            signing_secret(GatewaySettings(jwt_secret=weak))
    assert signing_secret(GatewaySettings(jwt_secret="", dev=True)) == DEV_SECRET
    assert signing_secret(GatewaySettings(jwt_secret=REAL, dev=True)) == REAL


def test_the_gateway_process_refuses_to_start_without_one():
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFDESK_")}
    env["PYTHONPATH"] = str(ROOT)
    # Nothing listens there: the refusal comes before any connection is tried.
    env["REFDESK_NATS_URL"] = "nats://127.0.0.1:9"
    done = subprocess.run(
        [sys.executable, "-m", "services.gateway"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "REFDESK_JWT_SECRET must be set" in done.stderr
