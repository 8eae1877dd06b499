"""The floor: one-way latency of bare NATS pub/sub with nats-py, with the same number of
pairs and the same total rate as bench/e2e_latency.py.

    python -m bench.nats_baseline [--pairs 100] [--rate 1000] [--duration 10]

Starts its own nats-server on a free loopback port unless --nats-url is given.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import struct
import tempfile
import time
from pathlib import Path

import nats
import uvloop

from bench.report import summary
from deploy.local.processes import free_port
from deploy.local.system import start_nats
from shared.bus import flushed


async def measure(url: str, pairs: int, rate: float, duration: float) -> dict[str, float]:
    publisher = await nats.connect(url)
    subscriber = await nats.connect(url)
    latencies: list[float] = []
    received = 0

    async def on_message(msg) -> None:  # type: ignore[no-untyped-def]
        nonlocal received
        (sent,) = struct.unpack("!q", msg.data[:8])
        latencies.append((time.perf_counter_ns() - sent) / 1e6)
        received += 1

    for pair in range(pairs):
        await subscriber.subscribe(f"bench.pair.{pair}", cb=on_message)
    await flushed(subscriber)
    interval = pairs / rate
    padding = b"x" * 100

    async def sender(pair: int) -> int:
        await asyncio.sleep(interval * pair / pairs)
        sent = 0
        start = time.perf_counter()
        while time.perf_counter() - start < duration:
            body = struct.pack("!q", time.perf_counter_ns()) + padding
            await publisher.publish(f"bench.pair.{pair}", body)
            sent += 1
            next_at = start + sent * interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        return sent

    started = time.perf_counter()
    sent = sum(await asyncio.gather(*(sender(p) for p in range(pairs))))
    await publisher.flush()
    await asyncio.sleep(0.5)
    elapsed = time.perf_counter() - started
    await publisher.close()
    await subscriber.close()
    return summary("nats floor", latencies, elapsed, lost=sent - received)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--rate", type=float, default=1000.0, help="messages/s in total")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--nats-url")
    args = parser.parse_args()
    if args.nats_url:
        uvloop.run(measure(args.nats_url, args.pairs, args.rate, args.duration))
        return
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="refdesk-bench-"))
    server = start_nats(data, port, data / "logs")
    try:
        uvloop.run(measure(f"nats://127.0.0.1:{port}", args.pairs, args.rate, args.duration))
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
