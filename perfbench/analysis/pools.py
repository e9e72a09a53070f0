"""The service's pools and queues over the run (gauges.parquet), joined by time to the load.

Pure Polars functions over the gauge rows the agent sampled (``perfbench.agent.pools``: ``t_ns``, ``name``,
``target``, ``value``; ``t_ns`` on the run's time base, ns from its start) and the engine's requests:

- :func:`pool_per_second`: per pool and second, the most connections checked out at once against the
  pool's size and capacity, how long checkouts waited, and whether the pool was exhausted then;
- :func:`loop_ready_per_second`: per loop and second, the ready queue's depth (mean and max);
- :func:`pool_vs_load`: the pool's seconds beside the load's (requests sent, completed, p99 latency);
- :func:`pool_findings`: per pool, how many seconds it was exhausted, from when, and its waits, with a
  sentence for ``perfbench explain``.

A pool is *exhausted* in a second when every connection it may open was checked out at once
(``checked_out_max >= capacity``) and a checkout waited ``EXHAUSTED_WAIT_MS`` or more. A pool with
unlimited overflow has no capacity and is never called exhausted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from ..numbers import ms_text
from ..rundir import GAUGES
from .results import pct

EXHAUSTED_WAIT_MS = 1.0  # a checkout that waited this long on a full pool waited for a connection

POOL_SCHEMA = {"target": pl.String, "t_s": pl.Float64, "checked_out_max": pl.Float64, "size": pl.Float64,
               "capacity": pl.Float64, "overflow_max": pl.Float64, "waiting_max": pl.Float64,
               "checkouts": pl.Float64, "wait_ms": pl.Float64, "wait_max_ms": pl.Float64,
               "connects": pl.Float64, "exhausted": pl.Boolean}
_AGG = {"checked_out_max": ("pool.checked_out_max", "max"), "size": ("pool.size", "max"),
        "capacity": ("pool.capacity", "max"), "overflow_max": ("pool.overflow", "max"),
        "waiting_max": ("pool.waiting_max", "max"), "checkouts": ("pool.checkouts", "sum"),
        "wait_ms": ("pool.wait_ms", "sum"), "wait_max_ms": ("pool.wait_max_ms", "max"),
        "connects": ("pool.connects", "sum")}


def read_gauges(path: str | Path) -> pl.LazyFrame | None:
    """gauges.parquet of a run directory, or None when the run has none (no agent, or an older one)."""
    p = Path(path) / GAUGES
    return pl.scan_parquet(p) if p.exists() else None


def _seconds(gauges: pl.LazyFrame | pl.DataFrame, every_s: float) -> pl.LazyFrame:
    return gauges.lazy().with_columns(((pl.col("t_ns") // int(every_s * 1e9)) * every_s).cast(pl.Float64)
                                      .alias("t_s"))


def pool_per_second(gauges: pl.LazyFrame | pl.DataFrame | None, every_s: float = 1.0) -> pl.DataFrame:
    """Per pool (``target``) and ``every_s`` bucket (``t_s``, from the run's start): ``checked_out_max``,
    ``size``, ``capacity`` (null: unlimited overflow), ``overflow_max``, ``waiting_max``, ``checkouts``,
    ``wait_ms`` (the summed waits), ``wait_max_ms`` (the longest), ``connects`` (connections opened) and
    ``exhausted``; sorted by target and time."""
    if gauges is None:
        return pl.DataFrame(schema=POOL_SCHEMA)
    lf = _seconds(gauges, every_s).filter(pl.col("name").str.starts_with("pool."))
    aggs = []
    for col, (name, how) in _AGG.items():
        v = pl.col("value").filter(pl.col("name") == name)
        aggs.append((v.max() if how == "max" else v.sum()).cast(pl.Float64).alias(col))
    out = lf.group_by("target", "t_s").agg(*aggs).with_columns(
        ((pl.col("checked_out_max") >= pl.col("capacity")) & (pl.col("wait_max_ms") >= EXHAUSTED_WAIT_MS))
        .fill_null(False).alias("exhausted"))
    # a sum over no rows is 0, a max null: a bucket without a gauge keeps null for the max ones only
    return out.select(list(POOL_SCHEMA)).sort("target", "t_s").collect()


def loop_ready_per_second(gauges: pl.LazyFrame | pl.DataFrame | None, every_s: float = 1.0) -> pl.DataFrame:
    """Per loop (``target``) and bucket: ``ready_mean`` and ``ready_max``, the callbacks in its ready queue
    as sampled (``loop.ready``); sorted by target and time."""
    schema = {"target": pl.String, "t_s": pl.Float64, "ready_mean": pl.Float64, "ready_max": pl.Float64,
              "samples": pl.UInt32}
    if gauges is None:
        return pl.DataFrame(schema=schema)
    return (_seconds(gauges, every_s).filter(pl.col("name") == "loop.ready").group_by("target", "t_s")
            .agg(pl.col("value").mean().alias("ready_mean"), pl.col("value").max().alias("ready_max"),
                 pl.len().cast(pl.UInt32).alias("samples"))
            .sort("target", "t_s").collect().cast(schema))  # type: ignore[arg-type]


def pool_vs_load(per_second: pl.DataFrame, requests: pl.LazyFrame | pl.DataFrame, every_s: float = 1.0
                 ) -> pl.DataFrame:
    """The pool's buckets (:func:`pool_per_second`) beside the load's: ``sent`` (requests sent in the bucket,
    per second), ``completed`` (per second, by completion time) and ``p99_ms`` (latency of the requests sent
    in it); every bucket of either side, per pool."""
    step = int(every_s * 1e9)
    req = requests.lazy()
    sent = req.group_by(((pl.col("start_ns") // step) * every_s).cast(pl.Float64).alias("t_s")).agg(
        (pl.len() / every_s).alias("sent"), (pct(pl.col("latency_ns"), 0.99) / 1e6).alias("p99_ms"))
    done = req.group_by(((pl.col("end_ns") // step) * every_s).cast(pl.Float64).alias("t_s")).agg(
        (pl.len() / every_s).alias("completed"))
    load = sent.join(done, on="t_s", how="full", coalesce=True).collect()
    targets = per_second.select("target").unique().sort("target")
    if targets.height == 0:
        return per_second.join(load, on="t_s", how="left")
    grid = targets.join(pl.concat([per_second.select("t_s"), load.select("t_s")]).unique(), how="cross")
    return (grid.join(per_second, on=["target", "t_s"], how="left").join(load, on="t_s", how="left")
            .with_columns(pl.col("sent").fill_null(0.0), pl.col("completed").fill_null(0.0))
            .sort("target", "t_s"))


def pool_findings(per_second: pl.DataFrame) -> list[dict[str, Any]]:
    """Per pool: ``{"target", "seconds", "exhausted_seconds", "first_exhausted_s", "checked_out_max",
    "capacity", "size", "wait_ms", "wait_max_ms", "checkouts", "exhausted", "text"}``; pools that were
    exhausted first, then by total wait."""
    out = []
    for (target,), g in per_second.group_by("target"):
        ex = g.filter(pl.col("exhausted"))
        cap = g["capacity"].max()
        row: dict[str, Any] = {
            "target": target, "seconds": g.height, "exhausted_seconds": ex.height,
            "first_exhausted_s": ex["t_s"].min() if ex.height else None,
            "checked_out_max": g["checked_out_max"].max(), "capacity": cap, "size": g["size"].max(),
            "wait_ms": float(g["wait_ms"].sum()), "wait_max_ms": g["wait_max_ms"].max(),
            "checkouts": int(g["checkouts"].sum()), "exhausted": ex.height > 0}
        row["text"] = pool_text(row)
        out.append(row)
    return sorted(out, key=lambda r: (not r["exhausted"], -r["wait_ms"], str(r["target"])))


def _n(v: Any) -> str:
    return "?" if v is None else f"{v:.0f}"


def pool_text(f: dict[str, Any]) -> str:
    """A finding of :func:`pool_findings` as a phrase."""
    if f["exhausted"]:
        return (f"connection pool exhausted: all {_n(f['capacity'])} connections of {f['target']} checked out "
                f"with checkouts waiting in {f['exhausted_seconds']} of {f['seconds']} s (from "
                f"t={f['first_exhausted_s']:.0f} s), waits up to {ms_text(f['wait_max_ms'] or 0.0)}")
    return (f"{f['target']}: at most {_n(f['checked_out_max'])} of {_n(f['capacity'])} connections checked out, "
            f"waits up to {ms_text(f['wait_max_ms'] or 0.0)}")
