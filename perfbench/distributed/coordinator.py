"""The coordinator: submits the shards at a common start, watches them, merges, writes the run directory."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..engine.collectors import RunContext, start_all, stop_all
from ..engine.hooks import HookRunner
from ..engine.machine import MachineSampler, tree_cpu_s
from ..engine.options import LoadOptions
from ..engine.session import (
    RunResult,
    StopSignals,
    announce_start,
    run_coroutine,
    run_span,
    start_meta,
)
from ..errors import ConfigError
from ..rundir import (
    REQUESTS,
    RunDir,
    WriterLock,
    machine_info,
    utc_now_iso,
)
from ..scenario import Scenario
from ..scenario_flows import FlowScenario
from ..scenario_hooks import Hooks
from ..shapes import ClosedPlan, OpenPlan
from .cluster import connect, local_cluster, measure_clock_offsets
from .merge import merge_parts
from .progress import PROGRESS_TOPIC, MergedProgress
from .shard import PARTS_DIR, ShardSpec, part_name, run_shard, set_stop

START_DELAY_S = 1.5  # the common start is this far in the future once every shard is submitted


def _worst_end_reason(reasons: Iterable[str]) -> str:
    order = ["terminated", "interrupted", "deadline", "budget", "completed"]
    rs = set(reasons)
    return next((r for r in order if r in rs), "completed")


def _count_arrivals(plan, index: int, count: int) -> int | None:
    """How many requests shard ``index`` was to send (open model; None for the closed model)."""
    if isinstance(plan, ClosedPlan):
        return None
    if plan.expected_requests > 5_000_000:
        return round(plan.expected_requests / count)
    return sum(1 for _ in plan.shard(index, count).arrival_tuples())


def run_on_cluster(target: str, plan: OpenPlan | ClosedPlan, scenario: Scenario, options: LoadOptions, *,
                   runs_dir: Path, run_id: str, workers: int = 0, scheduler: str | None = None, client: Any = None,
                   on_cluster: Callable[[Any], None] | None = None) -> RunResult:
    """``run_load`` on Dask (``target`` is already checked): the cluster is opened here (in the
    caller's thread) and always closed; a given ``client`` is used as it is."""
    announce = options.announce
    with contextlib.ExitStack() as stack:
        if client is None:
            if scheduler:
                client = stack.enter_context(connect(scheduler))
            else:
                announce(f"perfbench: starting a local Dask cluster of {workers} worker processes")
                client = stack.enter_context(local_cluster(workers))
        announce(f"perfbench: Dask dashboard at {getattr(client, 'dashboard_link', None)}")
        if on_cluster is not None:
            on_cluster(client)
        return run_coroutine(_run_on_cluster(client, target, plan, scenario, options, runs_dir=runs_dir,
                                             run_id=run_id))


async def _run_on_cluster(client, target: str, plan: OpenPlan | ClosedPlan, scenario: Scenario,
                          options: LoadOptions, *, runs_dir: Path, run_id: str) -> RunResult:
    from ..analysis.results import Run

    rd = RunDir.create(runs_dir, run_id)
    meta = start_meta(target, scenario, plan, options, max_in_flight=options.max_in_flight, path=None)
    rd.write_meta(meta)
    announce_start(options, target, plan, rd, flows=isinstance(scenario, FlowScenario))
    with WriterLock(rd.path):  # readers leave the run alone until it ends
        # the workers get the scenario without its hooks: they run here, on the merged rows
        shards_scenario = dataclasses.replace(scenario, hooks=None) if scenario.hooks is not None else scenario
        out = await run_distributed(client, target, plan, shards_scenario, options, rd=rd, meta=meta)
    summary = Run.load(rd.path).write_summary(list(options.slos))
    if scenario.hooks is not None:
        rd.update_meta(hooks=await asyncio.to_thread(run_hooks_after, scenario.hooks, rd.path / REQUESTS, summary,
                                                     options.announce))
    return RunResult(rd.path, rd.run_id, summary, out["end_reason"])


def run_hooks_after(hooks: Hooks, requests: Path, summary: dict[str, Any],
                    announce: Callable[[str], None]) -> dict[str, Any]:
    """A distributed run's hooks, on the coordinator once the rows are merged: ``on_request`` for every
    row of ``requests`` (batch by batch, no budget: the load is over), then ``on_stop(summary)``."""
    import pyarrow.parquet as pq

    runner = HookRunner(hooks, announce, bounded=False)
    if hooks.on_request is not None and requests.exists():
        for batch in pq.ParquetFile(requests).iter_batches(batch_size=8192):
            runner.rows(batch)
    runner.stop(summary)
    return {**runner.describe(), "delivered": "after the run, on the coordinator, from the merged rows"}


async def run_distributed(client, target: str, plan: OpenPlan | ClosedPlan, scenario: Scenario,
                          options: LoadOptions, *, rd: RunDir, meta: dict,
                          start_delay: float = START_DELAY_S) -> dict[str, Any]:
    """The coordinator's side (``target`` is already checked): submit one shard per worker, watch
    them, merge their records into ``rd``. Returns what ``run_load`` needs for its RunResult."""
    from distributed import wait

    announce, progress, grace = options.announce, options.progress_hook, options.grace
    assert grace is not None  # resolved by LoadOptions
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    if not workers:
        raise ConfigError("the Dask cluster has no worker")
    n = len(workers)
    offsets = await asyncio.to_thread(measure_clock_offsets, client)
    pids = await asyncio.to_thread(client.run, os.getpid)
    hosts = await asyncio.to_thread(client.run, socket.gethostname)
    local = all(h == socket.gethostname() for h in hosts.values())
    part_dir = rd.path / PARTS_DIR if local else None
    dashboard = getattr(client, "dashboard_link", None)
    per_shard_cap = options.shard(0, n).max_in_flight
    merged = MergedProgress(n, plan.duration, progress)
    topic = f"{PROGRESS_TOPIC}-{rd.run_id}"
    if progress is not None:
        client.subscribe_topic(topic, merged.handler)
    start_unix_ns = time.time_ns() + round(start_delay * 1e9)
    merged._last_print = time.monotonic() + start_delay  # the first interval starts with the load
    dist_meta = {
        "workers": n, "scheduler": client.scheduler.address, "dashboard": dashboard,
        "split": "open model: arrival k to shard k mod N; closed model: user k to shard k mod N",
        "common_start_unix_ns": start_unix_ns,
        "clock_offsets": {str(i): {"worker": w, **offsets.get(w, {})} for i, w in enumerate(workers)},
        "shared_parts": local,
    }
    rd.update_meta(distributed=dist_meta, start_unix_ns=start_unix_ns,
                   parameters={**meta["parameters"], "workers": n, "max_in_flight_per_shard": per_shard_cap})
    announce(f"perfbench: {n} shards on Dask (scheduler {client.scheduler.address}, dashboard {dashboard}); "
             f"clock offsets " + ", ".join(f"{o['offset_ms']:+.3f} ms (±{o['uncertainty_ms']:.3f})"
                                          for o in offsets.values()))
    futures = []
    for i, w in enumerate(workers):
        spec = ShardSpec(index=i, count=n, run_id=rd.run_id, target=target, plan=plan, scenario=scenario,
                         start_unix_ns=start_unix_ns, offset_ns=round(offsets[w]["offset_ms"] * 1e6),
                         part_dir=str(part_dir) if part_dir else None, options=options.shard(i, n),
                         progress=progress is not None)
        futures.append(client.submit(run_shard, spec, key=f"perfbench-shard-{rd.run_id}-{i}", workers=[w],
                                     allow_other_workers=False, pure=False, retries=0))
    ctx = RunContext(rd.path, target, plan.duration)
    collected: dict[str, Any] = {}
    collectors = list(options.collectors)
    if not any(getattr(c, "name", None) == MachineSampler.name for c in collectors):  # as every run records it
        collectors.append(MachineSampler(own_cpu=lambda: trees_cpu_s(list(pids.values()) if local else [])))
    active = await start_all(collectors, ctx, collected, announce)
    # the coordinator's time zero is the common start, for collectors' time bases
    ctx.t0_ns = time.perf_counter_ns() + (start_unix_ns - time.time_ns())
    ctx.start_unix_ns = start_unix_ns
    stop_reason: list[str] = []
    signals = StopSignals(stop_reason.append)
    if options.handle_signals:
        signals.install()
    lost: dict[int, str] = {}
    results: dict[int, dict] = {}
    deadline = time.monotonic() + start_delay + plan.duration + grace + 30.0
    stop_sent = False
    try:
        pending = set(range(n))
        while pending and time.monotonic() < deadline:  # bounded by the deadline
            with contextlib.suppress(TimeoutError):
                await asyncio.to_thread(wait, [futures[i] for i in pending], timeout=0.25,
                                        return_when="FIRST_COMPLETED")
            merged.drain()
            for i in list(pending):
                f = futures[i]
                if f.status == "finished":
                    results[i] = f.result()
                    pending.discard(i)
                elif f.status in ("error", "cancelled", "lost"):
                    exc = f.exception() if f.status == "error" else f.status
                    lost[i] = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(exc)
                    pending.discard(i)
            if pending:
                alive = set((await asyncio.to_thread(client.scheduler_info, n_workers=-1))["workers"])
                for i in list(pending):
                    if workers[i] not in alive:
                        lost[i] = f"worker {workers[i]} left the cluster"
                        futures[i].cancel()  # pinned to the dead worker: it would never run again anyway
                        pending.discard(i)
            if stop_reason and not stop_sent:
                stop_sent = True
                announce(f"perfbench: {stop_reason[0]}: stopping every shard (in-flight requests get the grace)")
                await asyncio.to_thread(client.run, set_stop, rd.run_id, stop_reason[0])
        for i in pending:
            lost[i] = "did not finish by the coordinator's deadline"
            futures[i].cancel()
    finally:
        signals.remove()
        if progress is not None:
            with contextlib.suppress(Exception):
                client.unsubscribe_topic(topic)
        await stop_all(active, ctx, collected, announce)
    merged.drain(final=True)
    shards = []
    for i, w in enumerate(workers):
        r = results.get(i) or {}
        part = r.get("part") or str((part_dir or Path(tempfile.gettempdir()) / "perfbench-parts")
                                    / part_name(rd.run_id, i))
        shards.append({"shard": i, "worker": w, "pid": pids.get(w), "host": hosts.get(w), "part": part,
                       "lost": i in lost, **{k: v for k, v in r.items() if k not in ("part", "shard")}})
    kept = await asyncio.to_thread(merge_parts, client, shards, rd.path / REQUESTS)
    with contextlib.suppress(OSError):
        (rd.path / PARTS_DIR).rmdir()
    lost_list = []
    for s in shards:
        k = kept[s["shard"]]
        s["rows_kept"] = k["rows"]
        s["part"] = None  # merged and removed
        if s["lost"]:
            last = k["last_end_ns"]
            heard = merged.latest.get(s["shard"], {}).get("elapsed_s")
            s["stats"] = {"planned": _count_arrivals(plan, s["shard"], n) or k["rows"]}
            lost_list.append({"shard": s["shard"], "worker": s["worker"], "pid": s["pid"],
                              "reason": lost[s["shard"]], "since_s": None if last is None else last / 1e9,
                              "last_progress_s": heard, "rows_kept": k["rows"]})
            announce(f"perfbench: shard {s['shard']} (worker {s['worker']}, pid {s['pid']}) was lost: "
                     f"{lost[s['shard']]}; its records up to "
                     f"{'the start' if last is None else f'{last / 1e9:.1f} s'} are kept")
    stat_keys = ("planned", "sent", "completed", "capped", "aborted", "unsent", "max_in_flight_seen")
    engine_stats = {k: sum((s.get("stats") or {}).get(k, 0) or 0 for s in shards) for k in stat_keys}
    paths: set[str] = {s["path"] for s in shards if s.get("path")}
    engine_stats.update(max_in_flight=options.max_in_flight, path=",".join(sorted(paths)) or None, shards=n,
                        lost_shards=lost_list)
    reasons: list[str] = [s["end_reason"] for s in shards if s.get("end_reason")]
    end_reason = stop_reason[0] if stop_reason else _worst_end_reason(reasons)
    elapsed = max([s.get("elapsed_s") or 0.0 for s in shards] or [0.0])
    rows = sum(k["rows"] for k in kept.values())
    engine_meta = {**meta["engine"], "path": engine_stats["path"]}
    if isinstance(collected.get("machine"), dict):
        collected["machine"]["scope"] = machine_scope(socket.gethostname(), list(hosts.values()))
    rd.update_meta(ended_at=utc_now_iso(), end_reason=end_reason, rows=rows, engine=engine_meta,
                   elapsed_s=run_span(elapsed, plan.duration, end_reason, engine_stats.get("capped", 0)),
                   engine_stats=engine_stats, collectors=collected,
                   distributed={**dist_meta, "shards": shards, "lost_shards": lost_list},
                   coordinator=machine_info())
    return {"end_reason": end_reason, "lost_shards": lost_list}


def trees_cpu_s(pids: list[int]) -> float:
    """CPU seconds of this process tree and of the trees of ``pids`` outside it (a local cluster's workers
    started elsewhere): the generators' own CPU, so the machine's other load is everything else."""
    import psutil

    total = tree_cpu_s()
    mine = {p.pid for p in psutil.Process().children(recursive=True)} | {os.getpid()}
    for pid in pids:
        if pid in mine:
            continue
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    total += t.user + t.system
    return float(total)


def machine_scope(coordinator_host: str, worker_hosts: list[str]) -> str:
    """Which machine machine.parquet describes in a run with several workers (meta.json collectors.machine.scope)."""
    elsewhere = sorted({h for h in worker_hosts if h != coordinator_host})
    if not elsewhere:
        return (f"the one host {coordinator_host}, where the coordinator and all {len(worker_hosts)} workers ran; "
                "own CPU counts the coordinator's and the workers' processes")
    return (f"the coordinator's host {coordinator_host} only; workers on {', '.join(elsewhere)} are not recorded "
            "(own CPU counts the coordinator's processes)")
