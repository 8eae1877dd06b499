"""How much a client may send: frames a second (a token bucket), the size of a frame or a
message, and failed sign-ins a window."""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import Refusal


class TokenBucket:
    """Allows `rate` actions a second on average and bursts of up to `burst`."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def available(self, now: float) -> bool:
        """Whether an action would be allowed now, without spending anything."""
        self._refill(now)
        return self.tokens >= 1.0

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def check_frame_size(raw: str | bytes, limit: int) -> None:
    if len(raw.encode() if isinstance(raw, str) else raw) > limit:
        raise Refusal("too_large", f"frame is larger than {limit} bytes")


def check_body(body: str, limit: int) -> str:
    if len(body.encode()) > limit:
        raise Refusal("too_large", f"message body is larger than {limit} bytes")
    if not body.strip():
        raise Refusal("invalid", "body: cannot be blank")
    return body


@dataclass(frozen=True)
class SignInLimits:
    """Failed sign-ins allowed per window: for one name from one address (an honest
    mistake, or one guesser), for one address across names (spraying one password over
    many names), and for one name from anywhere (a guesser with many addresses). Only the
    last can shut out the real person, so it is far higher than the first."""

    per_name_and_address: int
    per_address: int
    per_name: int

    def blocked(self, pair: int, address: int, name: int) -> bool:
        """Whether the failures counted so far leave no room for another attempt."""
        return (
            pair >= self.per_name_and_address
            or address >= self.per_address
            or name >= self.per_name
        )

    def admits(self, pair: int, address: int, name: int) -> bool:
        """Whether an attempt may be checked, given the counts with it already added: an
        attempt takes its place before the directory checks it, so that however many
        arrive at once, at most the allowance are checked."""
        return not self.blocked(pair - 1, address - 1, name - 1)
