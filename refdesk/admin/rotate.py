"""`refdesk-admin rotate jwt-secret`: a new key for the gateways' tokens, the old one kept
as REFDESK_JWT_PREVIOUS_SECRET so that tokens it signed stay good until they expire:
staff stay signed in, patrons' widgets keep their chats.

What it rotates: the HMAC key that signs staff and guest tokens (REFDESK_JWT_SECRET,
`refdesk-secrets/jwt-secret` in Kubernetes). It reads the current key from the
environment, makes a new one, and writes both as an env file (or prints them); whoever
runs it puts them in the gateways' Secret and restarts the gateways. Once the longest
token lifetime has passed (REFDESK_GUEST_TOKEN_TTL_S, REFDESK_OPERATOR_TOKEN_TTL_S) the
previous key is emptied and the gateways restarted again. NATS and MongoDB passwords are
rotated as docs/operations.md says: each side of those must change together.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from services.gateway.settings import MIN_SECRET, GatewaySettings


class Failed(Exception):
    """What went wrong, said for the person running the tool."""


def new_keys(settings: GatewaySettings) -> dict[str, str]:
    current = settings.jwt_secret
    if len(current) < MIN_SECRET:
        raise Failed(
            "REFDESK_JWT_SECRET must hold the key the gateways sign with now "
            f"({MIN_SECRET}+ characters): tokens it signed are honoured after the rotation"
        )
    return {
        "REFDESK_JWT_SECRET": secrets.token_urlsafe(48),
        "REFDESK_JWT_PREVIOUS_SECRET": current,
    }


def overlap_s(settings: GatewaySettings) -> int:
    """How long the previous key must stay: the longest token lifetime."""
    return max(settings.operator_token_ttl_s, settings.guest_token_ttl_s)


def write_env(path: Path, keys: dict[str, str]) -> None:
    """An env file only its owner reads (`kubectl create secret --from-env-file`)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.writelines(f"{name}={value}\n" for name, value in keys.items())


def steps(settings: GatewaySettings, where: str) -> str:
    hours = overlap_s(settings) / 3600
    return f"""New keys are in {where}. Next:
  1. Put both in the gateways' Secret (REFDESK_JWT_SECRET, REFDESK_JWT_PREVIOUS_SECRET; in
     Kubernetes refdesk-secrets jwt-secret and jwt-previous-secret) and restart the
     gateways (kubectl rollout restart deployment/gateway). Nobody is signed out.
  2. After {hours:g} h (the longest token lifetime), set the previous key empty and restart
     the gateways again: tokens signed with the old key are then refused."""
