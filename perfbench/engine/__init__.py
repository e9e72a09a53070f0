"""The load engine: runs a plan against a target and leaves a run directory behind.

    from perfbench import shapes
    from perfbench.engine import run_load
    result = run_load("http://127.0.0.1:8080", shapes.constant(rate=200, duration=20),
                      scenario=my_scenario)
    result.path, result.summary

``run_load`` works from a script, the CLI and a Jupyter cell alike (inside a running event loop
it runs the load on its own thread and loop, so the kernel's loop never carries the load).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..analysis.slo import parse_all as parse_slos
from ..errors import TargetError
from ..rundir import Journal, RunDir, convert_journal, git_commit, machine_info, new_run_id, utc_now_iso
from ..safety import check_target
from ..scenario import Scenario, single
from ..shapes import ClosedPlan, OpenPlan
from ..wire import REQUEST_ID_HEADER
from .closed_model import ClosedModelEngine
from .collectors import RunContext, start_all, stop_all
from .heap import frozen_heap
from .open_model import OpenModelEngine
from .progress import TerminalProgress
from .recorder import Recorder
from .senders import make_sender

DEFAULT_RUNS_DIR = Path("data/runs")


@dataclass
class RunResult:
    path: Path
    run_id: str
    summary: dict[str, Any]
    end_reason: str


def run_load(target: str, plan: OpenPlan | ClosedPlan, scenario: Scenario | None = None, *,
             runs_dir: str | Path = DEFAULT_RUNS_DIR, run_id: str | None = None, label: str = "run",
             allow_hosts: Iterable[str] = (), max_in_flight: int = 10_000, max_requests: int | None = None,
             timeout: float = 30.0, grace: float | None = None, lag_bound_ms: float = 10.0,
             progress: Callable[[dict], None] | bool | None = True, handle_signals: bool = False,
             parameters: dict | None = None, code_dir: str | None = None,
             announce: Callable[[str], None] | None = None, collectors: Iterable = (),
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
    slo_list = parse_slos(slos)
    scenario = scenario or single("/")
    # a second beyond the timeout, so a request still in flight at the end times out by itself
    # rather than being cut off as aborted a moment before
    grace = min(timeout, 10.0) + 1.0 if grace is None else grace
    if progress is True:
        progress = TerminalProgress()
    elif progress is False:
        progress = None
    if workers or scheduler or client is not None:
        return _run_distributed(target, plan, scenario, runs_dir=Path(runs_dir), run_id=run_id or new_run_id(label),
                                max_in_flight=max_in_flight, max_requests=max_requests, timeout=timeout, grace=grace,
                                lag_bound_ms=lag_bound_ms, progress=progress, handle_signals=handle_signals,
                                parameters=parameters or {}, code_dir=code_dir, announce=announce or _stderr,
                                collectors=list(collectors), http_path=http_path, slos=slo_list, workers=workers,
                                scheduler=scheduler, client=client, on_cluster=on_cluster)
    coro = _run_async(target, plan, scenario, runs_dir=Path(runs_dir), run_id=run_id or new_run_id(label),
                      max_in_flight=max_in_flight, max_requests=max_requests, timeout=timeout, grace=grace,
                      lag_bound_ms=lag_bound_ms, progress=progress, handle_signals=handle_signals,
                      parameters=parameters or {}, code_dir=code_dir, announce=announce or _stderr,
                      collectors=list(collectors), http_path=http_path, slos=slo_list)
    return _run_coroutine(coro)


def run_span(elapsed: float, planned: float, end_reason: str, capped: int) -> float:
    """The seconds a run's throughput is counted over (``meta.elapsed_s``, the summary's req/s).

    A completed run counts over its planned duration, so the last responses' latency does not
    dilute the rate it was sent at. But when arrivals waited for the in-flight cap, the backlog
    went out after the plan ended: the rate then counts over the whole run, or a saturated run
    would report the rate it was asked for instead of the one it achieved.
    """
    if end_reason == "completed" and not capped:
        return min(elapsed, planned)
    return elapsed


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()


def _run_coroutine(coro):
    """Run ``coro`` on a fresh (uv)loop; on a thread of its own if this thread has a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        with asyncio.Runner(loop_factory=_new_loop) as runner:
            return runner.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            with asyncio.Runner(loop_factory=_new_loop) as runner:
                box["result"] = runner.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    t = threading.Thread(target=target, name="perfbench-engine")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


