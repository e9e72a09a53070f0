"""perfbench's engine at a fixed open-model rate, every column recorded, into a temp run dir.

Run: python benchmarks/engine_run.py URL SECONDS RATE MAX_IN_FLIGHT; prints the request count
and the summary's generator block as JSON on the last line.
"""

import json
import sys
import tempfile

from perfbench import shapes
from perfbench.engine import run_load
from perfbench.scenario import Request, Scenario

url, seconds, rate, cap = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
with tempfile.TemporaryDirectory() as d:
    res = run_load(url, shapes.constant(rate, seconds), Scenario([Request("get", "GET", "/")]), runs_dir=d,
                   max_in_flight=cap, progress=False, grace=2, announce=lambda s: None)
    o = res.summary["overall"]
    print(o["count"] - o["errors"])
    print(json.dumps({"errors": o["errors"], "generator": res.summary["generator"],
                      "p99_ms": o["latency_ms"].get("p99")}))
