"""Live progress of a distributed run: shards publish log histograms, the coordinator merges them per second."""

from __future__ import annotations

import math
import queue
import time
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

PROGRESS_TOPIC = "perfbench-progress"
HIST_BASE = 1.01  # live progress: latency buckets 1% wide


def latency_histogram(latency_ns: pa.Array) -> dict[int, int]:
    """Latencies as ``{bucket: count}`` with buckets ``HIST_BASE`` wide (log scale); sums merge."""
    if len(latency_ns) == 0:
        return {}
    v = pc.max_element_wise(pc.cast(latency_ns, pa.float64()), pa.scalar(1e3))  # at least 1 us
    b = pc.cast(pc.floor(pc.divide(pc.ln(v), math.log(HIST_BASE))), pa.int64())
    return {int(r["values"]): int(r["counts"]) for r in pc.value_counts(b).to_pylist()}


def histogram_quantile(hist: dict[int, int], p: float) -> float | None:
    """The p-quantile (ms) of a merged histogram: the upper edge of its bucket (within 1%)."""
    n = sum(hist.values())
    if not n:
        return None
    rank, seen = max(1, math.ceil(p * n)), 0
    for b in sorted(hist):
        seen += hist[b]
        if seen >= rank:
            return HIST_BASE ** (b + 1) / 1e6
    return None  # pragma: no cover


class MergedProgress:
    """Merges the shards' interval messages into one progress line a second (coordinator side)."""

    def __init__(self, shards: int, duration_s: float, out: Callable[[dict], None] | None):
        self.shards, self.duration_s, self.out = shards, duration_s, out
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.latest: dict[int, dict] = {}  # shard -> its last message
        self._hist: dict[int, int] = {}
        self._errors: dict[str, int] = {}
        self._completed = 0
        self._last_print = time.monotonic()

    def handler(self, event) -> None:  # called on the client's thread
        _, msg = event
        self.inbox.put(msg)

    def drain(self, final: bool = False) -> None:
        while True:
            try:
                msg = self.inbox.get_nowait()
            except queue.Empty:
                break
            self.latest[msg["shard"]] = msg
            for b, c in msg["hist"].items():
                self._hist[int(b)] = self._hist.get(int(b), 0) + c
            for k, c in msg["errors"].items():
                self._errors[k] = self._errors.get(k, 0) + c
            self._completed += msg["n"]
        now = time.monotonic()
        if self.out is None or not self.latest or (not final and now - self._last_print < 1.0):
            return
        span = max(now - self._last_print, 1e-3)
        self._last_print = now
        ms = self.latest.values()
        self.out({
            "elapsed_s": max(m["elapsed_s"] for m in ms), "duration_s": self.duration_s,
            "planned_rps": sum(m["planned_rps"] for m in ms), "completed_rps": self._completed / span,
            "p50_ms": histogram_quantile(self._hist, 0.50), "p95_ms": histogram_quantile(self._hist, 0.95),
            "p99_ms": histogram_quantile(self._hist, 0.99), "errors": dict(self._errors),
            "in_flight": sum(m["in_flight"] for m in ms), "waiting": sum(m["waiting"] for m in ms),
            "total": sum(m["total"] for m in ms), "final": final,
            "shards": f"{len(self.latest)}/{self.shards}",
        })
        self._hist, self._errors, self._completed = {}, {}, 0
