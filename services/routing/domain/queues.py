"""A queue's order and waits, and rollover to the next queue of the chain."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from services.routing.domain.state import Transition, _at, _evolve, _next
from shared.clock import iso
from shared.schemas.chat import (
    Chat,
    ChatState,
    SkippedQueue,
)
from shared.schemas.events import (
    ChatRolledOver,
    RolloverHeld,
)


def queue_order(waiting: list[Chat]) -> list[Chat]:
    """A queue's waiting chats in the order they should be answered: chats sent back by a
    disconnected owner first (they have waited already), then oldest first."""
    return sorted(
        waiting,
        key=lambda c: (c.requeued_at is None, c.requeued_at or c.created_at, c.created_at, c.id),
    )


def queue_position(waiting: list[Chat], chat_id: str) -> int:
    """1-based position of a chat among a queue's waiting chats; 0 if absent."""
    for index, chat in enumerate(queue_order(waiting), start=1):
        if chat.id == chat_id:
            return index
    return 0


def estimate_wait(recent_waits: list[float]) -> int | None:
    """Median of recent claim waits for the queue, in whole seconds; None without history."""
    if not recent_waits:
        return None
    ordered = sorted(recent_waits)
    return round(ordered[len(ordered) // 2])


def rollover_at(state: ChatState) -> datetime | None:
    """When a waiting chat is due to move on to the next queue of its chain, if ever."""
    if state.chat.state != "queued" or not state.rollover_after_s or state.queued_at is None:
        return None
    if not rollover_candidates(state):
        return None
    return _at(state.queued_at, state.rollover_after_s)


def rollover_due(state: ChatState, now: datetime) -> bool:
    due_at = rollover_at(state)
    return due_at is not None and now >= due_at


def rollover_candidates(state: ChatState, chain: Sequence[str] | None = None) -> list[str]:
    """The queues after the chat's current one in its chain (the one it started with, or
    `chain` as configured now), in the order they are tried."""
    chain = list(state.chain if chain is None else chain)
    if state.chat.queue not in chain:
        return []
    return chain[chain.index(state.chat.queue) + 1 :]


def _rechained(state: ChatState, chain: Sequence[str] | None) -> ChatState:
    return state if chain is None else state.model_copy(update={"chain": list(chain)})


def roll_over(
    state: ChatState,
    to_queue: str,
    to_institution: str,
    rollover_after_s: int | None,
    reason: str,
    skipped: list[SkippedQueue],
    now: datetime,
    chain: Sequence[str] | None = None,
) -> Transition:
    """The chat waited past its queue's rollover timeout: it moves to `to_queue`, where
    the timeout of that queue starts. Not due (claimed meanwhile, or already moved by
    another replica): nothing happens. `chain`: the chain as configured now, which the
    chat follows from here on."""
    if not rollover_due(state, now) or to_queue not in rollover_candidates(state, chain):
        return Transition(state)
    chat = state.chat
    ts = iso(now)
    moved = chat.model_copy(update={"queue": to_queue, "queue_institution": to_institution})
    n, stamp = _next(state, now)
    event = ChatRolledOver(
        **stamp,
        chat=moved,
        from_queue=chat.queue,
        queue=to_queue,
        reason=reason,
        skipped=skipped,
    )
    next_state = _rechained(_evolve(state, moved, events=n, queued_at=ts), chain)
    return Transition(next_state.model_copy(update={"rollover_after_s": rollover_after_s}), [event])


def hold_rollover(
    state: ChatState,
    reason: str,
    skipped: list[SkippedQueue],
    now: datetime,
    chain: Sequence[str] | None = None,
) -> Transition:
    """The rollover timeout passed, but no later queue can take the chat now: it stays,
    and the timeout starts again (so it is tried once more later, not at every tick).
    When `chain`, as configured now, has no queue after the chat's, it stays for good."""
    if not rollover_due(state, now):
        return Transition(state)
    ts = iso(now)
    n, stamp = _next(state, now)
    event = RolloverHeld(
        **stamp,
        chat=state.chat,
        queue=state.chat.queue,
        reason=reason,
        skipped=skipped,
    )
    return Transition(
        _rechained(_evolve(state, state.chat, events=n, queued_at=ts), chain), [event]
    )
