"""Claim arbitration under a race: N operators claim the same queued chat at once, through
two routing replicas, and exactly one may win.

    python -m bench.claim_race [--operators 50] [--rounds 200] [--replicas 2]

Starts its own nats-server, nx-27017 and routing replicas on free loopback ports. Each
round writes a fresh queued chat, fires every operator's claim at once and times each
request until its answer (the winner's ack or a loser's `conflict`). Prints p50/p99 of
the winner's latency, of all answers, and of the round (the last answer); then the
driver's own share: how long it takes to start sending all the claims (it prepares them
one after another, so the clock of an early claim runs while the others are prepared),
and the winner's latency counted from the last claim it started to send. The same
driver backs tests/integration/test_routing_race.py.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

from bench.report import percentile
from deploy.local.system import LocalSystem, Ports
from services.routing import domain
from shared import heap, subjects
from shared.bus import Bus
from shared.clock import SystemClock
from shared.errors import Refusal
from shared.schemas.chat import ChatState, Sender
from shared.schemas.events import ChatRecord
from shared.schemas.requests import AnswerOffer, ChatResult, ClaimChat, MessageResult, PostMessage

INSTITUTION = "race"
QUEUE = "race-q"


def operators(count: int) -> list[str]:
    return [f"race-op{i}" for i in range(count)]


async def seed_queued_chat(bus: Bus) -> ChatState:
    """A patron's chat waiting in the race queue, written as routing would write it."""
    transition = domain.start_chat(
        domain.NewChat(
            chat_id=uuid.uuid4().hex,
            institution=INSTITUTION,
            widget="race",
            queue=QUEUE,
            guest_id=uuid.uuid4().hex,
            question="Who gets this?",
            name=None,
            email=None,
            reason="staffed",
        ),
        SystemClock().now(),
    )
    await _append(bus, transition, 0)
    return transition.state


async def seed_offered_chat(bus: Bus, owner: str, targets: list[str]) -> ChatState:
    """A chat owned by `owner` with an open transfer offer to `targets`."""
    now = SystemClock().now()
    queued = await seed_queued_chat(bus)
    found = await bus.last_chat_record(queued.chat.id)
    assert found is not None
    claimed = domain.claim(queued, owner, owner, [QUEUE], now)
    after = await _append(bus, claimed, found[1])
    offered = domain.offer_transfer(
        claimed.state, owner, targets, now, 120.0, to_queue=QUEUE, note="race"
    )
    await _append(bus, offered, after)
    return offered.state


async def _append(bus: Bus, transition: domain.Transition, after: int) -> int:
    return await bus.append_chat_record(
        ChatRecord(state=transition.state, events=transition.events), after
    )


@dataclass(frozen=True)
class Answer:
    operator: str
    won: bool
    code: str | None
    owner: str | None
    seconds: float
    # When this request began to be sent (perf_counter): the driver prepares the claims one
    # after another on the same cores, and `seconds` of an early one includes the others'.
    started: float = 0.0


async def _timed(operator: str, call: Awaitable[object]) -> Answer:
    started = time.perf_counter()
    won, code, owner = True, None, None
    try:
        await call
    except Refusal as refusal:
        won, code, owner = False, refusal.code, refusal.owner
    return Answer(operator, won, code, owner, time.perf_counter() - started, started)


async def race_claims(bus: Bus, chat_id: str, names: list[str]) -> list[Answer]:
    """Every operator claims the chat at the same moment."""

    def claim(op: str) -> Awaitable[ChatResult]:
        request = ClaimChat(
            institution=INSTITUTION,
            chat_id=chat_id,
            operator=op,
            operator_name=op,
            monitoring=[QUEUE],
        )
        return bus.request(subjects.routing(INSTITUTION, "claim"), request, ChatResult, timeout=10)

    return list(await asyncio.gather(*(_timed(op, claim(op)) for op in names)))


async def race_accepts_and_reclaim(
    bus: Bus, chat_id: str, owner: str, targets: list[str], owner_first: bool = False
) -> list[Answer]:
    """Every target accepts the offer while its owner writes (which takes the chat back);
    `owner_first` sends the owner's message just ahead of the accepts instead of after."""

    def accept(op: str) -> Awaitable[ChatResult]:
        request = AnswerOffer(
            institution=INSTITUTION, chat_id=chat_id, operator=op, operator_name=op
        )
        return bus.request(subjects.routing(INSTITUTION, "accept"), request, ChatResult, timeout=10)

    write = bus.request(
        subjects.routing(INSTITUTION, "message"),
        PostMessage(
            institution=INSTITUTION,
            chat_id=chat_id,
            sender=Sender(kind="operator", name=owner, id=owner),
            body="I'll keep this one",
        ),
        MessageResult,
        timeout=10,
    )
    accepts = [_timed(op, accept(op)) for op in targets]
    mine = _timed(owner, write)
    calls = [mine, *accepts] if owner_first else [*accepts, mine]
    return list(await asyncio.gather(*calls))


def start_cluster(
    data: Path, replicas: int, mongodb_uri: str | None = None, env: dict[str, str] | None = None
) -> LocalSystem:
    """nats-server (and nx-27017 unless given) plus `replicas` routing processes, and the
    directory, which makes the config bucket routing follows."""
    system = LocalSystem(
        data=data, ports=Ports.free(), mongodb_uri=mongodb_uri, extra_env=dict(env or {})
    )
    try:
        system.start_infra()
        system.start_service("directory")
        for replica in range(replicas):
            system.start_service("routing", replica)
        for key in list(system.services):
            system.wait_ready(key)
    except Exception:
        system.stop()
        raise
    return system


async def run(operator_count: int, rounds: int, replicas: int) -> None:
    data = Path(tempfile.mkdtemp(prefix="claim-race-"))
    system = start_cluster(data, replicas)
    try:
        assert system.nats_url is not None
        bus = await Bus.connect(system.nats_url, "bench-claim-race", request_timeout=10)
        names = operators(operator_count)
        # The driver's own full collections would count as the claims' latency.
        heap.settle()
        winners: list[float] = []
        after_last: list[float] = []
        handing: list[float] = []
        everyone: list[float] = []
        rounds_s: list[float] = []
        for _ in range(rounds):
            chat = await seed_queued_chat(bus)
            started = time.perf_counter()
            answers = await race_claims(bus, chat.chat.id, names)
            rounds_s.append(time.perf_counter() - started)
            won = [a for a in answers if a.won]
            if len(won) != 1:
                raise SystemExit(f"round had {len(won)} winners")
            winners.append(won[0].seconds)
            last_sent = max(a.started for a in answers)
            after_last.append(won[0].started + won[0].seconds - last_sent)
            handing.append(last_sent - min(a.started for a in answers))
            everyone += [a.seconds for a in answers]
        await bus.close()
        print(
            f"claim race: {operator_count} operators, {rounds} rounds, {replicas} routing replicas"
        )
        for label, samples in (
            ("winner's claim", winners),
            ("every answer", everyone),
            ("whole round", rounds_s),
            # The driver's own share: how long it took to start sending every claim, and
            # the winner's answer counted from the last of them.
            ("driver sending", handing),
            ("winner after", after_last),
        ):
            ms = [s * 1000 for s in samples]
            print(
                f"  {label:15} p50 {percentile(ms, 50):6.2f} ms  p99 {percentile(ms, 99):6.2f} ms"
                f"  max {max(ms):6.2f} ms"
            )
        print(f"  exactly one winner in {rounds}/{rounds} rounds")
    finally:
        system.stop()
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--operators", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(run(args.operators, args.rounds, args.replicas))


if __name__ == "__main__":
    main()
