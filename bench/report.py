"""Percentiles and the one-line report every benchmark prints."""

from __future__ import annotations

import statistics


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(
    name: str, latencies_ms: list[float], seconds: float, lost: int = 0
) -> dict[str, float]:
    result = {
        "messages": float(len(latencies_ms)),
        "lost": float(lost),
        "msg_per_s": len(latencies_ms) / seconds if seconds else 0.0,
        "p50_ms": percentile(latencies_ms, 50),
        "p90_ms": percentile(latencies_ms, 90),
        "p99_ms": percentile(latencies_ms, 99),
        "mean_ms": statistics.fmean(latencies_ms) if latencies_ms else float("nan"),
    }
    print(
        f"{name}: {len(latencies_ms)} messages ({lost} lost) in {seconds:.1f}s = "
        f"{result['msg_per_s']:.0f} msg/s; latency p50 {result['p50_ms']:.2f} ms, "
        f"p90 {result['p90_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms",
        flush=True,
    )
    return result
