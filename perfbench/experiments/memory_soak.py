"""The memory soak: a steady load with the memory collectors, then the run's leak verdict.

The ``memory_soak`` notebook's logic, callable without it: ``soak()`` starts the demo (with
tracemalloc's endpoint, optionally under memray) when no target is given, or profiles a user's
service by its URL, PID and memory token; samples RSS, takes tracemalloc snapshots (and py-spy,
memray when asked) while the load runs; then writes ``memory/leak_verdict.json`` and
``memory/leak_sites.parquet`` (``perfbench.profilers.leak``) into the run directory.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from .. import shapes
from ..agent.memory import DEFAULT_NFRAMES
from ..load import run_load
from ..profilers.cpu import PySpyCollector
from ..profilers.leak import verdict_for_run, write_verdict
from ..profilers.memray import MemrayCollector
from ..profilers.resources import ResourceSampler
from ..profilers.tracemalloc import TracemallocCollector
from ..scenario import from_paths


def soak(target: str | None = None, *, endpoints: str = "POST /api/leak", rate: float = 50.0,
         duration: float = 20.0, sample_interval: float = 0.5, snapshot_interval: float = 5.0,
         tracemalloc_on: bool = True, nframes: int = DEFAULT_NFRAMES, memray_on: bool = False,
         pyspy_on: bool = False, memory_token: str | None = None, pid: int | None = None,
         runs_dir: str | Path = "data/runs", run_id: str | None = None, label: str = "memory_soak",
         demo_db_path: str | Path = "data/demo/demo.sqlite", warmup: float = 0.2,
         progress: Any = False, announce: Any = None) -> dict[str, Any]:
    """A soak with the memory collectors, and its leak verdict. Starts the demo when ``target`` is empty.

    ``endpoints``: comma-separated ``[NAME=][METHOD ]PATH[*WEIGHT]`` (as ``perfbench run``).
    For a user's service: ``target`` URL, its ``pid`` (for resources and py-spy) and
    ``memory_token`` (for tracemalloc snapshots). Returns ``{"run_dir", "verdict", "summary"}``.
    """
    from ..demo.process import DemoProcess  # the demo's app and database layer: only when it is started

    scenario = from_paths([s.strip() for s in endpoints.split(",") if s.strip()])
    plan = shapes.constant(rate=rate, duration=duration)
    with contextlib.ExitStack() as stack:
        if not target:
            demo = stack.enter_context(DemoProcess(db_path=demo_db_path, tracemalloc=tracemalloc_on,
                                                   tracemalloc_nframes=nframes, memray=memray_on,
                                                   max_seconds=duration + 600))
            target, proc_ref, token = demo.url, demo, demo.memory_token
        else:
            demo, proc_ref, token = None, pid, memory_token
        collectors: list[Any] = []
        if proc_ref is not None:
            collectors.append(ResourceSampler(proc_ref, interval_s=sample_interval))
        if tracemalloc_on and token:
            collectors.append(TracemallocCollector(target, token, interval_s=snapshot_interval, nframes=nframes))
        if pyspy_on and proc_ref is not None:
            collectors.append(PySpyCollector(proc_ref))
        if memray_on and demo is not None:
            # first in the list, so stopped last: it stops the target to finish the capture
            collectors.insert(0, MemrayCollector(demo))
        result = run_load(target, plan, scenario, runs_dir=runs_dir, run_id=run_id or None, label=label,
                          collectors=collectors, progress=progress, announce=announce,
                          parameters={"soak": {"endpoints": endpoints, "sample_interval": sample_interval,
                                               "snapshot_interval": snapshot_interval, "memray": memray_on,
                                               "tracemalloc": tracemalloc_on}})
    verdict = verdict_for_run(result.path, warmup=warmup)
    write_verdict(verdict, result.path)
    return {"run_dir": result.path, "verdict": verdict, "summary": result.summary}