async def _login(sender, scenario: Scenario) -> dict[str, str]:
    if scenario.login is None:
        return {}
    import json

    body = json.dumps(dict(scenario.login.json)).encode()
    status, _, data, error, detail = await sender.request("POST", scenario.login.path,
                                                          {"Content-Type": "application/json"}, body, keep_body=True)
    if error is not None:
        raise TargetError(f"login at {scenario.login.path} failed: {error}: {detail}")
    if status != 200:
        raise TargetError(f"login at {scenario.login.path} answered HTTP {status}; expected 200 with a token")
    try:
        token = json.loads(data)[scenario.login.token_field]
    except (ValueError, KeyError, TypeError):
        raise TargetError(f"login at {scenario.login.path}: no JSON field {scenario.login.token_field!r} "
                          f"in the answer") from None
    return {"Authorization": f"Bearer {token}"}


def _meta(target, scenario, plan, *, max_in_flight, max_requests, timeout, grace, lag_bound_ms, slos, parameters,
          path, code_dir) -> dict[str, Any]:
    """meta.json as a run starts (the same for one process and for shards on Dask)."""
    return {
        "target": target,
        "scenario": scenario.describe(),
        "shape": plan.describe(),
        "parameters": {"max_in_flight": max_in_flight, "max_requests": max_requests, "timeout_s": timeout,
                       "grace_s": grace, "lag_bound_ms": lag_bound_ms, "slos": [x.text for x in slos],
                       **parameters},
        "engine": {"path": path, "model": "closed" if isinstance(plan, ClosedPlan) else "open",
                   "retries": "disabled", "request_id_header": REQUEST_ID_HEADER},
        "started_at": utc_now_iso(),
        "start_unix_ns": time.time_ns(),
        "ended_at": None,
        "end_reason": None,
        "machine": machine_info(),
        "code_commit": git_commit(code_dir) if code_dir else None,
    }


def _run_distributed(target, plan, scenario, *, runs_dir, run_id, workers, scheduler, client, on_cluster,
                     announce, **kw) -> RunResult:
    """``run_load`` on Dask: the cluster is opened here (in the caller's thread) and always closed."""
    from .. import distributed as dist

    with contextlib.ExitStack() as stack:
        if client is None:
            if scheduler:
                client = stack.enter_context(dist.connect(scheduler))
            else:
                announce(f"perfbench: starting a local Dask cluster of {workers} worker processes")
                client = stack.enter_context(dist.local_cluster(workers))
        announce(f"perfbench: Dask dashboard at {getattr(client, 'dashboard_link', None)}")
        if on_cluster is not None:
            on_cluster(client)
        coro = _run_distributed_async(client, target, plan, scenario, runs_dir=runs_dir, run_id=run_id,
                                      announce=announce, **kw)
        return _run_coroutine(coro)


async def _run_distributed_async(client, target, plan, scenario, *, runs_dir, run_id, max_in_flight, max_requests,
                                 timeout, grace, lag_bound_ms, progress, handle_signals, parameters, code_dir,  # noqa: ASYNC109
                                 announce, collectors, http_path, slos) -> RunResult:
    from ..analysis.results import Run
    from ..distributed import run_distributed

    rd = RunDir.create(runs_dir, run_id)
    meta = _meta(target, scenario, plan, max_in_flight=max_in_flight, max_requests=max_requests, timeout=timeout,
                 grace=grace, lag_bound_ms=lag_bound_ms, slos=slos, parameters=parameters, path=None,
                 code_dir=code_dir)
    rd.write_meta(meta)
    what = (f"{plan.max_users} users (closed model)" if isinstance(plan, ClosedPlan)
            else f"{plan.expected_requests:.0f} requests planned")
    announce(f"perfbench: {plan.describe()['kind']} load on {target}: {what} over {plan.duration:g} s "
             f"(deadline {plan.duration + grace:g} s), run directory {rd.path}")
    out = await run_distributed(client, target, plan, scenario, rd=rd, meta=meta, max_in_flight=max_in_flight,
                                max_requests=max_requests, timeout=timeout, grace=grace, progress=progress,
                                handle_signals=handle_signals, announce=announce, collectors=collectors,
                                http_path=http_path, slos=slos)
    summary = Run.load(rd.path).write_summary(slos)
    return RunResult(rd.path, rd.run_id, summary, out["end_reason"])


