"""The machine sampler: once a second, the machine's CPU counters, this process tree's CPU and the load average.

Every run has one (``run_local`` adds it to the collectors; ``perfbench ab`` runs it around its blocks),
so a comparison can tell a run measured on a quiet machine from one measured beside another job
(``perfbench.analysis.machine`` derives other processes' CPU, steal and load from the samples, and
``perfbench.compare.noise`` refuses to judge a run that was too busy). It samples from its own thread,
on absolute ticks, like the resource sampler; on a system without ``/proc/stat`` it writes nothing.

``machine.parquet`` (one row per sample)::

    t_ns         int64   ns from the run's start (the requests' time base)
    busy_ticks   int64   the machine's cumulative busy CPU ticks   steal_ticks int64  stolen ticks
    total_ticks  int64   all ticks (busy + idle + iowait + steal)
    own_cpu_s    float64 this process tree's cumulative CPU seconds (user + system, reaped children too)
    load1 / load5 / load15   float64 the load average
    machine_cpu / own_cpu / other_cpu   float64 cores over the interval before this sample (null first)
    steal_share  float64 stolen share of all CPU time over that interval
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..analysis.machine import MACHINE, derive, parse_proc_stat
from ..errors import ConfigError
from .collectors import RunContext

PROC_STAT = "/proc/stat"

SCHEMA = pa.schema([
    pa.field("t_ns", pa.int64(), nullable=False),
    pa.field("busy_ticks", pa.int64()), pa.field("steal_ticks", pa.int64()), pa.field("total_ticks", pa.int64()),
    pa.field("own_cpu_s", pa.float64()),
    pa.field("load1", pa.float64()), pa.field("load5", pa.float64()), pa.field("load15", pa.float64()),
    pa.field("machine_cpu", pa.float64()), pa.field("own_cpu", pa.float64()), pa.field("other_cpu", pa.float64()),
    pa.field("steal_share", pa.float64()),
])


def tree_cpu_s() -> float:
    """CPU seconds (user + system) of this process and its descendants, reaped children included."""
    import psutil

    me = psutil.Process()
    t = me.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            c = child.cpu_times()
            total += c.user + c.system
    return float(total)


class MachineSampler:
    """Collector: the machine's load every ``interval_s`` (default 1 s) into ``machine.parquet``."""

    name = "machine"

    def __init__(self, interval_s: float = 1.0, *, read_stat: Callable[[], str] | None = None,
                 own_cpu: Callable[[], float] = tree_cpu_s):
        self.interval_s = float(interval_s)
        self._read_stat = read_stat or (lambda: Path(PROC_STAT).read_text())
        self._own_cpu = own_cpu
        self.rows: dict[str, list[Any]] = {f.name: [] for f in SCHEMA if f.name not in (
            "machine_cpu", "own_cpu", "other_cpu", "steal_share")}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_ns = 0
        self.available = True

    async def start(self, ctx: RunContext) -> None:
        self.start_sync()

    async def stop(self, ctx: RunContext) -> dict[str, Any]:
        return self.stop_sync(ctx.run_dir, ctx.run_ns if ctx.t0_ns is not None else None)

    def start_sync(self) -> None:
        self._started_ns = time.perf_counter_ns()
        try:
            self._sample()
        except (OSError, ConfigError) as exc:  # no /proc/stat (not Linux): nothing to record
            self.available = False
            self.errors.append(f"cannot read {PROC_STAT}: {exc}")
            return
        self._thread = threading.Thread(target=self._loop, name="perfbench-machine", daemon=True)
        self._thread.start()

    def stop_sync(self, run_dir: str | Path, to_run_ns: Callable[[int], int] | None = None) -> dict[str, Any]:
        """Stop (one last sample first), write ``machine.parquet``; what meta.json keeps."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 4 * self.interval_s))
        info: dict[str, Any] = {"file": MACHINE, "interval_s": self.interval_s, "cpu_count": os.cpu_count() or 1,
                                "clk_tck": _clk_tck()}
        if not self.available:
            return {**info, "file": None, "errors": self.errors[:10]}
        with contextlib.suppress(OSError):
            self._sample()
        conv = to_run_ns or (lambda ns: ns - self._started_ns)
        rows = dict(self.rows)
        rows["t_ns"] = [conv(t) for t in rows["t_ns"]]
        rows.update(derive(rows["busy_ticks"], rows["steal_ticks"], rows["total_ticks"], rows["own_cpu_s"],
                           cpu_count=info["cpu_count"], clk_tck=info["clk_tck"]))
        table = pa.Table.from_pydict(rows, schema=SCHEMA)
        path = Path(run_dir) / MACHINE
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(table, tmp, compression="zstd")
        tmp.replace(path)
        info["samples"] = table.num_rows
        if self.errors:
            info["errors"] = self.errors[:10]
        return info

    def _loop(self) -> None:
        step = int(self.interval_s * 1e9)
        next_ns = self._started_ns + step
        while not self._stop.is_set():
            now = time.perf_counter_ns()
            if now < next_ns and self._stop.wait((next_ns - now) / 1e9):
                break
            now = time.perf_counter_ns()
            next_ns += (max(now - next_ns, 0) // step + 1) * step
            try:
                self._sample()
            except Exception as exc:  # a sampler must never sink the run
                self.errors.append(f"{type(exc).__name__}: {exc}")
                if len(self.errors) > 100:
                    break

    def _sample(self) -> None:
        ticks = parse_proc_stat(self._read_stat())
        own = self._own_cpu()
        try:
            load = os.getloadavg()
        except OSError:
            load = (float("nan"),) * 3
        r = self.rows
        r["t_ns"].append(time.perf_counter_ns())
        r["busy_ticks"].append(ticks.busy)
        r["steal_ticks"].append(ticks.steal)
        r["total_ticks"].append(ticks.total)
        r["own_cpu_s"].append(own)
        for k, v in zip(("load1", "load5", "load15"), load, strict=True):
            r[k].append(v)


def _clk_tck() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError, AttributeError):
        return 100
