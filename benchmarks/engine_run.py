"""perfbench's engine at a fixed open-model rate, every column recorded, into a temp run dir.

Run: python benchmarks/engine_run.py URL SECONDS RATE MAX_IN_FLIGHT [HTTP_PATH]; prints the
request count (successful requests) on the first line and, as JSON on the last line, the
summary's generator block plus the process's CPU seconds during the load alone
(``load_cpu_s``: ``time.process_time()`` around ``run_load``'s engine, so interpreter start-up
and imports are left out; it still includes writing the run directory and its summary) and the
wall time of the whole run. HTTP_PATH is ``auto`` (default), ``lean`` or ``aiohttp``.

Environment (for benchmarks/gzip_bench.py; unset, nothing changes): ``ENGINE_RUN_HEADERS``, a JSON
object of request headers (e.g. ``{"Accept-Encoding": "gzip"}``); ``ENGINE_RUN_KEEP``, a directory
the run directory is kept in (so the harness reads its rows after the process, and its CPU, ended).

``steady``: from the engine's own once-a-second progress reports, the CPU the process used
between the first and the last report while the load ran (no start-up, no final flush, no
summary): ``cpu_pct`` of one core, and ``rows_per_cpu_s`` (requests recorded per CPU-second).
"""

import json
import os
import sys
import tempfile
import time

from perfbench import shapes
from perfbench.load import run_load
from perfbench.scenario import Request, Scenario

url, seconds, rate, cap = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
http_path = sys.argv[5] if len(sys.argv) > 5 else "auto"
samples = []


def progress(p):
    if not p["final"]:
        samples.append((p["elapsed_s"], time.process_time(), p["total"]))


headers = json.loads(os.environ.get("ENGINE_RUN_HEADERS") or "{}")
with tempfile.TemporaryDirectory() as d:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    res = run_load(url, shapes.constant(rate, seconds), Scenario([Request("get", "GET", "/", headers=headers)]),
                   runs_dir=os.environ.get("ENGINE_RUN_KEEP") or d,
                   max_in_flight=cap, progress=progress, grace=2, announce=lambda s: None, http_path=http_path)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    o = res.summary["overall"]
    steady = None
    if len(samples) >= 2:
        (e0, c0, n0), (e1, c1, n1) = samples[0], samples[-1]
        steady = {"window_s": round(e1 - e0, 2), "cpu_pct": round(100 * (c1 - c0) / (e1 - e0), 1),
                  "rows_per_cpu_s": round((n1 - n0) / (c1 - c0)) if c1 > c0 else None}
    print(o["count"] - o["errors"])
    print(json.dumps({"errors": o["errors"], "generator": res.summary["generator"],
                      "p99_ms": o["latency_ms"].get("p99"), "load_cpu_s": round(cpu, 3), "load_wall_s": round(wall, 3),
                      "ok_per_load_cpu_s": round((o["count"] - o["errors"]) / cpu) if cpu else None,
                      "steady": steady, "path": res.summary["generator"].get("path"),
                      "run_dir": str(res.path) if os.environ.get("ENGINE_RUN_KEEP") else None}))
