"""The two sides of an A/B run (``perfbench ab``): each side's own summary, from the ``side`` column.

An A/B run's ``requests.parquet`` holds both sides' rows with a ``side`` and a ``block`` column;
its ``summary.json`` has the usual figures over all rows and, under ``sides``, one summary per
side (the shape of ``summary.json`` itself), its throughput counted over that side's blocks.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from .results import DEFAULT_LAG_BOUND_MS, Run, summarize


def is_ab(run: Run) -> bool:
    """Whether the run is an A/B run (its rows carry a ``side``)."""
    return run.meta.get("kind") == "ab" or "side" in pl.scan_parquet(run.path / "requests.parquet").collect_schema()


def side_summaries(run: Run, *, durations: dict[str, float] | None = None,
                   engine: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Per side, the summary of its rows. ``durations``: the seconds of each side's blocks (default:
    from ``meta.json``'s schedule, else half the run); ``engine``: each side's engine counts."""
    schedule = (run.meta.get("ab") or {})
    lf = run.requests
    sides = lf.select(pl.col("side").unique()).collect()["side"].sort().to_list()
    lag_bound = run.meta.get("parameters", {}).get("lag_bound_ms", DEFAULT_LAG_BOUND_MS)
    out = {}
    for side in sides:
        duration = (durations or {}).get(side)
        if duration is None:
            duration = run.duration_s / 2 if schedule.get("pairs") is None else schedule["pairs"] * schedule["block_s"]
        counts = (engine or run.meta.get("ab_engine_stats") or {}).get(side) or {}
        rows = lf.filter(pl.col("side") == side).collect().lazy()
        out[side] = summarize(rows, duration_s=duration, planned=counts.get("planned"), engine=counts,
                              lag_bound_ms=lag_bound, in_memory=True)
    return out
