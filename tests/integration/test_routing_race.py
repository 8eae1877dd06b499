"""Arbitration across two routing processes on real NATS: however many operators race,
exactly one wins a claim, and an accept racing the owner's reclaiming message has exactly
one winner too. Every loser is told who won."""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from bench.claim_race import (
    operators,
    race_accepts_and_reclaim,
    race_claims,
    seed_offered_chat,
    seed_queued_chat,
    start_cluster,
)
from deploy.local.system import LocalSystem
from shared.bus import Bus
from tests.conftest import E2E_ENV
from tests.servers import Servers

ROUNDS = 200


@pytest.fixture(scope="module")
def cluster(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    """Its own nats-server, so that no other routing replica joins the race."""
    system = start_cluster(
        tmp_path_factory.mktemp("race"),
        2,
        mongodb_uri=servers.mongodb_uri,
        # Every answer must be the race's (a winner, or `conflict`), not a stall of the
        # test machine read as overload.
        env={"REFDESK_MAX_LOOP_LAG_S": E2E_ENV["REFDESK_MAX_LOOP_LAG_S"]},
    )
    yield system
    system.stop()


@pytest_asyncio.fixture
async def race_bus(cluster: LocalSystem) -> AsyncIterator[Bus]:
    assert cluster.nats_url is not None
    bus = await Bus.connect(cluster.nats_url, "race-tests", request_timeout=10)
    yield bus
    await bus.close()


def transitions(system: LocalSystem, key: str, kind: str) -> float:
    """A replica's count of published events of one type, from its /metrics."""
    with urllib.request.urlopen(f"{system.ops_url(key)}/metrics", timeout=5) as response:
        text = response.read().decode()
    prefix = f'refdesk_chat_transitions_total{{type="{kind}"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


async def test_fifty_operators_claim_one_chat_exactly_one_wins(cluster: LocalSystem, race_bus: Bus):
    names = operators(50)
    for _ in range(ROUNDS):
        seeded = await seed_queued_chat(race_bus)
        chat = seeded.chat
        answers = await race_claims(race_bus, chat.id, names)
        winners = [a.operator for a in answers if a.won]
        assert len(winners) == 1, winners
        losers = [a for a in answers if not a.won]
        assert {(a.code, a.owner) for a in losers} == {("conflict", winners[0])}
        stored = await race_bus.last_chat_record(chat.id)
        assert stored is not None and stored[0].state.chat.owner == winners[0]
        history = await race_bus.chat_history("race", chat.id)
        assert [e.type for e in history[seeded.events :]] == ["claimed"]
    # Both replicas took part in arbitrating.
    per_replica = [transitions(cluster, key, "claimed") for key in ("routing", "routing-1")]
    assert sum(per_replica) == ROUNDS and all(count > 0 for count in per_replica)


async def test_accepts_racing_the_owners_message_have_one_winner(
    cluster: LocalSystem, race_bus: Bus
):
    owner, *targets = operators(3)
    outcomes = {"owner": 0, "target": 0}
    for round_ in range(ROUNDS):
        seeded = await seed_offered_chat(race_bus, owner, targets)
        chat = seeded.chat
        answers = await race_accepts_and_reclaim(
            race_bus, chat.id, owner, targets, owner_first=round_ % 2 == 0
        )
        winners = [a for a in answers if a.won]
        assert len(winners) == 1, answers
        winner = winners[0].operator
        history = [e.type for e in await race_bus.chat_history("race", chat.id)]
        history = history[seeded.events :]
        if winner == owner:
            outcomes["owner"] += 1
            assert history == ["reclaimed", "message"]
            assert {(a.code, a.owner) for a in answers if not a.won} == {("conflict", owner)}
        else:
            outcomes["target"] += 1
            assert history == ["transfer_accepted"]
            refusals = {a.operator: (a.code, a.owner) for a in answers if not a.won}
            assert refusals.pop(owner)[0] == "forbidden"  # no longer the owner
            assert set(refusals.values()) == {("conflict", winner)}
    assert sum(outcomes.values()) == ROUNDS
    # Sending order alternates, so both sides win some rounds: both paths are exercised.
    assert outcomes["owner"] > 0 and outcomes["target"] > 0, outcomes
