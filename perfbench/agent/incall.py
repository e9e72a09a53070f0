"""The agent's capture for a callable target: each call's SQL attributed to the call's request id.

    run_load(my_async_fn, plan, capture=True)   # -> queries.parquet, server_requests.parquet, summary["sql"]

A callable target (``perfbench.engine.calls``) runs in this process, so no HTTP agent sits between
the engine and the code: :class:`CallCapture` is the agent and its collector in one. It is a
collector (``perfbench.engine.collectors``, named ``agent`` like :class:`~perfbench.agent.AgentCollector`,
so the SLOs on the agent's figures apply), and :meth:`CallCapture.wrap` wraps each function so that a
call runs with a :class:`~perfbench.agent.sql.RequestTag` of its request id bound, as the agent's
middleware binds an HTTP request's: every statement it runs (SQLAlchemy sync and async, aiosqlite's
thread, sqlite3, asyncpg, psycopg), cache event and outbound call is attributed to it. Each call's
wall time is recorded as the agent times a handler (``mode`` asyncio), so ``perfbench explain`` splits
the call's latency into its database time and the rest.

The files are written like the agent's (same schemas, :meth:`AgentCollector._write`), drained every
``poll_s`` seconds so memory stays bounded. The endpoint of a call's records is ``CALL <name>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from . import sql
from .collector import AgentCollector

CALL_METHOD = "CALL"  # as perfbench.engine.calls.CALL (the agent layer does not import the engine)


class CallCapture(AgentCollector):
    """The in-process agent of a callable target (see the module docstring)."""

    name = "agent"

    def __init__(self, *, poll_s: float | None = 1.0, batch: int = 50_000, capacity: int = 1_000_000):
        super().__init__("in-process", poll_s=poll_s, batch=batch)
        self.log = sql.QueryLog(capacity)
        self._timings: list[tuple[int, str, int, int]] = []  # (request id, endpoint, start, wall ns)
        self._timings_lock = threading.Lock()
        self._installed = False

    def __repr__(self) -> str:
        return "CallCapture()"

    def wrap(self, name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[[int], Awaitable[Any]]:
        """``fn`` as a function of the request id that runs with the id bound for the capture."""
        endpoint = f"{CALL_METHOD} {name}"
        try:
            with_id = any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                          for p in inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):
            with_id = False
        log, timings, lock = self.log, self._timings, self._timings_lock

        async def call(request_id: int) -> Any:
            token = sql.REQUEST.set(sql.RequestTag(log, request_id, endpoint))
            start = time.perf_counter_ns()
            try:
                return await (fn(request_id) if with_id else fn())
            finally:
                wall = time.perf_counter_ns() - start
                sql.REQUEST.reset(token)
                with lock:
                    timings.append((request_id, endpoint, start, wall))

        call.__name__ = getattr(fn, "__name__", name)
        return call

    async def start(self, ctx) -> None:  # noqa: ANN001
        self._run_dir = Path(ctx.run_dir)
        self.offset_ns = self.rtt_ns = 0  # one process, one clock
        sql.install(self.log)
        self._installed = True
        self.log.reset()
        self._local_start_ns = time.perf_counter_ns()
        self.stats = {"queries": 0, "cache_events": 0, "downstream_calls": 0, "dropped_queries": 0,
                      "dropped_cache": 0, "dropped_downstream": 0, "fetches": 0, "unattributed_queries": 0,
                      "timed_requests": 0, "dropped_timings": 0, "requests_seen": 0, "unattributed_requests": 0}
        self._seen = 0
        if self.poll_s:
            self._poller = asyncio.create_task(self._poll(ctx, self.poll_s))

    async def _drain(self, ctx, max_rounds: int = 1000) -> None:  # noqa: ANN001
        async with self._lock:
            for _ in range(max_rounds):
                body = self.log.drain(self.batch)
                with self._timings_lock:
                    timed, self._timings[:] = list(self._timings), []
                self._seen += len(timed)
                body["requests"] = {"columns": {
                    "request_id": [t[0] for t in timed], "request_id_status": ["ok"] * len(timed),
                    "endpoint": [t[1] for t in timed], "start_ns": [t[2] for t in timed],
                    "wall_ns": [t[3] for t in timed], "cpu_ns": [None] * len(timed), "gc_ns": [0] * len(timed),
                    "gc_pauses": [0] * len(timed), "lag_ns": [None] * len(timed),
                    "mode": ["asyncio"] * len(timed)}, "dropped": 0}
                body["requests_seen"] = self._seen
                self.stats["fetches"] += 1
                self._write(ctx, body)
                if not body.get("more"):
                    break

    async def stop(self, ctx) -> dict[str, Any]:  # noqa: ANN001
        try:
            return await super().stop(ctx)
        finally:
            if self._installed:
                with contextlib.suppress(Exception):
                    sql.uninstall(self.log)
                self._installed = False
