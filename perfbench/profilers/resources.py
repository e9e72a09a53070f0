"""The resource sampler: a target process's CPU, memory, files, connections and threads over time.

    sampler = ResourceSampler(pid, interval_s=0.5)          # or ResourceSampler(demo) for a DemoProcess
    run_load(url, plan, collectors=[sampler])                # -> <run>/resources.parquet
    resources = read_resources(run_path)                     # a Polars frame, t_s on the requests' time base

It samples from its own thread (never the engine's event loop, so a busy loop does not delay the
samples, and samples do not delay requests), on a fixed grid of absolute ticks: a late tick is
taken once and the missed ones are skipped (and counted), never bunched up.

Two rates. Every ``interval_s``: CPU % (of one core, as ``top``), user and system CPU seconds, RSS,
VMS, file descriptors (``num_fds``: open files, sockets and pipes), threads and context switches,
all in one ``Process.oneshot()``. Every ``slow_interval_s`` (at most 1 Hz): the process's
inet connections (``net_connections`` parses /proc/net/tcp*, about 8.5 ms, more with many
TIME_WAIT sockets) and USS (``memory_full_info``, reads smaps). Columns of the slow fields are
null on the other rows.

Every run measures its own cost (CPU ms per fast and slow sample, the share of one core) into
``meta.json`` under ``collectors.resources.cost``; ``docs/design.md`` has the figures.

``resources.parquet`` (one row per sample)::

    t_ns          int64   ns from the run's start (RunContext.run_ns: the requests' time base;
                          negative for the baseline sample taken before the first request)
    cpu_percent   float64 CPU use since the previous sample, % of one core (null on the first)
    cpu_user_s    float64 cumulative user CPU seconds     cpu_system_s  float64 cumulative system
    rss           int64   resident set size, bytes        vms           int64 virtual size, bytes
    uss           int64   unique set size, bytes (slow rows only, null elsewhere)
    fds           int32   open file descriptors           threads       int32 OS threads
    connections   int32   inet connections (slow rows only, null elsewhere)
    ctx_voluntary int64   cumulative voluntary context switches
    ctx_involuntary int64 cumulative involuntary context switches
    slow          bool    whether the slow fields were sampled on this row
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ConfigError, ProfilerError
from ..rundir import RESOURCES

SCHEMA = pa.schema([
    pa.field("t_ns", pa.int64(), nullable=False),
    pa.field("cpu_percent", pa.float64()),
    pa.field("cpu_user_s", pa.float64()),
    pa.field("cpu_system_s", pa.float64()),
    pa.field("rss", pa.int64()),
    pa.field("vms", pa.int64()),
    pa.field("uss", pa.int64()),
    pa.field("fds", pa.int32()),
    pa.field("threads", pa.int32()),
    pa.field("connections", pa.int32()),
    pa.field("ctx_voluntary", pa.int64()),
    pa.field("ctx_involuntary", pa.int64()),
    pa.field("slow", pa.bool_(), nullable=False),
])


def resolve_pid(target: Any) -> int:
    """A PID from an int, a ``psutil.Process``, or anything with a ``pid`` attribute (DemoProcess)."""
    pid = getattr(target, "pid", target)
    if callable(pid):  # psutil.Process.pid is a property, but be lenient with a method
        pid = pid()
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        raise ProfilerError(f"no process to watch: {target!r} has no PID (was the target started?)")
    return pid


def open_process(target: Any, what: str) -> psutil.Process:
    """``psutil.Process`` for ``target`` with a clear error if it does not exist or cannot be read."""
    pid = resolve_pid(target)
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            raise psutil.ZombieProcess(pid)
        with proc.oneshot():
            proc.memory_info()
            proc.num_fds()
    except psutil.ZombieProcess:
        raise ProfilerError(f"{what}: process {pid} has already exited (zombie); nothing to watch") from None
    except psutil.NoSuchProcess:
        raise ProfilerError(f"{what}: no process with PID {pid} (it has exited or never existed)") from None
    except psutil.AccessDenied:
        raise ProfilerError(f"{what}: not allowed to read process {pid} (run as its user or as root)") from None
    return proc


@dataclass
class _Cost:
    fast_ns: list[int] = field(default_factory=list)
    slow_ns: list[int] = field(default_factory=list)

    def summary(self, wall_s: float) -> dict[str, Any]:
        def stats(xs: list[int]) -> dict[str, Any]:
            if not xs:
                return {"samples": 0, "mean_ms": None, "max_ms": None}
            return {"samples": len(xs), "mean_ms": round(sum(xs) / len(xs) / 1e6, 4),
                    "max_ms": round(max(xs) / 1e6, 4)}

        total = (sum(self.fast_ns) + sum(self.slow_ns)) / 1e9
        return {"method": "thread CPU time (time.thread_time_ns) spent taking each sample",
                "fast": stats(self.fast_ns), "slow": stats(self.slow_ns), "total_cpu_s": round(total, 6),
                "share_of_one_core": round(total / wall_s, 6) if wall_s > 0 else None}


class ResourceSampler:
    """Collector: samples one process every ``interval_s`` into ``resources.parquet``.

    ``target``: a PID, a ``psutil.Process`` or an object with ``.pid`` (e.g. ``DemoProcess``; the
    PID is read when the run starts, so the sampler can be built before the target is started).
    ``slow_interval_s`` (≥ 1 s) paces connections and USS; ``connections=False`` / ``uss=False``
    leave them out. The samples are kept in memory (about 100 bytes each: a 24-hour soak at
    0.5 s is about 17 MB) and written when the run stops; ``max_samples`` bounds them.

    If the target exits during the run, sampling stops there and ``stop`` reports when.
    """

    name = "resources"

    def __init__(self, target: Any, *, interval_s: float = 0.5, slow_interval_s: float = 1.0,
                 connections: bool = True, uss: bool = True, max_samples: int = 1_000_000):
        if not interval_s > 0:
            raise ConfigError(f"interval_s must be positive, got {interval_s!r}")
        if slow_interval_s < 1.0:
            raise ConfigError(f"slow_interval_s must be at least 1 s (connections cost ~8.5 ms each), "
                             f"got {slow_interval_s!r}")
        self.target = target
        self.interval_s = float(interval_s)
        self.slow_interval_s = float(slow_interval_s)
        self.connections = connections
        self.uss = uss
        self.max_samples = max_samples
        self.rows: dict[str, list] = {f.name: [] for f in SCHEMA}
        self.cost = _Cost()
        self.skipped_ticks = 0
        self.exited_at_ns: int | None = None
        self.errors: list[str] = []
        self._proc: psutil.Process | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._prev_cpu: tuple[int, float] | None = None  # (perf_counter_ns, user+system s)
        self._next_slow_ns = 0
        self._started_ns = 0

    # -- the collector seam ------------------------------------------------------------------------

    async def start(self, ctx) -> None:
        self.start_sync()

    async def stop(self, ctx) -> dict[str, Any]:
        return self.stop_sync(ctx.run_dir, ctx.run_ns if ctx.t0_ns is not None else None)

    # -- usable without the engine (e.g. around a notebook cell) ------------------------------------

    def start_sync(self) -> None:
        self._proc = open_process(self.target, "resource sampler")
        self._started_ns = time.perf_counter_ns()
        self._next_slow_ns = self._started_ns
        self._sample()  # a baseline before the first request
        self._thread = threading.Thread(target=self._loop, name="perfbench-resources", daemon=True)
        self._thread.start()

    def stop_sync(self, run_dir: str | Path, to_run_ns=None) -> dict[str, Any]:
        """Stop sampling (one last sample first), write ``resources.parquet``; what meta.json keeps."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 4 * self.interval_s))
        if self.exited_at_ns is None:
            self._sample(force_slow=True)  # the last sample comes after the last response
        wall_s = (time.perf_counter_ns() - self._started_ns) / 1e9
        conv = to_run_ns or (lambda ns: ns - self._started_ns)
        rows = dict(self.rows)
        rows["t_ns"] = [conv(t) for t in rows["t_ns"]]
        table = pa.Table.from_pydict(rows, schema=SCHEMA)
        path = Path(run_dir) / RESOURCES
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(table, tmp, compression="zstd")
        tmp.replace(path)
        out: dict[str, Any] = {
            "file": RESOURCES, "pid": self._proc.pid if self._proc else None, "samples": table.num_rows,
            "interval_s": self.interval_s, "slow_interval_s": self.slow_interval_s,
            "skipped_ticks": self.skipped_ticks, "cost": self.cost.summary(wall_s),
        }
        if self.exited_at_ns is not None:
            out["target_exited_at_s"] = round(conv(self.exited_at_ns) / 1e9, 3)
            out["note"] = "the target process exited during the run; sampling stopped there"
        if self.errors:
            out["errors"] = self.errors[:10]
        return out

    # -- sampling ----------------------------------------------------------------------------------

    def _loop(self) -> None:
        step = int(self.interval_s * 1e9)
        next_ns = self._started_ns + step
        while not self._stop.is_set() and self.exited_at_ns is None:
            now = time.perf_counter_ns()
            if now < next_ns:
                if self._stop.wait((next_ns - now) / 1e9):
                    break
                now = time.perf_counter_ns()
            late = (now - next_ns) // step
            if late > 0:  # the thread was starved: take one sample now, skip the missed ticks
                self.skipped_ticks += int(late)
            next_ns += (late + 1) * step
            if len(self.rows["t_ns"]) >= self.max_samples:
                self.errors.append(f"max_samples ({self.max_samples}) reached; sampling stopped")
                break
            self._sample()

    def _sample(self, force_slow: bool = False) -> None:
        proc = self._proc
        assert proc is not None
        c0 = time.thread_time_ns()
        now = time.perf_counter_ns()
        slow = force_slow or now >= self._next_slow_ns
        try:
            with proc.oneshot():
                cpu = proc.cpu_times()
                mem = proc.memory_info()
                fds = proc.num_fds()
                threads = proc.num_threads()
                ctx = proc.num_ctx_switches()
            conns = uss = None
            if slow:
                self._next_slow_ns = now + int(self.slow_interval_s * 1e9)
                if self.connections:
                    conns = len(proc.net_connections(kind="inet"))
                if self.uss:
                    uss = proc.memory_full_info().uss
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            self.exited_at_ns = now
            return
        except psutil.AccessDenied as exc:
            self.errors.append(f"access denied: {exc}")
            return
        used = cpu.user + cpu.system
        pct = None
        if self._prev_cpu is not None and now > self._prev_cpu[0]:
            pct = 100.0 * (used - self._prev_cpu[1]) / ((now - self._prev_cpu[0]) / 1e9)
        self._prev_cpu = (now, used)
        r = self.rows
        r["t_ns"].append(now)
        r["cpu_percent"].append(pct)
        r["cpu_user_s"].append(cpu.user)
        r["cpu_system_s"].append(cpu.system)
        r["rss"].append(mem.rss)
        r["vms"].append(mem.vms)
        r["uss"].append(uss)
        r["fds"].append(fds)
        r["threads"].append(threads)
        r["connections"].append(conns)
        r["ctx_voluntary"].append(ctx.voluntary)
        r["ctx_involuntary"].append(ctx.involuntary)
        r["slow"].append(slow)
        (self.cost.slow_ns if slow else self.cost.fast_ns).append(time.thread_time_ns() - c0)


def read_resources(run_dir: str | Path):
    """``resources.parquet`` of a run as a Polars frame with ``t_s`` (s from the run's start) and ``rss_mb``."""
    import polars as pl

    path = Path(run_dir) / RESOURCES
    if not path.exists():
        raise FileNotFoundError(f"{run_dir}: no {RESOURCES}; was the run made with a ResourceSampler "
                                f"(collectors=[ResourceSampler(pid)])?")
    return pl.read_parquet(path).with_columns(
        (pl.col("t_ns") / 1e9).alias("t_s"), (pl.col("rss") / 2**20).alias("rss_mb"),
        (pl.col("uss") / 2**20).alias("uss_mb"))
