"""The gateway never signs tokens with a secret anyone could know."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.gateway.auth import StaffClaims, Tokens
from services.gateway.settings import (
    DEV_SECRET,
    GatewaySettings,
    previous_secrets,
    signing_secret,
)
from shared.clock import FixedClock
from shared.errors import Refusal

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


def test_after_a_rotation_tokens_of_the_previous_key_are_honoured_new_ones_use_the_new():
    clock = FixedClock(datetime(2026, 11, 24, tzinfo=UTC))
    staff = StaffClaims(username="demo-hill-ann", institution="hill", role="operator", name="Ann")
    old, new = "o" * 40, "n" * 40
    before = Tokens(old, 3600, 3600, clock).issue_staff(staff, clock.now())
    rotated = Tokens(new, 3600, 3600, clock, previous=[old])
    assert rotated.staff(before).username == "demo-hill-ann"
    after = rotated.issue_staff(staff, clock.now())
    with pytest.raises(Refusal):
        Tokens(old, 3600, 3600, clock).staff(after)
    # Once the previous key is dropped its tokens end; a weak one is never honoured.
    with pytest.raises(Refusal):
        Tokens(new, 3600, 3600, clock).staff(before)
    settings = GatewaySettings(jwt_secret=new, jwt_previous_secret=DEV_SECRET)
    assert previous_secrets(settings) == []
    assert previous_secrets(GatewaySettings(jwt_secret=new, jwt_previous_secret=old)) == [old]
