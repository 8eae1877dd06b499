"""Deadline timers on the injected clock: a test moves the clock instead of waiting."""

from __future__ import annotations

import asyncio

from services.routing import domain
from services.routing.timers import JITTER_S, DeadlineTimers
from shared.clock import FixedClock
from shared.schemas.chat import ChatState
from tests.factories import ANN, T0, started

TIMING = domain.Timing(offer_timeout_s=120, owner_grace_s=60, patron_grace_s=600)


def offered() -> ChatState:
    assert ANN.id is not None
    claimed = domain.claim(started().state, ANN.id, ANN.name, ["demo-hill"], T0).state
    return domain.offer_transfer(
        claimed, ANN.id, ["demo-hill-bob"], T0, TIMING.offer_timeout_s, to_operator="demo-hill-bob"
    ).state


async def test_an_offer_expires_when_the_clock_reaches_its_deadline_and_not_before():
    clock = FixedClock(T0)
    states = {}
    fired: list[str] = []
    done = asyncio.Event()

    async def fire(_institution: str, chat_id: str) -> domain.Transition:
        fired.append(chat_id)
        transition = domain.due(states[chat_id], clock.now(), TIMING)
        states[chat_id] = transition.state
        timers.track(transition.state)
        done.set()
        return transition

    timers = DeadlineTimers(clock, TIMING, fire)
    state = offered()
    states[state.chat.id] = state
    timers.track(state)
    assert timers.armed == 1
    await clock.until_sleeping(1)

    clock.advance(TIMING.offer_timeout_s - 1)
    assert clock.sleeping == 1  # not woken: a timer armed for any earlier instant would be

    clock.advance(1 + JITTER_S)
    await asyncio.wait_for(done.wait(), 1)
    assert fired == [state.chat.id]
    after = states[state.chat.id]
    assert after.offer is None and after.chat.state == "active"  # back with its owner
    assert timers.armed == 0  # nothing left to wait for
    await timers.stop()


async def test_a_new_state_rearms_and_a_closed_chat_disarms():
    clock = FixedClock(T0)
    fired: list[str] = []

    async def fire(_institution: str, chat_id: str) -> domain.Transition:
        fired.append(chat_id)
        raise AssertionError("nothing should come due")

    timers = DeadlineTimers(clock, TIMING, fire)
    state = offered()
    timers.track(state)
    await clock.until_sleeping(1)
    assert ANN.id is not None
    # The owner writes: the offer is withdrawn, nothing is due any more.
    reclaimed = domain.post_message(state, ANN, "I'll keep it", T0).state
    timers.track(reclaimed)
    assert timers.armed == 0
    await timers.stop()  # the cancelled sleeper has finished
    assert clock.sleeping == 0
    clock.advance(TIMING.offer_timeout_s * 2)
    assert fired == []