async def _run_async(target, plan, scenario, *, runs_dir, run_id, max_in_flight, max_requests, timeout, grace,  # noqa: ASYNC109
                     lag_bound_ms, progress, handle_signals, parameters, code_dir, announce, collectors,
                     http_path, slos) -> RunResult:
    closed = isinstance(plan, ClosedPlan)
    if closed:
        max_in_flight = plan.max_users  # one connection per user
    sender = make_sender(target, http_path=http_path, max_connections=max_in_flight, timeout=timeout,
                         scenario=scenario)
    await sender.start()
    try:
        auth = {} if closed else await _login(sender, scenario)  # closed model: each user logs in
        rd = RunDir.create(runs_dir, run_id)
        what = (f"{plan.max_users} users (closed model)" if closed
                else f"{plan.expected_requests:.0f} requests planned")
        announce(f"perfbench: {plan.describe()['kind']} load on {target}: {what} over {plan.duration:g} s "
                 f"(deadline {plan.duration + grace:g} s), run directory {rd.path}")
        rd.write_meta(_meta(target, scenario, plan, max_in_flight=max_in_flight, max_requests=max_requests,
                            timeout=timeout, grace=grace, lag_bound_ms=lag_bound_ms, slos=slos, parameters=parameters,
                            path=sender.name, code_dir=code_dir))
        journal = Journal(rd.path)
        recorder = Recorder(journal.write)
        if closed:
            engine = ClosedModelEngine(plan, scenario, sender, recorder, max_requests=max_requests, grace=grace,
                                       progress=progress)
        else:
            engine = OpenModelEngine(plan, scenario, sender, recorder, max_in_flight=max_in_flight,
                                     max_requests=max_requests, grace=grace, auth_headers=auth, progress=progress)
        loop = asyncio.get_running_loop()
        installed = []
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, engine.stop, "interrupted" if sig == signal.SIGINT else "terminated")
                    installed.append(sig)
        ctx = RunContext(rd.path, target, plan.duration)
        collected: dict[str, Any] = {}
        active = await start_all(collectors, ctx, collected, announce)
        started = time.perf_counter()
        try:
            ctx.t0_ns, ctx.start_unix_ns = engine.clock.now_ns(), time.time_ns()
            with frozen_heap():
                stats = await engine.run(t0_ns=ctx.t0_ns)
        finally:
            elapsed = time.perf_counter() - started
            for sig in installed:
                loop.remove_signal_handler(sig)
            recorder.flush()
            journal.close()
            await stop_all(active, ctx, collected, announce)
    finally:
        await sender.close()
    table = convert_journal(rd.path)
    rows = table.num_rows
    engine_stats = {"planned": stats.planned, "sent": stats.sent, "completed": stats.completed,
                    "capped": stats.capped, "aborted": stats.aborted, "max_in_flight": max_in_flight,
                    "max_in_flight_seen": stats.max_in_flight_seen, "path": sender.name}
    rd.update_meta(ended_at=utc_now_iso(), end_reason=stats.end_reason,
                   elapsed_s=run_span(elapsed, plan.duration, stats.end_reason, stats.capped), rows=rows,
                   engine_stats=engine_stats,
                   collectors=collected, start_unix_ns=ctx.start_unix_ns)
    from ..analysis.results import Run

    summary = Run.load(rd.path).write_summary(slos, table)
    return RunResult(rd.path, rd.run_id, summary, stats.end_reason)
