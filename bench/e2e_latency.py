"""One-way message delivery patron -> operator through the running system (gateway,
routing, the chat stream and back out through a gateway), at fixed total rates, with one
gateway and then with two.

    python -m bench.e2e_latency [--rate 1000] [--table 1000 2000 2500 3000] [--sweep]
                                [--gateways 1 2] [--duration 10]

For each gateway count it starts its own system on free loopback ports (nats-server,
nx-27017 and the five services, as `make run` does), adds bench operators to the demo data
and pairs each with a patron whose chat that operator has claimed; with two gateways the
sockets are spread over both, half the pairs crossing from one to the other. Per-socket
limits stay as configured: each rate uses enough pairs that no patron sends more than
PER_SOCKET_RATE messages a second.

Every patron frame carries a ref and a client id, and every answer is read: a message is
`accepted` (ack), `refused` by code (`busy`, `rate_limited`, ...), `unanswered`, or, when
accepted but not delivered to its operator within a second of the end, `lost`. Beside the
latency it prints CPU microseconds per delivered message for each process (nats-server,
the MongoDB server, each service, and the load generator itself), sampled from /proc over
the measured window. The NATS floor is measured on the same nats-server first.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvloop
import websockets

from bench import nats_baseline
from bench.report import summary
from deploy.local import demo_data
from deploy.local.system import LocalSystem, Ports
from shared import heap, store
from shared.passwords import hash_password
from shared.schemas.records import User

P99_BUDGET_MS = 50.0
# Stay under the gateway's default per-socket limit (20 frames/s, bursts of 40).
PER_SOCKET_RATE = 16.0
SWEEP = (1000, 1500, 2000, 2500, 3000, 3500, 4000)
TICKS = os.sysconf("SC_CLK_TCK")
# Off only to measure a build from before message frames took a client id.
CLIENT_IDS = True
RUNS = itertools.count(1)


def pairs_for(rate: float) -> int:
    return max(10, math.ceil(rate / PER_SOCKET_RATE))


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


@dataclass
class Pair:
    chat_id: str = ""
    patron: Any = None
    operator: Any = None
    sent_at: dict[str, int] = field(default_factory=dict)  # client id -> send time (ns)
    answers: Counter[str] = field(default_factory=Counter)
    accepted: set[str] = field(default_factory=set)
    delivered: set[str] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def reset(self) -> None:
        self.sent_at.clear()
        self.answers.clear()
        self.accepted.clear()
        self.delivered.clear()
        self.latencies.clear()


async def _call(ws: Any, frame: dict[str, Any], want: str) -> dict[str, Any]:
    """Send a set-up frame and wait for `want`; `busy` is retried after its hint, as every
    client does."""
    for _ in range(50):
        await ws.send(json.dumps(frame))
        while True:
            reply = json.loads(await ws.recv())
            if reply.get("ref") == frame.get("ref") and reply["type"] == "error":
                if reply["code"] != "busy":
                    raise RuntimeError(reply)
                await asyncio.sleep(reply["retry_after_ms"] / 1000)
                break
            if reply["type"] == want or (want == "ack" and reply.get("ref") == frame.get("ref")):
                return reply
    raise RuntimeError(f"still busy after 50 tries: {frame}")


async def open_pair(patron_base: str, operator_base: str, username: str) -> Pair:
    pair = Pair()
    async with httpx.AsyncClient(base_url=operator_base) as http:
        r = await http.post(
            "/api/auth/login", json={"username": username, "password": demo_data.DEFAULT_PASSWORD}
        )
        token = r.json()["token"]
    ops_ws = operator_base.replace("http", "ws")
    pair.operator = await websockets.connect(ops_ws + "/ws/operator", max_queue=None)
    await _call(pair.operator, {"type": "auth", "token": token, "ref": "a"}, "session")
    await _call(pair.operator, {"type": "status.set", "status": "online", "ref": "s"}, "ack")
    await _call(
        pair.operator,
        {"type": "monitor.set", "queues": ["demo-hill"], "ref": "m"},
        "queue.snapshot",
    )
    pat_ws = patron_base.replace("http", "ws")
    pair.patron = await websockets.connect(pat_ws + "/ws/patron?widget=hill", max_queue=None)
    await _call(pair.patron, {"type": "hello", "token": None, "ref": "h"}, "welcome")
    ack = await _call(pair.patron, {"type": "chat.start", "question": "bench", "ref": "c"}, "ack")
    pair.chat_id = ack["chat_id"]
    await _call(pair.operator, {"type": "chat.claim", "chat_id": pair.chat_id, "ref": "cl"}, "ack")
    # The operator no longer needs the queue: its waiting list would only add traffic.
    await _call(pair.operator, {"type": "monitor.set", "queues": [], "ref": "m0"}, "ack")
    return pair


async def read_operator(pair: Pair) -> None:
    async for raw in pair.operator:
        frame = json.loads(raw)
        if frame["type"] == "message":
            client_id = frame["body"].split(" ", 1)[0]
            sent = pair.sent_at.get(client_id)
            if sent is not None and client_id not in pair.delivered:
                pair.delivered.add(client_id)
                pair.latencies.append((time.perf_counter_ns() - sent) / 1e6)


async def read_patron(pair: Pair) -> None:
    async for raw in pair.patron:
        frame = json.loads(raw)
        ref = frame.get("ref")
        if ref is None or ref not in pair.sent_at:
            continue
        if frame["type"] == "ack":
            pair.answers["accepted"] += 1
            pair.accepted.add(ref)
        elif frame["type"] == "error":
            pair.answers[frame["code"]] += 1


@dataclass
class CpuSample:
    """CPU ticks of each named process tree, read from /proc."""

    ticks: dict[str, int]
    at: float


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, utime + stime ticks) for every process we can read."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return table


def sample_cpu(roots: dict[str, int]) -> CpuSample:
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    ticks: dict[str, int] = {}
    for name, root in roots.items():
        total, stack = 0, [root]
        while stack:
            pid = stack.pop()
            total += table.get(pid, (0, 0))[1]
            if name != "load generator":  # our own children are the services
                stack += children.get(pid, [])
        ticks[name] = total
    return CpuSample(ticks, time.monotonic())


async def run_rate(
    pairs: list[Pair], rate: float, duration: float, label: str, roots: dict[str, int]
) -> dict[str, Any]:
    for pair in pairs:
        pair.reset()
    interval = len(pairs) / rate
    padding = "x" * 80
    # Unique across runs: a resent client id is answered with the original, not posted.
    run = next(RUNS)

    async def sender(index: int, pair: Pair) -> None:
        await asyncio.sleep(interval * index / len(pairs))
        start = time.perf_counter()
        sent = 0
        while time.perf_counter() - start < duration:
            client_id = f"{run}-{index}-{sent}"
            pair.sent_at[client_id] = time.perf_counter_ns()
            frame = {
                "type": "message",
                "chat_id": pair.chat_id,
                "body": f"{client_id} {padding}",
                "ref": client_id,
            }
            if CLIENT_IDS:
                frame["client_id"] = client_id
            await pair.patron.send(json.dumps(frame))
            sent += 1
            await asyncio.sleep(max(0.0, start + sent * interval - time.perf_counter()))

    before = sample_cpu(roots)
    started = time.perf_counter()
    await asyncio.gather(*(sender(i, p) for i, p in enumerate(pairs)))
    elapsed = time.perf_counter() - started
    await asyncio.sleep(1.0)  # what is still on its way arrives, or counts as lost
    after = sample_cpu(roots)
    latencies = [x for p in pairs for x in p.latencies]
    sent = sum(len(p.sent_at) for p in pairs)
    answers: Counter[str] = Counter()
    for p in pairs:
        answers.update(p.answers)
    lost = sum(len(p.accepted - p.delivered) for p in pairs)
    unanswered = sent - sum(answers.values())
    result: dict[str, Any] = summary(label, latencies, elapsed, lost=lost)
    delivered = len(latencies)
    cpu_us = {
        name: (after.ticks[name] - before.ticks[name]) / TICKS * 1e6 / max(1, delivered)
        for name in roots
    }
    result.update(
        sent=sent,
        accepted=answers["accepted"],
        unanswered=unanswered,
        cpu_us=cpu_us,
        refused={k: v for k, v in answers.items() if k != "accepted"},
    )
    refused = " ".join(f"{k}={v}" for k, v in sorted(result["refused"].items())) or "none"
    system_us = sum(v for k, v in cpu_us.items() if k != "load generator")
    print(
        f"  sent {sent}, accepted {answers['accepted']}, refused {refused}, "
        f"unanswered {unanswered}, lost {lost}",
        flush=True,
    )
    print(
        "  CPU per delivered message: "
        + ", ".join(f"{k} {v:.0f} µs" for k, v in cpu_us.items())
        + f"; system total {system_us:.0f} µs",
        flush=True,
    )
    return result


def start_gateway_replica(system: LocalSystem, index: int) -> str:
    """Another gateway, as the system starts any replica; returns its public URL."""
    key = f"gateway-{index}"
    system.start_service("gateway", index)
    system.wait_ready(key)
    return system.public_url(key)


async def bench(
    gateways: list[str],
    operators: list[str],
    rates: list[float],
    duration: float,
    sweep: bool,
    floor_p50_ms: float,
    roots: dict[str, int],
) -> None:
    count = len(gateways)
    pairs: list[Pair] = []
    for i, name in enumerate(operators):
        # Patron and operator each on one of the gateways; with two, half the pairs cross.
        pairs.append(await open_pair(gateways[i % count], gateways[(i // count) % count], name))
    for pair in pairs:
        pair.tasks = [
            asyncio.create_task(read_operator(pair)),
            asyncio.create_task(read_patron(pair)),
        ]
    # The load generator's own full collections would count as the system's latency.
    heap.settle()
    await run_rate(pairs[: pairs_for(200)], 200.0, 2.0, "warm-up", roots)
    steps = list(rates) + ([r for r in SWEEP if r not in rates] if sweep else [])
    best = 0.0
    for rate in steps:
        used = pairs[: pairs_for(rate)]
        label = f"{count} gateway(s), {len(used)} pairs, {rate:.0f} msg/s"
        result = await run_rate(used, rate, duration, label, roots)
        kept_up = (
            result["lost"] == 0
            and result["unanswered"] == 0
            and not result["refused"]
            and result["messages"] >= 0.95 * rate * duration
        )
        system_us = sum(v for k, v in result["cpu_us"].items() if k != "load generator")
        print(
            f"RESULT gateways={count} pairs={len(used)} rate={rate:.0f} "
            f"p50_ms={result['p50_ms']:.2f} p90_ms={result['p90_ms']:.2f} "
            f"p99_ms={result['p99_ms']:.2f} floor_ratio={result['p50_ms'] / floor_p50_ms:.1f} "
            f"accepted={result['accepted']} refused={sum(result['refused'].values())} "
            f"unanswered={result['unanswered']} lost={result['lost']:.0f} "
            f"cpu_us_per_msg={system_us:.0f}",
            flush=True,
        )
        if kept_up and result["p99_ms"] <= P99_BUDGET_MS:
            best = max(best, rate)
        elif sweep and rate in SWEEP and rate > max(rates, default=0):
            break
    if sweep:
        print(
            f"RESULT gateways={count} highest rate with p99 <= {P99_BUDGET_MS:.0f} ms and "
            f"nothing refused or lost: {best:.0f} msg/s",
            flush=True,
        )
    for pair in pairs:
        for task in pair.tasks:
            task.cancel()
        await pair.patron.close()
        await pair.operator.close()


def run_system(args: argparse.Namespace, gateway_count: int) -> None:
    biggest = max([*args.table, args.rate, *(SWEEP if args.sweep else ())])
    system = LocalSystem(
        data=Path(tempfile.mkdtemp(prefix="refdesk-bench-")),
        ports=Ports.free(),
        # Every bench patron connects from 127.0.0.1: the per-address caps would count
        # them as one visitor.
        extra_env={
            "REFDESK_LOG_LEVEL": "WARNING",
            "REFDESK_PATRON_SOCKETS_PER_ADDRESS": "100000",
            "REFDESK_CHAT_STARTS_PER_MINUTE": "1000000",
        },
    )
    try:
        system.start_infra()
        assert system.mongodb_uri is not None and system.nats_url is not None
        operators = asyncio.run(add_bench_operators(system.mongodb_uri, pairs_for(biggest)))
        floor = uvloop.run(
            nats_baseline.measure(system.nats_url, 100, args.rate, min(args.duration, 5))
        )
        system.start_services()
        gateways = [system.gateway_url]
        for index in range(1, gateway_count):
            gateways.append(start_gateway_replica(system, index))
        roots = {
            child.name: child.popen.pid for child in [*system.infra, *system.services.values()]
        }
        roots["load generator"] = os.getpid()
        print(f"== {gateway_count} gateway(s); NATS floor p50 {floor['p50_ms']:.2f} ms", flush=True)
        uvloop.run(
            bench(
                gateways,
                operators,
                sorted({args.rate, *args.table}),
                args.duration,
                args.sweep,
                floor["p50_ms"],
                roots,
            )
        )
    finally:
        system.stop()
        shutil.rmtree(system.data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="messages/s in total")
    parser.add_argument("--table", type=float, nargs="*", default=[], help="more total rates")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--gateways", type=int, nargs="*", default=[1, 2])
    parser.add_argument(
        "--without-client-ids",
        action="store_true",
        help="send message frames without client_id (for builds from before it existed)",
    )
    args = parser.parse_args()
    global CLIENT_IDS
    CLIENT_IDS = not args.without_client_ids
    for count in args.gateways:
        run_system(args, count)


if __name__ == "__main__":
    main()
