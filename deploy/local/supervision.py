"""When to restart a crashed service in a local run, as Kubernetes would: at once the first
time, then with a back-off that doubles up to a ceiling, starting over once a service has
stayed up a while. Pure: the instant is always an argument."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RestartPolicy:
    first_s: float = 0.5
    max_s: float = 30.0
    # Up this long, a service that crashes again is on its first failure again.
    stable_s: float = 60.0

    def delay(self, failures: int) -> float:
        """How long to wait before the restart after the `failures`-th crash in a row."""
        return min(self.max_s, self.first_s * 2 ** max(0, failures - 1))


@dataclass
class Watch:
    """One supervised process: when it last started, its crashes in a row, and when it is
    due to start again (None while it runs)."""

    started_at: float
    failures: int = 0
    restart_at: float | None = None

    def crashed(self, now: float, policy: RestartPolicy) -> float:
        """Note a crash seen at `now`; returns the delay before the restart."""
        self.failures = 1 if now - self.started_at >= policy.stable_s else self.failures + 1
        delay = policy.delay(self.failures)
        self.restart_at = now + delay
        return delay

    def due(self, now: float) -> bool:
        return self.restart_at is not None and now >= self.restart_at

    def restarted(self, now: float) -> None:
        self.started_at = now
        self.restart_at = None
