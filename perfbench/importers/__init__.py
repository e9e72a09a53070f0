"""Importers: other tools' results (and perfbench's own runs) as ``Measurements`` for comparison and charts.

    m = importers.load("results/locust_stats.csv")      # or a k6 JSON, a pytest-benchmark JSON, a run dir
    m.requests       # raw samples in perfbench's requests shape, when the source has them
    m.summary        # else per-endpoint aggregates (results.endpoint_stats columns)

| source                                   | function                | raw samples?                         |
| ---------------------------------------- | ----------------------- | ------------------------------------ |
| perfbench run directory                  | ``from_run``            | yes (coordinated-omission corrected) |
| Locust ``--csv`` prefix / ``_stats.csv`` | ``read_locust``         | with the per-request log, else no    |
| k6 ``--out json=FILE`` (``.gz`` too)     | ``read_k6_json``        | yes                                  |
| k6 ``--summary-export FILE``             | ``read_k6_summary``     | no                                   |
| pytest-benchmark ``--benchmark-json``    | ``read_pytest_benchmark`` | yes when ``stats.data`` is there   |
| perfbench micro-benchmark run (``bench``) | ``from_bench_run``      | yes (one sample per measured round)  |
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from ..errors import ConfigError
from ..rundir import BENCH_KIND, BENCH_ROUNDS, META, REQUESTS, read_json
from . import k6 as _k6
from . import locust as _locust
from . import pytest_benchmark as _pb
from .base import OVERALL, Measurements, samples_frame, summary_frame
from .k6 import read_k6_json, read_k6_summary
from .locust import read_locust
from .pytest_benchmark import read_pytest_benchmark

__all__ = ["OVERALL", "Measurements", "from_bench_run", "from_run", "load", "read_k6_json", "read_k6_summary", "read_locust",
           "read_pytest_benchmark", "samples_frame", "summary_frame"]


BENCH_NOTE = "micro-benchmark: one sample per measured round; latency = the round's time per call"


def from_bench_run(path: str | Path) -> Measurements:
    """A micro-benchmark run directory (``perfbench.bench``) as Measurements: each benchmark is an endpoint,
    each measured round a sample (latency = time per call, rounded to the ns). Rounds run one after
    another, so there is no throughput to compare (``duration_s`` is None)."""
    from ..errors import RunDirError

    p = Path(path)
    meta = read_json(p / META)
    rounds = p / BENCH_ROUNDS
    if not rounds.is_file():
        raise RunDirError(f"{rounds}: missing; a bench run directory holds {BENCH_ROUNDS}")
    try:
        df = pl.read_parquet(rounds, columns=["benchmark", "start_ns", "per_call_ns"])
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise RunDirError(f"{rounds}: not a Parquet file of benchmark rounds ({str(exc).splitlines()[0][:120]})"
                          ) from None
    machine = meta.get("machine") or {}
    return Measurements(
        label=str(meta.get("run_id") or p.name), source="bench", path=p, notes=[BENCH_NOTE],
        requests=samples_frame(df["benchmark"], df["start_ns"], df["per_call_ns"].round(0).cast(pl.Int64),
                               method=["CALL"] * df.height),
        meta={"tool": "perfbench", "kind": BENCH_KIND, "machine": machine, "run_id": meta.get("run_id"),
              "code_commit": meta.get("code_commit"), "started_at": meta.get("started_at"),
              "versions": {"perfbench": machine.get("perfbench"), "python": machine.get("python")}})


def from_run(path: str | Path) -> Measurements:
    """A perfbench run directory as Measurements (every request, machine and versions from meta.json)."""
    from ..analysis.results import CLOSED_MODEL_NOTE, Run

    if read_json(Path(path) / META).get("kind") == BENCH_KIND:
        return from_bench_run(path)
    run = Run.load(path)
    summary = run.summary()
    meta = run.meta
    machine = meta.get("machine") or {}
    gen = summary.get("generator") or {}
    notes = [f"{CLOSED_MODEL_NOTE}" for _ in [0] if (meta.get("shape") or {}).get("model") == "closed"]
    if gen.get("saturated"):
        notes.append("the load generator saturated in this run: " + "; ".join(gen.get("saturation_reasons", [])))
    until = run.warmup_until_ns()  # the warm-up's rows stay out of a comparison, and its time out of the span
    requests = pl.read_parquet(run.path / REQUESTS)
    if until:
        requests = requests.filter(pl.col("intended_ns") >= until)
        notes.append(f"the warm-up (the first {until / 1e9:g} s, {summary.get('warmup', {}).get('rows_excluded')} "
                     f"requests) is left out")
    return Measurements(
        label=run.run_id, source="perfbench", requests=requests,
        duration_s=run.duration_s - until / 1e9 if until else run.duration_s, path=run.path, notes=notes,
        meta={"tool": "perfbench", "machine": machine, "run_id": run.run_id, "target": meta.get("target"),
              "shape": meta.get("shape"), "code_commit": meta.get("code_commit"),
              "versions": {"perfbench": machine.get("perfbench"), "python": machine.get("python")},
              "saturated": bool(gen.get("saturated")), "started_at": meta.get("started_at"),
              "generator": gen, "machine_load": summary.get("machine")})


def load(path: str | os.PathLike[str]) -> Measurements:
    """Whatever ``path`` holds: a perfbench run directory, Locust CSV files, a k6 or pytest-benchmark file."""
    p = Path(path)
    if p.is_dir():
        if (p / META).is_file():
            return from_run(p)
        raise ConfigError(f"{p}: a directory without {META}; pass a perfbench run directory or a file")
    prefix = _locust.prefix_of(p)
    if Path(f"{prefix}_stats.csv").is_file() or (p.is_file() and _locust.is_request_log(p)):
        return _locust.read_locust(p)
    if not p.is_file():
        raise ConfigError(f"{p}: no such file or directory (expected a run directory, a baseline name, "
                          "Locust --csv files, a k6 JSON file or a pytest-benchmark JSON file)")
    kind = _k6.sniff(p)
    if kind == "json":
        return read_k6_json(p)
    if kind == "summary":
        return read_k6_summary(p)
    if _pb.sniff(p):
        return read_pytest_benchmark(p)
    raise ConfigError(f"{p}: not a format perfbench reads (Locust --csv, k6 --out json / --summary-export, "
                      "pytest-benchmark --benchmark-json)")
