"""Routing's own CPU per message: one routing replica, nats-server and the MongoDB server,
and nothing else, taking `message` requests at a fixed rate.

    python -m bench.routing_message [--rate 1000] [--duration 10] [--chats 60]

bench/e2e_latency.py measures every process together on two shared cores, where each
process's CPU per message also pays for the others (cache and scheduler contention). This
one measures the routing replica alone, with the same requests the gateway sends: a chat
per simulated patron, claimed first, then messages with client ids. It prints the CPU
microseconds per message of routing, nats-server and the MongoDB server, and the request
latency as the gateway would see it.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import uvloop

from bench.claim_race import INSTITUTION, race_claims, seed_queued_chat, start_cluster
from bench.e2e_latency import TICKS, sample_cpu
from bench.report import percentile
from shared import subjects
from shared.bus import Bus
from shared.schemas.chat import Sender
from shared.schemas.requests import MessageResult, PostMessage

BODY = "Do you have the 1998 theses of the history department in the repository?"


async def measure(rate: float, duration: float, chats: int) -> None:
    data = Path(tempfile.mkdtemp(prefix="refdesk-routing-"))
    system = start_cluster(data, replicas=1)
    try:
        assert system.nats_url is not None
        bus = await Bus.connect(system.nats_url, "bench-routing-message", request_timeout=10)
        patrons: list[tuple[str, Sender]] = []
        for n in range(chats):
            state = await seed_queued_chat(bus)
            [answer] = await race_claims(bus, state.chat.id, [f"bench-op{n}"])
            if not answer.won:
                raise SystemExit(f"could not claim chat {n}: {answer.code}")
            sender = Sender(kind="patron", name="Patron", id=state.chat.patron.guest_id)
            patrons.append((state.chat.id, sender))
        roots = {
            child.name: child.popen.pid for child in [*system.infra, *system.services.values()]
        }
        subject = subjects.routing(INSTITUTION, "message")

        latencies: list[float] = []

        async def patron(n: int, chat_id: str, sender: Sender, every: float) -> int:
            # Spread over the interval: patrons starting together would send in bursts of
            # `chats` requests at once, and the figure would be their queueing.
            await asyncio.sleep(every * n / chats)
            start, sent = time.perf_counter(), 0
            while time.perf_counter() - start < duration:
                request = PostMessage(
                    institution=INSTITUTION,
                    chat_id=chat_id,
                    sender=sender,
                    body=BODY,
                    client_id=uuid.uuid4().hex,
                )
                began = time.perf_counter()
                await bus.request(subject, request, MessageResult)
                latencies.append((time.perf_counter() - began) * 1000)
                sent += 1
                await asyncio.sleep(max(0.0, start + sent * every - time.perf_counter()))
            return sent

        before = sample_cpu(roots)
        every = chats / rate
        count = sum(
            await asyncio.gather(*(patron(n, c, s, every) for n, (c, s) in enumerate(patrons)))
        )
        after = sample_cpu(roots)
        await bus.close()
        per_message = {
            name: (after.ticks[name] - before.ticks[name]) / TICKS * 1e6 / count for name in roots
        }
        cpu = ", ".join(f"{name} {us:.0f} µs" for name, us in per_message.items())
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        print(
            f"routing alone, {rate:.0f} msg/s for {duration:.0f} s: {count} messages; "
            f"request p50 {p50:.2f} ms, p99 {p99:.2f} ms"
        )
        print(f"  CPU per message: {cpu}")
    finally:
        system.stop()
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--chats", type=int, default=60)
    args = parser.parse_args()
    uvloop.run(measure(args.rate, args.duration, args.chats))


if __name__ == "__main__":
    main()
