"""Scaling of perfbench's load generation on Dask: one process, then 1 and 2 local workers.

Run: .venv/bin/python benchmarks/distributed_bench.py [RATE] [SECONDS] [REPEATS] [MAX_IN_FLIGHT]
(defaults 100000 req/s planned, 5 s, 3 repeats, cap 100). The target is benchmarks/target.py
(uvloop, fixed response) started here on 127.0.0.1 and stopped by its PID. Prints one JSON line
per run and a table of medians at the end; results in benchmarks/distributed.md.

Per run: ``ok_rps`` = successful requests / the span from the start to the last response
(queued arrivals still go out during the grace period, so the plan's duration would flatter it);
``gen_cpu_s`` = CPU seconds of the generator processes during ``run_load`` (the Dask worker
processes, from psutil, for workers > 0; this process's own CPU for workers = 0);
``coord_cpu_s`` = this process's CPU (the coordinator: clock offsets, progress, merge, summary);
``target_cpu_s`` = the target's CPU; ``ok_per_gen_cpu_s`` = successful requests per generator CPU-second.
The planned rate is far above what 2 cores can do, so every configuration runs saturated (the
cap holds arrivals back) and ``ok_rps`` is its ceiling on this machine.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import psutil

from perfbench import shapes
from perfbench.distributed import local_cluster
from perfbench.load import run_load
from perfbench.rundir import read_json
from perfbench.scenario import Request, Scenario

HERE = Path(__file__).resolve().parent


def start_target(tmp: Path, max_seconds: int) -> tuple[subprocess.Popen, str]:
    port_file = tmp / "port"
    proc = subprocess.Popen([sys.executable, str(HERE / "target.py"), str(port_file), str(max_seconds)])
    for _ in range(2000):  # bounded: 20 s
        if port_file.exists() and port_file.read_text().strip():
            return proc, f"http://127.0.0.1:{port_file.read_text().strip()}"
        time.sleep(0.01)
    proc.kill()
    raise RuntimeError("target did not start")


def cpu_s(procs: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in procs)


def one_run(url: str, workers: int, client, rate: float, seconds: float, cap: int, target: psutil.Process,
            runs: Path) -> dict:
    scenario = Scenario([Request("get", "GET", "/")])
    gens = [psutil.Process(pid) for pid in client.run(os.getpid).values()] if client is not None else []
    me = psutil.Process()
    g0, c0, t0 = cpu_s(gens), cpu_s([me]), cpu_s([target])
    wall0 = time.perf_counter()
    res = run_load(url, shapes.constant(rate, seconds), scenario, runs_dir=runs, max_in_flight=cap, grace=2,
                   progress=False, announce=lambda s: None, client=client)
    wall = time.perf_counter() - wall0
    g, c, t = cpu_s(gens) - g0, cpu_s([me]) - c0, cpu_s([target]) - t0
    meta = read_json(res.path / "meta.json")
    o = res.summary["overall"]
    ok = o["count"] - o["errors"]
    span = pl.scan_parquet(res.path / "requests.parquet").select(pl.col("end_ns").max()).collect().item() / 1e9
    gen = g if workers else c
    return {"workers": workers, "ok": ok, "span_s": span, "ok_rps": ok / span,
            "gen_cpu_s": gen, "ok_per_gen_cpu_s": ok / gen if gen else None,
            "coord_cpu_s": c if workers else None, "target_cpu_s": t, "wall_s": wall,
            "p50_ms": o["latency_ms"]["p50"], "p99_ms": o["latency_ms"]["p99"],
            "lost": len(res.summary["generator"].get("lost_shards") or []),
            "clock_offsets": (meta.get("distributed") or {}).get("clock_offsets")}


def main() -> None:
    rate = float(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    cap = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        proc, url = start_target(tmp, max_seconds=int(repeats * 3 * (seconds + 30) + 120))
        try:
            target = psutil.Process(proc.pid)
            for workers in (0, 1, 2):
                if workers == 0:
                    for r in range(repeats):
                        rows.append(one_run(url, 0, None, rate, seconds, cap, target, tmp / f"runs-0-{r}"))
                        print(json.dumps(rows[-1]), flush=True)
                    continue
                with local_cluster(workers, dashboard=False) as client:
                    for r in range(repeats):
                        rows.append(one_run(url, workers, client, rate, seconds, cap, target,
                                            tmp / f"runs-{workers}-{r}"))
                        print(json.dumps(rows[-1]), flush=True)
        finally:
            proc.kill()  # the target we started, by its PID
            proc.wait(10)
    print(f"\nplanned {rate:,.0f} req/s for {seconds:g} s, cap {cap}, {os.cpu_count()} CPUs; medians of {repeats}")
    print("| workers | ok req/s | generator CPU s | ok req per generator CPU-s | coordinator CPU s | target CPU s "
          "| p50 / p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for workers in (0, 1, 2):
        rs = [r for r in rows if r["workers"] == workers]

        def med(k, rs=rs):
            vals = [r[k] for r in rs if r[k] is not None]
            return statistics.median(vals) if vals else float("nan")

        label = "0 (one process, no Dask)" if workers == 0 else str(workers)
        print(f"| {label} | {med('ok_rps'):,.0f} | {med('gen_cpu_s'):.2f} | {med('ok_per_gen_cpu_s'):,.0f} | "
              f"{med('coord_cpu_s'):.2f} | {med('target_cpu_s'):.2f} | {med('p50_ms'):.2f} / {med('p99_ms'):.2f} |")


if __name__ == "__main__":
    main()
