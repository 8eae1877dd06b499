"""Signed tokens (JWT): short-lived for staff, per-widget for guests."""

from __future__ import annotations

import uuid
from collections.abc import Container, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import jwt

from shared.clock import Clock
from shared.errors import Refusal

ALGORITHM = "HS256"


@dataclass(frozen=True)
class StaffClaims:
    username: str
    institution: str
    role: str
    name: str
    # When the token stops working (an operator socket ends then), and its id, by which
    # signing out revokes it before then.
    expires: datetime | None = None
    token_id: str | None = None
    # The account's token generation when it was signed: honoured only while the account
    # has not moved past it (a new password, disabled since).
    generation: int = 0


@dataclass(frozen=True)
class GuestClaims:
    guest_id: str
    widget: str


class Tokens:
    def __init__(
        self,
        secret: str,
        staff_ttl_s: int,
        guest_ttl_s: int,
        clock: Clock,
        revoked: Container[str] = frozenset(),
        previous: Sequence[str] = (),
    ) -> None:
        self.secret = secret
        # Keys rotated out (`refdesk-admin rotate`): tokens they signed are still honoured
        # until they expire, so rotating the key signs nobody out; new ones use `secret`.
        self.keys = [secret, *(p for p in previous if p and p != secret)]
        self.revoked = revoked
        self.clock = clock
        self.staff_ttl = timedelta(seconds=staff_ttl_s)
        self.guest_ttl = timedelta(seconds=guest_ttl_s)

    def _encode(
        self,
        claims: dict[str, object],
        kind: Literal["staff", "guest"],
        now: datetime,
        ttl: timedelta,
    ) -> str:
        payload = {**claims, "kind": kind, "iat": now, "exp": now + ttl}
        return jwt.encode(payload, self.secret, algorithm=ALGORITHM)

    def _verified(self, token: str) -> dict[str, object]:
        """The token's claims, if one of the keys signed it."""
        for key in self.keys:
            try:
                payload: dict[str, object] = jwt.decode(
                    token,
                    key,
                    algorithms=[ALGORITHM],
                    options={"require": ["exp", "kind"], "verify_exp": False, "verify_iat": False},
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.InvalidTokenError as exc:
                raise Refusal("unauthorized", "invalid token") from exc
            return payload
        raise Refusal("unauthorized", "invalid token")

    def _decode(self, token: str, kind: str) -> dict[str, object]:
        # Expiry is checked against the service's clock, not the library's: a system run
        # shifted in time (tests, demos) must agree with itself about when a token ends.
        payload = self._verified(token)
        exp = payload.get("exp")
        if not isinstance(exp, int | float) or datetime.fromtimestamp(exp, UTC) <= self.clock.now():
            raise Refusal("unauthorized", "token expired; sign in again")
        if payload.get("kind") != kind:
            raise Refusal("unauthorized", "wrong kind of token")
        return payload

    def issue_staff(self, claims: StaffClaims, now: datetime) -> str:
        return self._encode(
            {
                "sub": claims.username,
                "inst": claims.institution,
                "role": claims.role,
                "name": claims.name,
                "jti": uuid.uuid4().hex,
                "gen": claims.generation,
            },
            "staff",
            now,
            self.staff_ttl,
        )

    def staff(self, token: str) -> StaffClaims:
        p = self._decode(token, "staff")
        expires = datetime.fromtimestamp(float(str(p["exp"])), UTC)
        token_id = str(p["jti"]) if "jti" in p else None
        if token_id is not None and token_id in self.revoked:
            raise Refusal("unauthorized", "signed out; sign in again")
        generation = p.get("gen", 0)
        if not isinstance(generation, int) or isinstance(generation, bool):
            raise Refusal("unauthorized", "invalid token")
        return StaffClaims(
            str(p["sub"]),
            str(p["inst"]),
            str(p["role"]),
            str(p["name"]),
            expires,
            token_id,
            generation,
        )

    def issue_guest(self, claims: GuestClaims, now: datetime) -> str:
        return self._encode(
            {"sub": claims.guest_id, "wid": claims.widget}, "guest", now, self.guest_ttl
        )

    def guest(self, token: str) -> GuestClaims:
        p = self._decode(token, "guest")
        return GuestClaims(str(p["sub"]), str(p["wid"]))
