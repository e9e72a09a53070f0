"""Collectors: what runs beside the load and writes its own files into the run directory.

A collector is started before the first request and stopped after the last response. The
resource sampler, the profilers (memray, py-spy, tracemalloc snapshots) and the agent's query
records all come in through this seam, so the engine never imports them.

    class Collector(Protocol):
        name: str
        async def start(self, ctx: RunContext) -> None: ...
        async def stop(self, ctx: RunContext) -> dict | None: ...   # stored in meta["collectors"][name]

A collector that fails to start or stop does not sink the run: the failure is written to
``meta.json`` under ``collectors.<name>.error`` and shown in the summary, and the load goes on.
Times a collector records should be converted with :meth:`RunContext.run_ns` so they share the
requests' time base (ns from the run's start).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import PerfbenchError


@dataclass
class RunContext:
    run_dir: Path
    target: str
    planned_duration_s: float
    start_unix_ns: int = 0
    t0_ns: int | None = None  # perf_counter_ns when the first request was due; set as the load starts
    extra: dict[str, Any] = field(default_factory=dict)

    def run_ns(self, perf_counter_ns: int) -> int:
        """A ``time.perf_counter_ns()`` reading as ns from the run's start (the requests' time base)."""
        if self.t0_ns is None:
            raise PerfbenchError("the run has not started yet")
        return perf_counter_ns - self.t0_ns

    @staticmethod
    def now() -> int:
        return time.perf_counter_ns()


class Collector(Protocol):
    name: str

    async def start(self, ctx: RunContext) -> None: ...

    async def stop(self, ctx: RunContext) -> dict[str, Any] | None: ...


async def start_all(collectors: Sequence[Collector], ctx: RunContext, report: dict[str, Any],
                    warn: Callable[[str], None]) -> list[Collector]:
    """Start each collector; those that fail are reported and left out. Returns the started ones."""
    started: list[Collector] = []
    for c in collectors:
        try:
            await c.start(ctx)
            started.append(c)
        except Exception as exc:  # a profiler that cannot attach must not stop the load
            report[c.name] = {"error": f"did not start: {type(exc).__name__}: {exc}"}
            warn(f"perfbench: {c.name} did not start ({type(exc).__name__}: {exc}); the run goes on without it")
    return started


async def stop_all(collectors: Sequence[Collector], ctx: RunContext, report: dict[str, Any],
                   warn: Callable[[str], None]) -> None:
    """Stop the started collectors in reverse order, keeping what each reports."""
    for c in reversed(collectors):
        try:
            report[c.name] = (await c.stop(ctx)) or {}
        except Exception as exc:
            report[c.name] = {"error": f"did not stop cleanly: {type(exc).__name__}: {exc}"}
            warn(f"perfbench: {c.name} failed while stopping ({type(exc).__name__}: {exc})")
