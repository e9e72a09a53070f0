"""``run_load``: run a plan against a target and leave a run directory behind.

    from perfbench import shapes
    from perfbench.load import run_load
    result = run_load("http://127.0.0.1:8080", shapes.constant(rate=200, duration=20),
                      scenario=my_scenario)
    result.path, result.summary

Here, above the engine, a run is sent from this process (``engine.session.run_local``) or
sharded over a Dask cluster (``perfbench.distributed``). ``run_load`` works from a script, the
CLI and a Jupyter cell alike (inside a running event loop it runs the load on its own thread
and loop, so the kernel's loop never carries the load).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import distributed
from .analysis.slo import check_scopes
from .analysis.slo import parse_all as parse_slos
from .engine.collectors import Collector
from .engine.options import LoadOptions, stderr_line
from .engine.session import RunResult, run_coroutine, run_local
from .rundir import new_run_id
from .safety import check_target
from .scenario import Scenario, single
from .shapes import ClosedPlan, OpenPlan

DEFAULT_RUNS_DIR = Path("data/runs")

__all__ = ["DEFAULT_RUNS_DIR", "RunResult", "run_load"]


def run_load(target: str, plan: OpenPlan | ClosedPlan, scenario: Scenario | None = None, *,
             runs_dir: str | Path = DEFAULT_RUNS_DIR, run_id: str | None = None, label: str = "run",
             allow_hosts: Iterable[str] = (), max_in_flight: int = 10_000, max_requests: int | None = None,
             timeout: float = 30.0, grace: float | None = None, lag_bound_ms: float = 10.0,
             progress: Callable[[dict[str, Any]], None] | bool | None = True, handle_signals: bool = False,
             parameters: dict[str, Any] | None = None, code_dir: str | None = None,
             announce: Callable[[str], None] | None = None, collectors: Iterable[Collector] = (),
             http_path: str = "auto", slos: Iterable[str] = (), workers: int = 0, scheduler: str | None = None,
             client: Any = None, on_cluster: Callable[[Any], None] | None = None) -> RunResult:
    """Run ``plan`` against ``target`` and write a run directory; returns its path and summary.

    Every run is bounded: it stops at the end of the plan (plus ``grace`` for in-flight
    requests, default ``min(timeout, 10) + 1`` s), at ``max_requests``, or on SIGINT/SIGTERM when
    ``handle_signals`` is set. Only loopback targets are loaded unless ``allow_hosts`` names
    the host. ``collectors`` (see ``perfbench.engine.collectors``) run beside the load and
    write their own files into the run directory. ``slos`` (``"p95<300ms"``, see
    ``perfbench.analysis.slo``) are checked at the end and stored in summary.json under ``slo``.

    Distributed (``perfbench.distributed``): ``workers=N`` starts a local Dask cluster of N
    processes for the run (closed at the end), ``scheduler="tcp://HOST:PORT"`` uses an existing
    cluster, ``client`` an existing ``distributed.Client``; each worker runs a shard of the plan
    and the records merge into one run directory. ``on_cluster(client)`` is called once the
    cluster is up (a notebook passes ``display`` to show the cluster widget).
    """
    target = check_target(target, allow_hosts)
    options = LoadOptions(max_in_flight=max_in_flight, max_requests=max_requests, timeout=timeout, grace=grace,
                          lag_bound_ms=lag_bound_ms, http_path=http_path, handle_signals=handle_signals,
                          slos=tuple(parse_slos(slos)), parameters=parameters or {}, code_dir=code_dir, progress=progress,
                          announce=announce or stderr_line, collectors=tuple(collectors))
    scenario = scenario or single("/")
    check_scopes(options.slos, [r.name for r in scenario.requests] + (["login"] if scenario.login else []))
    runs_dir, run_id = Path(runs_dir), run_id or new_run_id(label)
    if workers or scheduler or client is not None:
        return distributed.run_on_cluster(target, plan, scenario, options, runs_dir=runs_dir, run_id=run_id,
                                          workers=workers, scheduler=scheduler, client=client, on_cluster=on_cluster)
    return run_coroutine(run_local(target, plan, scenario, options, runs_dir=runs_dir, run_id=run_id))
