"""What this replica keeps for library pages that have no socket open: the invitations
waiting on each widget (every replica hears every proactive chat start, so any replica
can answer a page's status refresh), and each widget's allowance of page views."""

from __future__ import annotations

from collections import deque
from datetime import timedelta

from services.gateway import domain
from services.gateway.domain.idle_pages import MAX_LISTED
from shared.clock import Clock


class Invitations:
    """Proactive chats started lately, per widget, kept as long as routing keeps such a
    chat open for a patron who is not connected (its patron grace period): a page that
    refreshes in that time opens the widget, and its socket resumes the chat."""

    def __init__(self, clock: Clock, keep_s: float) -> None:
        self.clock = clock
        self.keep = timedelta(seconds=keep_s)
        self._by_widget: dict[str, deque[domain.Invitation]] = {}

    def add(self, widget: str, guest_id: str, chat_id: str) -> None:
        until = self.clock.now() + self.keep
        kept = self._by_widget.setdefault(widget, deque(maxlen=MAX_LISTED))
        kept.append(domain.Invitation(domain.invite_key(guest_id), chat_id, until))

    def listed(self, widget: str) -> list[str]:
        kept = self._by_widget.get(widget)
        if not kept:
            return []
        listed = domain.listed_invitations(kept, self.clock.now())
        if not listed:
            del self._by_widget[widget]  # all expired: the map holds only what is waiting
        return listed


class PageViewAllowance:
    """Page views a second each widget may report to this replica (a token bucket per
    widget, so one busy or abused site cannot use up another's)."""

    def __init__(self, clock: Clock, rate: float, burst: int) -> None:
        self.clock = clock
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, domain.TokenBucket] = {}

    def take(self, widget: str) -> bool:
        now = self.clock.monotonic()
        bucket = self._buckets.get(widget)
        if bucket is None:
            bucket = self._buckets[widget] = domain.TokenBucket(self.rate, self.burst, now)
        return bucket.take(now)
