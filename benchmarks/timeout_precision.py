"""How close to its deadline a timed-out request is recorded, on both HTTP paths.

A local target (benchmarks/target.py in its delay mode, uvloop, pinned to CPU 1) answers every
EVERY-th request (default 4: a quarter) DELAY_S (1 s) late and the others at once. perfbench's
engine sends RATE (2,000) requests per second for SECONDS (open model) with a request timeout of
TIMEOUT (200 ms), so a quarter of the requests time out. For the rows recorded as ``timeout`` it
prints the distribution of the recorded latency minus the timeout (latency = end - intended send
time, what the summary's percentiles are of) and of the service time minus the timeout (service =
end_ns - start_ns, from the moment the request was really sent), in ms, and checks the bar: the
timed-out rows' latencies within 5 ms of the timeout at p99 (|latency - timeout| at p99 <= 5 ms).

    python benchmarks/timeout_precision.py                         # both paths, 10 s each
    python benchmarks/timeout_precision.py --seconds 2 --paths lean
    python benchmarks/timeout_precision.py --out results.json      # also the figures as JSON

The last line printed is JSON too. Traffic goes to 127.0.0.1 only; every run is bounded by its plan
plus the engine's grace period.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


class DelayTarget:
    """benchmarks/target.py answering every ``every``-th request ``delay`` seconds late; stopped by PID."""

    def __init__(self, every: int, delay: float, max_seconds: float, cpu: int | None):
        self.every, self.delay, self.max_seconds, self.cpu = every, delay, max_seconds, cpu

    def __enter__(self) -> str:
        self._tmp = tempfile.TemporaryDirectory(prefix="perfbench-timeout-")
        port_file = Path(self._tmp.name) / "port"
        cmd = [sys.executable, str(HERE / "target.py"), str(port_file), f"{self.max_seconds:g}", str(self.every),
               f"{self.delay:g}"]
        if self.cpu is not None and shutil.which("taskset"):
            cmd = ["taskset", "-c", str(self.cpu), *cmd]
        self.proc = subprocess.Popen(cmd, start_new_session=True)
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise SystemExit("the delay target did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{port_file.read_text()}/"

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # our own child, by its PID
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._tmp.cleanup()


def dist(s: pl.Series) -> dict:
    """min, p50, p90, p99, max of a series in ms (exact inverted-CDF percentiles, as the summary's)."""
    if s.len() == 0:
        return {}
    v = s.sort()
    n = v.len()

    def at(p: float) -> float:
        return float(v[max(math.ceil(float(n) * p), 1) - 1])
    return {"min": float(v[0]), "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": float(v[-1])}


def one(url: str, path: str, args, runs_dir: str) -> dict:
    from perfbench import shapes
    from perfbench.load import run_load
    from perfbench.scenario import Request, Scenario

    t_ms = args.timeout * 1000
    res = run_load(url, shapes.constant(args.rate, args.seconds), Scenario([Request("get", "GET", "/")]),
                   runs_dir=runs_dir, max_in_flight=args.max_in_flight, timeout=args.timeout, progress=False,
                   announce=lambda s: None, http_path=path)
    rows = pl.read_parquet(Path(res.path) / "requests.parquet",
                           columns=["intended_ns", "start_ns", "end_ns", "latency_ns", "service_ns", "error", "status"])
    timed_out = rows.filter(pl.col("error") == "timeout")
    lat_dev = timed_out["latency_ns"] / 1e6 - t_ms
    svc_dev = (timed_out["end_ns"] - timed_out["start_ns"]) / 1e6 - t_ms
    kinds = {str(k): n for k, n in rows.group_by("error").len().iter_rows()}
    abs_p99 = dist(lat_dev.abs()).get("p99")
    gen = res.summary["generator"]
    return {
        "path": path, "path_reported": gen.get("path"), "requests": rows.height,
        "achieved_rps": rows.height / args.seconds, "outcomes": kinds,
        "expected_timeouts": round(args.rate * args.seconds / args.every),
        "send_lag_ms": gen.get("lag_ms"),
        "latency_minus_timeout_ms": dist(lat_dev), "service_minus_timeout_ms": dist(svc_dev),
        "abs_latency_minus_timeout_p99_ms": abs_p99,
        "within_5ms_at_p99": abs_p99 is not None and abs_p99 <= 5.0,
    }


def fmt(d: dict) -> str:
    return "  ".join(f"{k} {d[k]:+8.2f}" for k in ("min", "p50", "p90", "p99", "max") if k in d) or "(no rows)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=2000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--timeout", type=float, default=0.2, help="the request timeout, seconds")
    ap.add_argument("--every", type=int, default=4, help="the target answers every EVERY-th request late")
    ap.add_argument("--delay", type=float, default=1.0, help="how late, seconds (well beyond the timeout)")
    ap.add_argument("--max-in-flight", type=int, default=2000)
    ap.add_argument("--paths", default="lean,aiohttp")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    from perfbench.engine.senders import HTTP_PATHS

    cpus = os.cpu_count() or 1
    gen_cpu, srv_cpu = (0, 1) if cpus >= 2 and shutil.which("taskset") else (None, None)
    if gen_cpu is not None:
        os.sched_setaffinity(0, {gen_cpu})
    paths = [p for p in args.paths.split(",") if p]
    results = []
    with DelayTarget(args.every, args.delay, max_seconds=(args.seconds + 15) * len(paths) + 30, cpu=srv_cpu) as url, \
            tempfile.TemporaryDirectory(prefix="perfbench-timeout-runs-") as runs:
        for path in paths:
            if path not in HTTP_PATHS:
                print(f"[{path}] not an HTTP path of this perfbench ({', '.join(HTTP_PATHS)}): skipped")
                continue
            r = one(url, path, args, runs)
            results.append(r)
            print(f"[{r['path_reported']}] {r['requests']:,} requests at {args.rate:g}/s for {args.seconds:g} s, timeout "
                  f"{args.timeout * 1000:g} ms, every {args.every}th answered {args.delay:g} s late: outcomes "
                  f"{r['outcomes']} (timeouts expected ~{r['expected_timeouts']:,}); send lag p99 "
                  f"{(r['send_lag_ms'] or {}).get('p99')} ms")
            print(f"  timeout rows, latency - timeout (ms):  {fmt(r['latency_minus_timeout_ms'])}")
            print(f"  timeout rows, service - timeout (ms):  {fmt(r['service_minus_timeout_ms'])}")
            print(f"  bar: |latency - timeout| at p99 <= 5 ms: {r['within_5ms_at_p99']} "
                  f"({r['abs_latency_minus_timeout_p99_ms']} ms)", flush=True)
    out = {"config": vars(args), "load_avg": os.getloadavg(), "results": results}
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
