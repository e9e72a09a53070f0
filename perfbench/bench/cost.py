"""Cost per call beyond time: SQL statements (the agent's in-process capture) and memory (tracemalloc).

Measured on ``cost_calls`` extra calls after the timed rounds, never during them: the capture's hooks
and tracemalloc slow every call down, and the rounds' times must not pay for it.

- SQL: each call runs with its own request tag (request id = the call's index), so every statement the
  agent's hooks see (SQLAlchemy sync and async engines, sqlite3 connections opened after the capture
  starts, asyncpg, psycopg) is counted against that call. Per benchmark: statements per call (median,
  min, max over the calls), their time, every fingerprint with its count per call, and the N+1 groups:
  a fingerprint run ``N_PLUS_ONE_THRESHOLD`` or more times in one call.
- memory: tracemalloc's peak above the traced size before the call (the transient high-water mark) and
  the net allocation that remains after it (a leak per call shows here), medians over the calls.
"""

from __future__ import annotations

import collections
import contextlib
import statistics
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from ..agent import sql as agent_sql

N_PLUS_ONE_THRESHOLD = 5  # as perfbench.analysis.results (a test checks they agree): stdlib-only here


@contextlib.contextmanager
def _capture() -> Iterator[agent_sql.QueryLog]:
    log = agent_sql.QueryLog()
    agent_sql.install(log)
    try:
        yield log
    finally:
        agent_sql.uninstall(log)


def sql_summary(queries: dict[str, list], statements: dict[str, str], calls: int,
                threshold: int = N_PLUS_ONE_THRESHOLD) -> dict[str, Any]:
    """Per-call SQL figures from the agent's drained columns (``QueryLog.drain()["queries"]``), whose
    ``request_id`` is the call index (0..calls-1). Pure: tested against a recount of the rows."""
    per_call = [0] * calls
    time_ns = [0] * calls
    by_fp: dict[str, list[int]] = collections.defaultdict(lambda: [0] * calls)
    for rid, fp, dur in zip(queries["request_id"], queries["fingerprint"], queries["duration_ns"], strict=True):
        if rid is None or not 0 <= rid < calls:
            continue
        per_call[rid] += 1
        time_ns[rid] += dur
        by_fp[fp][rid] += 1
    fingerprints: list[dict[str, Any]] = sorted(({"fingerprint": fp, "statement": statements.get(fp, ""),
                            "per_call": statistics.median(counts), "max_per_call": max(counts)}
                           for fp, counts in by_fp.items()), key=lambda f: (-f["per_call"], f["fingerprint"]))
    n_plus_one = [{"fingerprint": f["fingerprint"], "statement": f["statement"], "repetitions": f["max_per_call"]}
                  for f in fingerprints if f["max_per_call"] >= threshold]
    return {"calls": calls, "statements_per_call": statistics.median(per_call), "statements_min": min(per_call),
            "statements_max": max(per_call), "sql_ms_per_call": statistics.median(time_ns) / 1e6,
            "fingerprints": fingerprints, "n_plus_one": n_plus_one, "n_plus_one_threshold": threshold}


def sql_cost(call: Callable[[], Any], calls: int, name: str) -> dict[str, Any]:
    with _capture() as log:
        for i in range(calls):
            token = agent_sql.REQUEST.set(agent_sql.RequestTag(log, i, name))
            try:
                call()
            finally:
                agent_sql.REQUEST.reset(token)
        data = log.drain()
    return sql_summary(data["queries"], data["statements"], calls)


async def sql_cost_async(call: Callable[[], Awaitable[Any]], calls: int, name: str) -> dict[str, Any]:
    with _capture() as log:
        for i in range(calls):
            token = agent_sql.REQUEST.set(agent_sql.RequestTag(log, i, name))
            try:
                await call()
            finally:
                agent_sql.REQUEST.reset(token)
        data = log.drain()
    return sql_summary(data["queries"], data["statements"], calls)


def memory_summary(peaks: list[int], nets: list[int]) -> dict[str, Any]:
    """Per-call memory figures (bytes) from each call's peak above its start and its net allocation."""
    return {"calls": len(peaks), "peak_bytes": statistics.median(peaks), "peak_bytes_max": max(peaks),
            "net_bytes": statistics.median(nets), "net_bytes_max": max(nets)}


@contextlib.contextmanager
def _tracing() -> Iterator[None]:
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        yield
    finally:
        if started:
            tracemalloc.stop()


def memory_cost(call: Callable[[], Any], calls: int) -> dict[str, Any]:
    peaks, nets = [], []
    with _tracing():
        call()  # the first traced call allocates tracemalloc's own tables
        for _ in range(calls):
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            call()
            after, peak = tracemalloc.get_traced_memory()
            peaks.append(max(0, peak - before))
            nets.append(after - before)
    return memory_summary(peaks, nets)


async def memory_cost_async(call: Callable[[], Awaitable[Any]], calls: int) -> dict[str, Any]:
    peaks, nets = [], []
    with _tracing():
        await call()
        for _ in range(calls):
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            await call()
            after, peak = tracemalloc.get_traced_memory()
            peaks.append(max(0, peak - before))
            nets.append(after - before)
    return memory_summary(peaks, nets)
