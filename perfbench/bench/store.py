"""Benchmark results as a run directory (``kind: bench``) and as a table.

Layout of ``data/runs/<run-id>/`` for micro-benchmarks::

    meta.json        kind "bench", run id, start and end, machine and versions, code commit, and per
                     benchmark how it ran (loops, options, timer resolution) and its cost per call
    rounds.parquet   one row per measured round (perfbench.rundir.BENCH_SCHEMA)
    summary.json     per benchmark: the statistics of perfbench.bench.stats.round_stats and cost per call

``perfbench compare`` and ``perfbench baseline save`` read such a directory through
``perfbench.importers`` (each round is a sample: latency = its time per call).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import RunDirError
from ..rundir import (
    BENCH_KIND,
    BENCH_ROUNDS,
    BENCH_SCHEMA,
    META,
    SUMMARY,
    RunDir,
    git_commit,
    machine_info,
    new_run_id,
    read_json,
    utc_now_iso,
    write_json,
)
from .runner import BenchResult
from .stats import round_stats

TABLE_SCHEMA: dict[str, Any] = {
    "benchmark": pl.String, "param": pl.String, "min_us": pl.Float64, "max_us": pl.Float64, "mean_us": pl.Float64,
    "stddev_us": pl.Float64, "median_us": pl.Float64, "q1_us": pl.Float64, "q3_us": pl.Float64,
    "iqr_us": pl.Float64, "outliers": pl.Int64, "ops": pl.Float64,
    "rounds": pl.Int64, "loops": pl.Int64, "sql_per_call": pl.Float64, "sql_ms_per_call": pl.Float64,
    "n_plus_one": pl.Int64, "mem_peak_kib": pl.Float64, "mem_net_kib": pl.Float64,
}


def param_text(param: Any) -> str | None:
    return None if param is None else json.dumps(param, default=str)


def table_row(name: str, param: Any, stats: dict[str, Any], sql: dict[str, Any] | None,
              memory: dict[str, Any] | None) -> dict[str, Any]:
    """One benchmark's row of the results table (times in µs, memory in KiB) from its statistics."""
    us = {f"{k}_us": stats[f"{k}_ns"] / 1e3 for k in ("min", "max", "mean", "stddev", "median", "q1", "q3", "iqr")}
    return {"benchmark": name, "param": param_text(param), **us, "outliers": stats["outliers"], "ops": stats["ops"],
            "rounds": stats["rounds"], "loops": stats["loops"],
            "sql_per_call": None if sql is None else float(sql["statements_per_call"]),
            "sql_ms_per_call": None if sql is None else sql["sql_ms_per_call"],
            "n_plus_one": None if sql is None else len(sql["n_plus_one"]),
            "mem_peak_kib": None if memory is None else memory["peak_bytes"] / 1024,
            "mem_net_kib": None if memory is None else memory["net_bytes"] / 1024}


def table(results: Sequence[BenchResult]) -> pl.DataFrame:
    """The results table: one row per benchmark."""
    return pl.DataFrame([table_row(r.name, r.param, r.stats, r.sql, r.memory) for r in results], schema=TABLE_SCHEMA)


def rounds_table(results: Sequence[BenchResult]) -> pa.Table:
    """Every measured round of every benchmark (BENCH_SCHEMA); benchmarks follow each other in time."""
    cols: dict[str, list] = {f.name: [] for f in BENCH_SCHEMA}
    offset = 0
    for r in results:
        n = len(r.per_call_ns)
        cols["benchmark"] += [r.name] * n
        cols["param"] += [param_text(r.param)] * n
        cols["worker"] += r.workers
        cols["round"] += list(range(n))
        cols["start_ns"] += [offset + s for s in r.starts_ns]
        cols["loops"] += [r.loops] * n
        cols["per_call_ns"] += r.per_call_ns
        if n:
            offset += r.starts_ns[-1] + int(r.per_call_ns[-1] * r.loops) + 1
    return pa.table(cols, schema=BENCH_SCHEMA)


def save_run(results: Sequence[BenchResult], runs_dir: str | os.PathLike = "data/runs", label: str = "bench",
             *, run_id: str | None = None, started_at: str | None = None,
             extra_meta: dict[str, Any] | None = None) -> Path:
    """Write ``results`` as a new run directory under ``runs_dir`` (named ``run_id``, default a new id); its path."""
    if not results:
        raise RunDirError("no benchmark results to save (no benchmark ran)")
    names = [r.name for r in results]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise RunDirError(f"benchmark names must be unique in a run; repeated: {', '.join(dup)}")
    run = RunDir.create(runs_dir, run_id or new_run_id(label))
    meta = {"kind": BENCH_KIND, "label": label, "started_at": started_at or utc_now_iso(),
            "ended_at": utc_now_iso(), "end_reason": "completed", "machine": machine_info(),
            "code_commit": git_commit(), "benchmarks": [r.info() for r in results], **(extra_meta or {})}
    run.write_meta(meta)
    pq.write_table(rounds_table(results), run.path / BENCH_ROUNDS, compression="zstd")
    write_json(run.path / SUMMARY, {"kind": BENCH_KIND, "benchmarks": {
        r.name: {"param": r.param, "stats": r.stats, "sql": r.sql, "memory": r.memory} for r in results}})
    return run.path


def is_bench_run(path: str | os.PathLike) -> bool:
    p = Path(path)
    if not (p / META).is_file():
        return False
    try:
        return read_json(p / META).get("kind") == BENCH_KIND
    except RunDirError:
        return False


def read_rounds(path: str | os.PathLike) -> pl.DataFrame:
    """The rounds of a bench run directory (BENCH_SCHEMA as a Polars frame)."""
    p = Path(path) / BENCH_ROUNDS
    if not p.is_file():
        raise RunDirError(f"{p}: missing; a bench run directory holds {BENCH_ROUNDS}")
    try:
        t = pq.read_table(p)
    except (pa.ArrowInvalid, OSError) as exc:
        raise RunDirError(f"{p}: not a Parquet file of benchmark rounds ({str(exc).splitlines()[0][:120]})") from None
    missing = [n for n in BENCH_SCHEMA.names if n not in t.schema.names]
    if missing:
        raise RunDirError(f"{p}: columns missing: {', '.join(missing)}; left as it is")
    frame = pl.from_arrow(t.select(BENCH_SCHEMA.names))
    assert isinstance(frame, pl.DataFrame)
    return frame


def load_table(path: str | os.PathLike) -> pl.DataFrame:
    """The results table of a bench run directory, every statistic recomputed from its rounds."""
    meta = read_json(Path(path) / META)
    if meta.get("kind") != BENCH_KIND:
        raise RunDirError(f"{path}: not a micro-benchmark run (meta.json kind is {meta.get('kind')!r}, not 'bench')")
    rounds = read_rounds(path)
    info = {b["name"]: b for b in meta.get("benchmarks") or []}
    rows = []
    for (name,), g in rounds.group_by("benchmark", maintain_order=True):
        b = info.get(str(name), {})
        stats = round_stats(g.sort("round")["per_call_ns"].to_list(), int(g["loops"][0]))
        rows.append(table_row(str(name), b.get("param"), stats, b.get("sql"), b.get("memory")))
    return pl.DataFrame(rows, schema=TABLE_SCHEMA)
