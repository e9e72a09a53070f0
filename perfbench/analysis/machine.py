"""The machine's other load during a run: pure derivations from raw samples, and the summary's ``machine`` block.

Once a second the generator reads three things (``perfbench.engine.machine``):

- the kernel's cumulative CPU counters of the whole machine (the aggregate ``cpu`` line of ``/proc/stat``,
  in clock ticks): ``busy`` = user + nice + system + irq + softirq (guest time is inside user),
  ``steal`` (time the hypervisor gave this VM's CPUs to someone else) and ``total`` = busy + idle +
  iowait + steal;
- the CPU seconds (user + system) used so far by this process tree: the generator and its descendants
  (targets it started, e.g. ``run --start`` or a test's demo server), reaped children included;
- the load average (1, 5 and 15 minutes).

Between two samples, with ``dticks`` the change of ``total`` and ``n`` CPUs, the interval lasted
``dticks / n / clk_tck`` seconds of the kernel's accounting, and

- ``machine_cpu`` = d(busy) / clk_tck / interval: cores busy on the whole machine;
- ``own_cpu`` = d(own CPU seconds) / interval: cores used by this process tree;
- ``other_cpu`` = max(0, machine_cpu - own_cpu): cores used by every other process;
- ``steal_share`` = d(steal) / dticks: the share of the machine's CPU time stolen.

All in cores (1.0 = one CPU busy for the whole interval). ``machine.parquet`` keeps the raw counters
and these derived columns, one row per sample; ``machine_summary`` gives summary.json's ``machine``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import ConfigError, RunDirError

MACHINE = "machine.parquet"

# /proc/stat's aggregate line: user nice system idle iowait irq softirq steal guest guest_nice
_BUSY = (0, 1, 2, 5, 6)
_IDLE = (3, 4)
_STEAL = 7


@dataclass(frozen=True)
class CpuTicks:
    """The whole machine's cumulative CPU time, in clock ticks (``/proc/stat``)."""

    busy: int
    steal: int
    total: int


def parse_proc_stat(text: str) -> CpuTicks:
    """The aggregate ``cpu`` line of ``/proc/stat`` as busy / steal / total ticks."""
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            v = [int(x) for x in parts[1:]] + [0] * 10
            busy = sum(v[i] for i in _BUSY)
            steal = v[_STEAL]
            return CpuTicks(busy, steal, busy + sum(v[i] for i in _IDLE) + steal)
    raise ConfigError("/proc/stat: no aggregate 'cpu' line (expected 'cpu  user nice system idle ...')")


def interval(prev: CpuTicks, cur: CpuTicks, own_prev_s: float, own_cur_s: float, *, cpu_count: int,
             clk_tck: int) -> dict[str, float | None]:
    """The derived load between two samples (see the module docstring); None where the interval is empty."""
    dticks = cur.total - prev.total
    if dticks <= 0 or cpu_count <= 0 or clk_tck <= 0:
        return {"machine_cpu": None, "own_cpu": None, "other_cpu": None, "steal_share": None}
    seconds = dticks / cpu_count / clk_tck
    machine = (cur.busy - prev.busy) / clk_tck / seconds
    own = max(own_cur_s - own_prev_s, 0.0) / seconds
    return {"machine_cpu": machine, "own_cpu": own, "other_cpu": max(machine - own, 0.0),
            "steal_share": (cur.steal - prev.steal) / dticks}


def derive(busy: Sequence[int], steal: Sequence[int], total: Sequence[int], own_s: Sequence[float], *,
           cpu_count: int, clk_tck: int) -> dict[str, list[float | None]]:
    """The derived columns of a series of raw samples (null on the first: no interval before it)."""
    out: dict[str, list[float | None]] = {"machine_cpu": [], "own_cpu": [], "other_cpu": [], "steal_share": []}
    for i in range(len(busy)):
        if i == 0:
            d: dict[str, float | None] = dict.fromkeys(out)
        else:
            d = interval(CpuTicks(busy[i - 1], steal[i - 1], total[i - 1]), CpuTicks(busy[i], steal[i], total[i]),
                         own_s[i - 1], own_s[i], cpu_count=cpu_count, clk_tck=clk_tck)
        for k in out:
            out[k].append(d[k])
    return out


def _stat(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "max": None}
    return {"mean": round(math.fsum(values) / len(values), 4), "max": round(max(values), 4)}


def machine_summary(frame: pl.DataFrame, *, cpu_count: int | None = None, clk_tck: int | None = None,
                    ) -> dict[str, Any]:
    """summary.json's ``machine`` block from ``machine.parquet``'s rows: mean and max of each derived
    column over the intervals (each interval one value, as they are all about a second long)."""
    def col(name: str) -> list[float]:
        return [float(x) for x in frame[name].to_list() if x is not None] if name in frame.columns else []

    out: dict[str, Any] = {"samples": frame.height, "file": MACHINE}
    if cpu_count is not None:
        out["cpu_count"] = cpu_count
    if clk_tck is not None:
        out["clk_tck"] = clk_tck
    out["other_cpu_cores"] = _stat(col("other_cpu"))
    out["own_cpu_cores"] = _stat(col("own_cpu"))
    out["machine_cpu_cores"] = _stat(col("machine_cpu"))
    out["steal_share"] = _stat(col("steal_share"))
    out["load1"] = _stat(col("load1"))
    out["method"] = ("other_cpu = machine busy (/proc/stat) - this process tree's CPU, per ~1 s interval, "
                     "in cores; steal_share of all CPU time; load1 = 1-minute load average")
    return out


def read_machine(run_dir: str | Path) -> pl.DataFrame | None:
    """A run's ``machine.parquet`` (None when the run has none: older runs, other platforms)."""
    path = Path(run_dir) / MACHINE
    if not path.is_file():
        return None
    try:
        return pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise RunDirError(f"{path}: could not be read ({type(exc).__name__}: {str(exc)[:200]})") from None


def summary_of_run(run_dir: str | Path, meta: dict[str, Any]) -> dict[str, Any] | None:
    """The ``machine`` block of a run directory (None without machine.parquet)."""
    frame = read_machine(run_dir)
    if frame is None:
        return None
    info = (meta.get("collectors") or {}).get("machine") or {}
    return machine_summary(frame, cpu_count=info.get("cpu_count"), clk_tck=info.get("clk_tck"))
