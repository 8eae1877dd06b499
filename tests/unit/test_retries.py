"""The one compare-and-set loop: tries again on a lost race, gives up with `conflict`."""

from __future__ import annotations

import pytest

from shared.errors import Refusal, StaleRevision
from shared.retries import until_written


async def test_a_lost_race_is_read_and_decided_again_until_it_lands():
    tries: list[int] = []

    async def attempt(n: int) -> str:
        tries.append(n)
        if n < 2:
            raise StaleRevision("chat")
        return "written"

    assert await until_written(attempt, 5, "too busy") == "written"
    assert tries == [0, 1, 2]


async def test_too_many_lost_races_are_a_conflict_and_other_refusals_pass_through():
    tries: list[int] = []

    async def always_stale(n: int) -> str:
        tries.append(n)
        raise StaleRevision("chat")

    with pytest.raises(Refusal) as refused:
        await until_written(always_stale, 4, "the chat is changing too fast")
    assert refused.value.code == "conflict" and tries == [0, 1, 2, 3]

    async def not_yours(_: int) -> str:
        raise Refusal("forbidden", "not your chat")

    with pytest.raises(Refusal) as passed:
        await until_written(not_yours, 4, "busy")
    assert passed.value.code == "forbidden"


async def test_writers_of_one_record_take_turns_and_the_lock_is_forgotten_after():
    import asyncio

    from shared.retries import KeyedLocks

    turns = KeyedLocks()
    inside: list[str] = []
    entered = {name: asyncio.Event() for name in "abcd"}
    overlapped = False

    async def write(key: str, name: str, release: asyncio.Event) -> None:
        nonlocal overlapped
        async with turns.hold(key):
            overlapped = overlapped or any(k == key for k, _ in (i.split(":") for i in inside))
            inside.append(f"{key}:{name}")
            entered[name].set()
            await release.wait()
            inside.remove(f"{key}:{name}")

    go = asyncio.Event()
    tasks = [asyncio.create_task(write("chat1", n, go)) for n in ("a", "b", "c")]
    other = asyncio.create_task(write("chat2", "d", go))
    await asyncio.wait_for(asyncio.gather(entered["a"].wait(), entered["d"].wait()), 1)
    assert sorted(inside) == ["chat1:a", "chat2:d"]  # one per record, records in parallel
    go.set()
    await asyncio.gather(*tasks, other)
    assert not overlapped and len(turns) == 0
