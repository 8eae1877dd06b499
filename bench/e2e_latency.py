"""One-way message delivery patron -> operator through the running system (gateway,
routing, the chat stream and back out through the gateway), with N concurrent pairs.

    python -m bench.e2e_latency [--pairs 100] [--rate 1000] [--duration 10] [--sweep]

Starts its own system on free loopback ports (nats-server, nx-27017 and the five services,
as `make run` does) and adds bench operators to the demo data. --sweep then raises the
total rate step by step and reports the highest rate whose p99 stays within 50 ms.
The per-socket frame limit is raised for the run, since each bench socket sends far more
than a person types.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop
import websockets

from bench import nats_baseline
from bench.stats import summary
from deploy.local import demo_data
from deploy.local.system import LocalSystem, Ports
from shared import store
from shared.passwords import hash_password
from shared.schemas.records import User

P99_BUDGET_MS = 50.0


async def add_bench_operators(mongodb_uri: str, count: int) -> list[str]:
    client = store.connect(mongodb_uri, "bench")
    db = store.database(client, "refdesk")
    await demo_data.load(db)
    hashed = hash_password(demo_data.DEFAULT_PASSWORD)
    names = [f"demo-hill-bench{i}" for i in range(count)]
    for name in names:
        user = User(
            username=name,
            institution="hill",
            role="operator",
            display_name=name,
            password_hash=hashed,
        )
        await db.users.update_one(
            {"username": name}, {"$setOnInsert": user.model_dump()}, upsert=True
        )
    await client.close()
    return names


class Pair:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.received = 0
        self.chat_id = ""
        self.patron: Any = None
        self.operator: Any = None
        self.tasks: list[asyncio.Task[None]] = []


async def _call(ws: Any, frame: dict[str, Any], want: str) -> dict[str, Any]:
    await ws.send(json.dumps(frame))
    while True:
        reply = json.loads(await ws.recv())
        if reply.get("ref") == frame.get("ref") and reply["type"] in ("ack", "error"):
            if reply["type"] == "error":
                raise RuntimeError(reply)
        if reply["type"] == want or (want == "ack" and reply.get("ref") == frame.get("ref")):
            return reply


async def open_pair(base: str, username: str) -> Pair:
    import httpx

    pair = Pair()
    async with httpx.AsyncClient(base_url=base) as http:
        r = await http.post(
            "/api/auth/login", json={"username": username, "password": demo_data.DEFAULT_PASSWORD}
        )
        token = r.json()["token"]
    ws_base = base.replace("http", "ws")
    pair.operator = await websockets.connect(ws_base + "/ws/operator", max_queue=None)
    await _call(pair.operator, {"type": "auth", "token": token, "ref": "a"}, "session")
    await _call(pair.operator, {"type": "status.set", "status": "online", "ref": "s"}, "ack")
    await _call(
        pair.operator,
        {"type": "monitor.set", "queues": ["demo-hill"], "ref": "m"},
        "queue.snapshot",
    )
    pair.patron = await websockets.connect(ws_base + "/ws/patron?widget=hill", max_queue=None)
    await _call(pair.patron, {"type": "hello", "token": None, "ref": "h"}, "welcome")
    ack = await _call(pair.patron, {"type": "chat.start", "question": "bench", "ref": "c"}, "ack")
    pair.chat_id = ack["chat_id"]
    await _call(pair.operator, {"type": "chat.claim", "chat_id": pair.chat_id, "ref": "cl"}, "ack")
    return pair


async def read_operator(pair: Pair) -> None:
    async for raw in pair.operator:
        frame = json.loads(raw)
        if frame["type"] == "message":
            sent = int(frame["body"].split(" ", 1)[0])
            pair.latencies.append((time.perf_counter_ns() - sent) / 1e6)
            pair.received += 1


async def drain(ws: Any) -> None:
    async for _ in ws:
        pass


async def run_rate(pairs: list[Pair], rate: float, duration: float, label: str) -> dict[str, float]:
    for pair in pairs:
        pair.latencies.clear()
        pair.received = 0
    interval = len(pairs) / rate
    padding = "x" * 80

    async def sender(index: int, pair: Pair) -> int:
        await asyncio.sleep(interval * index / len(pairs))
        sent = 0
        start = time.perf_counter()
        while time.perf_counter() - start < duration:
            body = f"{time.perf_counter_ns()} {padding}"
            await pair.patron.send(
                json.dumps(
                    {"type": "message", "chat_id": pair.chat_id, "body": body, "ref": str(sent)}
                )
            )
            sent += 1
            await asyncio.sleep(max(0.0, start + sent * interval - time.perf_counter()))
        return sent

    started = time.perf_counter()
    sent = sum(await asyncio.gather(*(sender(i, p) for i, p in enumerate(pairs))))
    await asyncio.sleep(1.0)
    elapsed = time.perf_counter() - started - 1.0
    latencies = [x for p in pairs for x in p.latencies]
    received = sum(p.received for p in pairs)
    return summary(label, latencies, elapsed, lost=sent - received)


async def bench(
    base: str,
    operators: list[str],
    rate: float,
    duration: float,
    sweep: bool,
    table: list[float],
    floor_p50_ms: float,
) -> None:
    pairs = [await open_pair(base, name) for name in operators]
    for pair in pairs:
        pair.tasks = [
            asyncio.create_task(read_operator(pair)),
            asyncio.create_task(drain(pair.patron)),
        ]
    await run_rate(pairs, min(rate, 200.0), 2.0, "warm-up")
    main = await run_rate(pairs, rate, duration, f"refdesk e2e at {rate:.0f} msg/s")
    print(
        f"RESULT e2e pairs={len(pairs)} rate={rate:.0f} p50_ms={main['p50_ms']:.2f} "
        f"p90_ms={main['p90_ms']:.2f} p99_ms={main['p99_ms']:.2f} "
        f"msg_per_s={main['msg_per_s']:.0f} lost={main['lost']:.0f}",
        flush=True,
    )
    # The cost of our own code: how many times the bare NATS latency a message takes.
    print(
        f"RESULT ratio our p50 / NATS floor p50 = {main['p50_ms']:.2f} / {floor_p50_ms:.2f} "
        f"= {main['p50_ms'] / floor_p50_ms:.1f}x",
        flush=True,
    )
    for step in table:
        result = await run_rate(pairs, step, duration, f"table {step:.0f} msg/s")
        print(
            f"RESULT table rate={step:.0f} p50_ms={result['p50_ms']:.2f} "
            f"p90_ms={result['p90_ms']:.2f} p99_ms={result['p99_ms']:.2f} "
            f"msg_per_s={result['msg_per_s']:.0f} lost={result['lost']:.0f}",
            flush=True,
        )
    if sweep:
        best = 0.0
        for step in (250, 500, 750, 1000, 1500, 2000, 3000, 4000):
            result = await run_rate(pairs, step, 5.0, f"sweep {step} msg/s")
            # Kept up: everything sent arrived, and as much was sent as the rate asks for.
            delivered = result["lost"] == 0 and result["messages"] >= 0.95 * step * 5.0
            if result["p99_ms"] > P99_BUDGET_MS or not delivered:
                break
            best = step
        print(
            f"RESULT sweep highest rate with p99 <= {P99_BUDGET_MS:.0f} ms: {best:.0f} msg/s",
            flush=True,
        )
    for pair in pairs:
        for task in pair.tasks:
            task.cancel()
        await pair.patron.close()
        await pair.operator.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--rate", type=float, default=1000.0, help="messages/s in total")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument(
        "--table",
        type=float,
        nargs="*",
        default=[],
        help="also measure at each of these total rates",
    )
    args = parser.parse_args()
    system = LocalSystem(
        data=Path(tempfile.mkdtemp(prefix="refdesk-bench-")),
        ports=Ports.free(),
        extra_env={
            "REFDESK_FRAMES_PER_SECOND": "10000",
            "REFDESK_FRAME_BURST": "10000",
            "REFDESK_LOG_LEVEL": "WARNING",
        },
    )
    try:
        system.start_infra()
        assert system.mongodb_uri is not None
        operators = asyncio.run(add_bench_operators(system.mongodb_uri, args.pairs))
        floor = uvloop.run(
            nats_baseline.measure(system.nats_url, args.pairs, args.rate, min(args.duration, 5))
        )
        system.start_services()
        uvloop.run(
            bench(
                system.gateway_url,
                operators,
                args.rate,
                args.duration,
                args.sweep,
                args.table,
                floor["p50_ms"],
            )
        )
    finally:
        system.stop()
        shutil.rmtree(system.data, ignore_errors=True)


if __name__ == "__main__":
    main()
