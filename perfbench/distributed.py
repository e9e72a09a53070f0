"""Load generation on Dask distributed: engine shards on workers, one run directory.

    from perfbench.load import run_load
    run_load("http://127.0.0.1:8080", shapes.constant(2000, 30), workers=2)        # a local cluster
    run_load(url, plan, scheduler="tcp://10.0.0.5:8786", allow_hosts=["10.0.0.9"])  # an existing one

How it works:

- **The plan is split exactly** (``plan.shard(index, count)`` in ``shapes``, pure). Open model:
  arrival k of the plan goes to shard ``k mod N`` with its intended time and its index unchanged,
  so the union of the shards' intended send times *is* the plan. Closed model: user k goes to
  shard ``k mod N`` with all its spans.
- **A common start**: the coordinator picks an absolute wall-clock instant a little in the
  future (``start_unix_ns``); each shard converts it to its own monotonic clock, corrected by the
  clock offset the coordinator measured to that worker (round trips with ``client.run``, the
  sample with the smallest round trip wins, NTP style). Offsets and round trips go to meta.json.
- **Records**: each shard records into a journal part (an Arrow IPC stream, flushed at least
  once a second) in ``<run dir>/parts/`` when the workers share the coordinator's file system
  (a local cluster), else in the worker's temporary directory, fetched batch by batch after the
  run. The coordinator merges the parts into one ``requests.parquet``, streaming (one batch per
  part in memory, row groups written as they fill), and writes meta.json and summary.json:
  percentiles are exact over all rows, never averaged across workers.
- **A lost shard** (its worker died, or the shard failed, e.g. at login) does not sink the run:
  its flushed rows are kept, and ``engine_stats.lost_shards`` (also in summary.json under
  ``generator``) says which shard was lost, on which worker, why, and the run time of its last
  flushed row. Its unsent arrivals count as planned-but-not-sent, so the summary flags the run.
- **Live progress**: shards publish per-interval stats as Dask worker events (latencies as a
  log histogram with 1% buckets, so merging is a sum, not an average); the coordinator prints
  one merged line per second. The final summary is exact.
- **Safety**: the target is checked on the coordinator (``check_target``) before any shard is
  submitted; shards only ever receive the checked URL.

Shards are pinned to their worker and never retried elsewhere (a rerun would send its load
twice, late): a local cluster runs with ``allowed-failures`` 0, and a shard refuses to start
when its journal part already exists or the plan's end has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import queue
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from .engine.collectors import RunContext, start_all, stop_all
from .engine.options import LoadOptions
from .engine.session import (
    LoadSession,
    RunResult,
    StopSignals,
    announce_start,
    run_coroutine,
    run_span,
    start_meta,
)
from .errors import ConfigError, PerfbenchError
from .rundir import (
    PARQUET_OPTIONS,
    REQUEST_SCHEMA,
    REQUESTS,
    ROW_GROUP_ROWS,
    RunDir,
    machine_info,
    read_journal,
    utc_now_iso,
)
from .scenario import Scenario
from .shapes import ClosedPlan, OpenPlan

PARTS_DIR = "parts"
PROGRESS_TOPIC = "perfbench-progress"
START_DELAY_S = 1.5  # the common start is this far in the future once every shard is submitted
HIST_BASE = 1.01  # live progress: latency buckets 1% wide
_STOPS: dict[str, str] = {}  # run id -> stop reason, set on a worker by the coordinator (client.run)


# ------------------------------------------------------------------------------------ live progress
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


# ------------------------------------------------------------------------------------ clusters
@contextlib.contextmanager
def local_cluster(workers: int, *, dashboard: bool = True):
    """A local Dask cluster (processes, one thread each, dashboard on loopback) and its Client;
    closed on leaving, also on errors and Ctrl-C. Shards are never retried (allowed-failures 0)."""
    import dask
    from distributed import Client, LocalCluster

    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address="127.0.0.1:0" if dashboard else None)
    try:
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


@contextlib.contextmanager
def connect(scheduler: str):
    """A Client of an existing cluster at ``scheduler`` (tcp://HOST:PORT); closed on leaving."""
    from distributed import Client

    client = Client(scheduler, timeout="20s")
    try:
        yield client
    finally:
        client.close()


def _clock_sample() -> int:
    return time.time_ns()


def measure_clock_offsets(client, rounds: int = 7) -> dict[str, dict[str, float]]:
    """Per worker address: offset (worker wall clock minus the coordinator's, ms) and round trip (ms).

    Each round is one ``client.run`` on all workers; per worker the round with the smallest round
    trip is kept, its offset is exact to within half that round trip.
    """
    best: dict[str, tuple[int, int]] = {}
    for _ in range(rounds):
        t1 = time.time_ns()
        answers = client.run(_clock_sample)
        t2 = time.time_ns()
        for addr, tw in answers.items():
            rtt, off = t2 - t1, tw - (t1 + t2) // 2
            if addr not in best or rtt < best[addr][0]:
                best[addr] = (rtt, off)
    return {a: {"offset_ms": off / 1e6, "rtt_ms": rtt / 1e6, "uncertainty_ms": rtt / 2e6}
            for a, (rtt, off) in sorted(best.items())}


def _set_stop(run_id: str, reason: str) -> None:
    _STOPS.setdefault(run_id, reason)


# ------------------------------------------------------------------------------------ the shard
@dataclass
class ShardSpec:
    index: int
    count: int
    run_id: str
    target: str  # already checked by the coordinator
    plan: OpenPlan | ClosedPlan  # the whole plan; the shard runs ``plan.shard(index, count)``
    scenario: Scenario
    start_unix_ns: int  # the common start, on the coordinator's wall clock
    offset_ns: int  # this worker's wall clock minus the coordinator's
    part_dir: str | None  # shared with the coordinator, or None: the worker's temporary directory
    options: LoadOptions  # this shard's share (LoadOptions.shard): its in-flight cap and request budget
    progress: bool = True  # publish live progress to the coordinator


class _PartJournal:
    """A shard's journal part: like ``rundir.Journal``, but created exclusively (a rerun of the
    shard must not overwrite what its first run recorded)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "xb", buffering=0)  # noqa: SIM115 - closed in close()
        self._writer = ipc.new_stream(self._file, REQUEST_SCHEMA)

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()
        self._file.close()


def part_name(run_id: str, index: int) -> str:
    return f"{run_id}.shard-{index}.arrows"


def run_shard(spec: ShardSpec) -> dict[str, Any]:
    """The Dask task: run shard ``spec.index`` on this worker; returns its stats (the rows are in its part)."""
    worker = None
    with contextlib.suppress(Exception):
        from distributed import get_worker

        worker = get_worker()
    return run_coroutine(_shard_async(spec, worker))


async def _shard_async(spec: ShardSpec, worker) -> dict[str, Any]:
    # the common start on this machine's clocks: coordinator wall time -> local wall -> monotonic
    t0 = time.perf_counter_ns() + (spec.start_unix_ns + spec.offset_ns - time.time_ns())
    late_s = (time.perf_counter_ns() - t0) / 1e9
    if late_s > spec.plan.duration:
        raise PerfbenchError(f"shard {spec.index} started {late_s:.1f} s after the common start, past the plan's "
                           "end: not sending (a rerun after a lost worker?)")
    part_dir = Path(spec.part_dir) if spec.part_dir else Path(tempfile.gettempdir()) / "perfbench-parts"
    part_path = part_dir / part_name(spec.run_id, spec.index)
    session = LoadSession(spec.target, spec.plan.shard(spec.index, spec.count), spec.scenario, spec.options,
                          worker=spec.index)
    try:
        async with session:
            journal = _PartJournal(part_path)
            try:
                interval: list[pa.RecordBatch] = []

                def sink(batch: pa.RecordBatch) -> None:
                    journal.write(batch)
                    if spec.progress:
                        interval.append(batch.select(["latency_ns", "error"]))

                def publish(p: dict) -> None:
                    parts, interval[:] = list(interval), []
                    lat = pa.chunked_array([b.column(0) for b in parts], pa.int64()).combine_chunks() if parts \
                        else pa.array([], pa.int64())
                    errs = pa.chunked_array([b.column(1) for b in parts], pa.string()) if parts else None
                    errors = {}
                    if errs is not None and errs.null_count < len(errs):
                        errors = {r["values"]: int(r["counts"])
                                  for r in pc.value_counts(errs.drop_null()).to_pylist()}
                    msg = {"shard": spec.index, "elapsed_s": p["elapsed_s"], "planned_rps": p["planned_rps"],
                           "n": len(lat), "hist": {str(k): v for k, v in latency_histogram(lat).items()},
                           "errors": errors, "in_flight": p["in_flight"], "waiting": p["waiting"],
                           "total": p["total"], "final": p["final"]}
                    if worker is not None:
                        with contextlib.suppress(Exception):
                            worker.log_event(f"{PROGRESS_TOPIC}-{spec.run_id}", msg)

                engine = session.build(sink, publish if spec.progress else None)

                async def watch_stop() -> None:  # the coordinator's stop (Ctrl-C there) reaches us via client.run
                    for _ in range(10**7):  # bounded: about 11 days at 0.1 s
                        reason = _STOPS.get(spec.run_id)
                        if reason:
                            engine.stop(reason)
                            return
                        await asyncio.sleep(0.1)

                watcher = asyncio.get_running_loop().create_task(watch_stop())
                try:
                    wait_s = (t0 - time.perf_counter_ns()) / 1e9 - 0.002
                    if wait_s > 0:
                        await asyncio.sleep(wait_s)
                    stats = await session.run(t0)
                finally:
                    watcher.cancel()
            finally:
                journal.close()
    finally:
        _STOPS.pop(spec.run_id, None)
    assert session.recorder is not None
    return {"shard": spec.index, "host": socket.gethostname(), "pid": os.getpid(), "part": str(part_path),
            "path": session.sender.name, "end_reason": stats.end_reason, "elapsed_s": session.elapsed,
            "start_wait_s": -late_s, "rows": session.recorder.rows,
            "stats": {"planned": stats.planned, "sent": stats.sent, "completed": stats.completed,
                      "capped": stats.capped, "aborted": stats.aborted,
                      "max_in_flight_seen": stats.max_in_flight_seen}}


def read_part_batches(path: str, start: int, count: int) -> tuple[list[pa.RecordBatch], bool]:
    """Batches ``start .. start+count`` of a journal part (a task on the worker holding it); and
    whether more follow."""
    batches, _ = read_journal(Path(path))
    return batches[start:start + count], len(batches) > start + count


def remove_part(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


# ------------------------------------------------------------------------------------ merging
def _part_batches(client, shard: dict) -> Iterator[pa.RecordBatch]:
    """A shard's recorded batches: read where the coordinator sees its part, else fetched from its worker."""
    path = shard["part"]
    if Path(path).exists():
        try:
            reader = ipc.open_stream(pa.memory_map(path))
        except (pa.ArrowInvalid, OSError):
            return  # killed before the schema was written
        with contextlib.suppress(pa.ArrowInvalid, OSError):  # a killed shard's last batch may be cut off
            yield from reader
        return
    if shard.get("worker") is None or shard.get("lost"):
        return  # on a machine we cannot reach any more
    start = 0
    for _ in range(10**6):
        fut = client.submit(read_part_batches, path, start, 16, workers=[shard["worker"]],
                            allow_other_workers=False, pure=False)
        batches, more = fut.result(timeout=120)
        yield from batches
        start += len(batches)
        if not more:
            break
    client.submit(remove_part, path, workers=[shard["worker"]], allow_other_workers=False, pure=False).result(60)


def merge_parts(client, shards: list[dict], out: Path) -> dict[int, dict]:
    """Merge the shards' journal parts into ``out`` (requests.parquet), streaming.

    Batches are taken from the part whose next batch starts earliest (by ``end_ns``), so row
    groups stay roughly in time order; memory holds one batch per part plus one row group.
    Returns per shard: rows kept and the run time of its last flushed row.
    """
    import heapq

    import pyarrow.parquet as pq

    iters = {s["shard"]: _part_batches(client, s) for s in shards}
    kept = {s["shard"]: {"rows": 0, "last_end_ns": None} for s in shards}
    heap: list = []

    def push(i: int) -> None:
        for b in iters[i]:
            if b.num_rows:
                heapq.heappush(heap, (pc.min(b.column("end_ns")).as_py(), i, id(b), b))
                return

    for i in iters:
        push(i)
    tmp = out.with_name(out.name + ".tmp")
    pending: list[pa.RecordBatch] = []
    n_pending = 0
    with pq.ParquetWriter(tmp, REQUEST_SCHEMA, **PARQUET_OPTIONS) as writer:
        while heap:
            _, i, _, b = heapq.heappop(heap)
            k = kept[i]
            k["rows"] += b.num_rows
            last = pc.max(b.column("end_ns")).as_py()
            k["last_end_ns"] = last if k["last_end_ns"] is None else max(k["last_end_ns"], last)
            pending.append(b)
            n_pending += b.num_rows
            if n_pending >= ROW_GROUP_ROWS:
                writer.write_table(pa.Table.from_batches(pending, REQUEST_SCHEMA), row_group_size=ROW_GROUP_ROWS)
                pending, n_pending = [], 0
            push(i)
        if pending or not any(k["rows"] for k in kept.values()):
            writer.write_table(pa.Table.from_batches(pending, REQUEST_SCHEMA), row_group_size=ROW_GROUP_ROWS)
    os.replace(tmp, out)
    for s in shards:
        if Path(s["part"]).exists():
            remove_part(s["part"])
    return kept


# ------------------------------------------------------------------------------------ the coordinator
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
    from .analysis.results import Run

    rd = RunDir.create(runs_dir, run_id)
    meta = start_meta(target, scenario, plan, options, max_in_flight=options.max_in_flight, path=None)
    rd.write_meta(meta)
    announce_start(options, target, plan, rd)
    out = await run_distributed(client, target, plan, scenario, options, rd=rd, meta=meta)
    summary = Run.load(rd.path).write_summary(list(options.slos))
    return RunResult(rd.path, rd.run_id, summary, out["end_reason"])


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
    active = await start_all(options.collectors, ctx, collected, announce)
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
                await asyncio.to_thread(client.run, _set_stop, rd.run_id, stop_reason[0])
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
    stat_keys = ("planned", "sent", "completed", "capped", "aborted", "max_in_flight_seen")
    engine_stats = {k: sum((s.get("stats") or {}).get(k, 0) or 0 for s in shards) for k in stat_keys}
    paths: set[str] = {s["path"] for s in shards if s.get("path")}
    engine_stats.update(max_in_flight=options.max_in_flight, path=",".join(sorted(paths)) or None, shards=n,
                        lost_shards=lost_list)
    reasons: list[str] = [s["end_reason"] for s in shards if s.get("end_reason")]
    end_reason = stop_reason[0] if stop_reason else _worst_end_reason(reasons)
    elapsed = max([s.get("elapsed_s") or 0.0 for s in shards] or [0.0])
    rows = sum(k["rows"] for k in kept.values())
    engine_meta = {**meta["engine"], "path": engine_stats["path"]}
    rd.update_meta(ended_at=utc_now_iso(), end_reason=end_reason, rows=rows, engine=engine_meta,
                   elapsed_s=run_span(elapsed, plan.duration, end_reason, engine_stats.get("capped", 0)),
                   engine_stats=engine_stats, collectors=collected,
                   distributed={**dist_meta, "shards": shards, "lost_shards": lost_list},
                   coordinator=machine_info())
    return {"end_reason": end_reason, "lost_shards": lost_list}
