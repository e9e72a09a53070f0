"""`perfbench summary` of a long run: wall time and peak RSS of the command, on a synthetic run directory.

Builds a run directory of N rows (default 10 million) with the engine's own writers (rundir's
``REQUEST_SCHEMA``, a ``Journal`` of record batches, then ``journal_to_parquet``, as a run that ends
does): several endpoints with their own latency distributions (log-normal bodies, a slow tail, a
share of 1 s timeouts), statuses (2xx, 404, 5xx, none), error kinds (http_4xx, http_5xx, timeout,
connect, reset, check), a realistic send lag, body sizes per endpoint. It has no summary.json, so
every `perfbench summary DIR` computes the summary from requests.parquet. Then it runs the command
as a subprocess REPEAT times and reports, for each, the wall time and the peak RSS of that process
(``os.wait4``'s rusage of the child: its own maximum resident set).

    python benchmarks/summary_scale.py                     # 10M rows, 3 timed runs
    python benchmarks/summary_scale.py --rows 200000 --repeat 1 --verify
    python benchmarks/summary_scale.py --dir /tmp/sum10m   # keep (and reuse) the run directory
    python benchmarks/summary_scale.py --recompute         # time `perfbench summary --recompute DIR`
    python benchmarks/summary_scale.py --csv               # time `perfbench summary DIR --csv PREFIX`
    python benchmarks/summary_scale.py --dir D --code ../old-checkout   # the same, another version's code

``--verify`` also recomputes every count and percentile of the printed summary with numpy (a full
sort per endpoint) and fails loudly on a difference. The last line is JSON: every run's figures.
The synthetic rows are the same for the same ``--rows`` and ``--seed``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from perfbench import rundir  # noqa: E402
from perfbench.rundir import REQUEST_SCHEMA, ROW_GROUP_ROWS, Journal, RunDir  # noqa: E402

RATE = 10_000  # requests per second of the synthetic run: 10M rows = 1,000 s
TIMEOUT_NS = 1_000_000_000

# name, method, share of the rows, median latency (ms), log-normal sigma, body bytes
ENDPOINTS = [
    ("list_items", "GET", 0.35, 4.0, 0.45, 5_200),
    ("get_item", "GET", 0.30, 1.6, 0.35, 820),
    ("search", "GET", 0.12, 18.0, 0.70, 12_400),
    ("create_order", "POST", 0.10, 9.0, 0.55, 310),
    ("login", "POST", 0.08, 35.0, 0.40, 640),
    ("health", "GET", 0.05, 0.4, 0.25, 15),
]
# outcome: status, error kind, detail, share of an endpoint's rows
OUTCOMES = [
    (200, None, None, 0.9615),
    (404, "http_4xx", "status 404", 0.012),
    (500, "http_5xx", "status 500", 0.006),
    (503, "http_5xx", "status 503", 0.004),
    (None, "timeout", "read timeout", 0.004),
    (None, "connect", "ConnectionRefusedError", 0.004),
    (None, "reset", "ConnectionResetError", 0.003),
    (200, "check", "body is not JSON", 0.0055),
]


def chunk(rng: np.random.Generator, first: int, n: int) -> pa.RecordBatch:
    """Rows first .. first+n-1 of the synthetic run, every column of REQUEST_SCHEMA."""
    ep_share = np.array([e[2] for e in ENDPOINTS])
    ep = rng.choice(len(ENDPOINTS), size=n, p=ep_share / ep_share.sum())
    med = np.array([e[3] for e in ENDPOINTS])[ep] * 1e6
    sigma = np.array([e[4] for e in ENDPOINTS])[ep]
    service = np.exp(np.log(med) + sigma * rng.standard_normal(n))
    slow = rng.random(n) < 0.003  # a slow tail: GC pauses, a cold cache
    service[slow] *= rng.uniform(5, 40, slow.sum())
    out_share = np.array([o[3] for o in OUTCOMES])
    outcome = rng.choice(len(OUTCOMES), size=n, p=out_share / out_share.sum())
    kind = np.array([o[1] or "" for o in OUTCOMES])[outcome]
    service[kind == "timeout"] = TIMEOUT_NS + rng.exponential(40e6, (kind == "timeout").sum())
    service[kind == "connect"] = rng.uniform(30e3, 200e3, (kind == "connect").sum())
    service = np.maximum(service, 20_000).astype(np.int64)
    intended = (np.arange(first, first + n, dtype=np.int64) * 1_000_000_000) // RATE
    lag = np.minimum(rng.exponential(250e3, n), 50e6).astype(np.int64)  # send lag, ~0.25 ms
    start = intended + lag
    end = start + service
    has_body = np.isin(kind, ["", "check", "http_4xx", "http_5xx"])
    size = np.array([e[5] for e in ENDPOINTS])[ep]
    nbytes = np.where(has_body, (size * rng.uniform(0.8, 1.2, n)).astype(np.int64), 0)
    nbytes[kind == "http_4xx"] = 22
    nbytes[kind == "http_5xx"] = 141

    def names(values: list, idx: np.ndarray) -> pa.Array:
        return pa.array(values, pa.string()).take(pa.array(idx))

    status_vals = np.array([o[0] if o[0] is not None else -1 for o in OUTCOMES])[outcome]
    cols = {
        "request_id": pa.array(np.arange(first, first + n, dtype=np.int64)),
        "endpoint": names([e[0] for e in ENDPOINTS], ep),
        "method": names([e[1] for e in ENDPOINTS], ep),
        "intended_ns": pa.array(intended),
        "start_ns": pa.array(start),
        "end_ns": pa.array(end),
        "latency_ns": pa.array(end - intended),
        "service_ns": pa.array(service),
        "status": pa.array(status_vals.astype(np.int16), mask=status_vals < 0),
        "error": names([o[1] for o in OUTCOMES], outcome),
        "error_detail": names([o[2] for o in OUTCOMES], outcome),
        "bytes": pa.array(nbytes),
        "worker": pa.array(np.zeros(n, np.int16)),
        "stage": pa.array(np.zeros(n, np.int16)),
    }
    arrays = []
    for f in REQUEST_SCHEMA:  # a column this script does not know (added later): null, or 0 if required
        if f.name in cols:
            arrays.append(cols[f.name].cast(f.type))
        elif f.nullable:
            arrays.append(pa.nulls(n, f.type))
        else:
            arrays.append(pa.array(np.zeros(n, np.int64)).cast(f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=REQUEST_SCHEMA)


def build(path: Path, rows: int, seed: int) -> None:
    """A finished run directory of ``rows`` synthetic rows, written as the engine writes one."""
    rd = RunDir.create(path.parent, path.name)
    duration = rows / RATE
    rd.write_meta({"kind": "load_test", "target": "http://127.0.0.1:8000", "synthetic": "benchmarks/summary_scale.py",
                   "shape": {"kind": "constant", "model": "open", "rate": RATE, "duration_s": duration},
                   "parameters": {"max_in_flight": 1000, "timeout_s": TIMEOUT_NS / 1e9, "lag_bound_ms": 10.0},
                   "started_at": rundir.utc_now_iso(), "start_unix_ns": time.time_ns(), "end_reason": None})
    rng = np.random.default_rng(seed)
    journal = Journal(rd.path)
    try:
        for first in range(0, rows, ROW_GROUP_ROWS):
            journal.write(chunk(rng, first, min(ROW_GROUP_ROWS, rows - first)))
    finally:
        journal.close()
    written = rundir.journal_to_parquet(rd.path)
    rd.update_meta(ended_at=rundir.utc_now_iso(), end_reason="completed", elapsed_s=duration + 1.0, rows=written,
                   engine_stats={"planned": rows, "sent": rows, "completed": rows, "capped": 0, "aborted": 0,
                                 "max_in_flight": 1000, "path": "synthetic"})


# Runs the command and prints its rusage as JSON. The command is started from this small process, not
# from the benchmark's own (which holds the rows it built): Linux carries the RSS high-water mark of
# the process that execs into a child's ru_maxrss, so a child of a big process reads as big.
TIMER = """
import json, os, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.Popen(sys.argv[1:])
_pid, status, ru = os.wait4(p.pid, 0)
print(json.dumps({"wall_s": time.perf_counter() - t0, "cpu_s": ru.ru_utime + ru.ru_stime,
                  "peak_rss_mb": ru.ru_maxrss / 1024, "rc": os.waitstatus_to_exitcode(status)}), file=sys.stderr)
"""


def timed(cmd: list[str], env: dict, cwd: str) -> dict:
    """Run ``cmd``; its wall seconds, own user+sys CPU seconds and peak RSS (that process only)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        subprocess.run([sys.executable, "-S", "-c", TIMER, *cmd], stdout=out, stderr=err, env=env, check=False,
                       cwd=cwd)  # `python -m` puts the working directory first on sys.path
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    lines = stderr.rstrip().splitlines()
    try:
        r = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise SystemExit(f"the timer failed: {stderr[-2000:]}") from None
    return {**r, "stdout": stdout, "stderr": "\n".join(lines[:-1])}


def verify(path: Path, summary: dict) -> None:
    """Every count and percentile of ``summary`` against numpy over the rows (full sorts)."""
    import pyarrow.parquet as pq

    from perfbench.analysis.results import PERCENTILES

    t = pq.read_table(path / rundir.REQUESTS, columns=["endpoint", "latency_ns", "service_ns", "error", "bytes"])
    ep = np.asarray(t["endpoint"].to_numpy(zero_copy_only=False))
    lat, svc = t["latency_ns"].to_numpy(), t["service_ns"].to_numpy()
    err = t["error"].is_valid().to_numpy(zero_copy_only=False)

    def rank(n: int, p: float) -> int:
        return max(math.ceil(float(n) * p), 1) - 1

    def check(block: dict, mask: np.ndarray | None, name: str) -> None:
        lv = np.sort(lat if mask is None else lat[mask])
        sv = np.sort(svc if mask is None else svc[mask])
        assert block["count"] == len(lv), (name, "count")
        assert block["errors"] == int(err.sum() if mask is None else err[mask].sum()), (name, "errors")
        for key, p in PERCENTILES.items():
            want = lv[rank(len(lv), p)] / 1e6
            assert math.isclose(block["latency_ms"][key], want, abs_tol=1e-6), (name, key, block["latency_ms"][key], want)
        for key, p in (("p50", 0.5), ("p99", 0.99)):
            want = sv[rank(len(sv), p)] / 1e6
            assert math.isclose(block["service_ms"][key], want, abs_tol=1e-6), (name, "service", key)

    check(summary["overall"], None, "overall")
    for name, block in summary["endpoints"].items():
        check(block, ep == name, name)
    print(f"verified: counts, errors and every percentile of {len(summary['endpoints'])} endpoints and overall")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--dir", default="", help="run directory to build (reused if it holds --rows rows); default temp")
    ap.add_argument("--recompute", action="store_true", help="time `perfbench summary --recompute DIR` (rewrites it)")
    ap.add_argument("--csv", action="store_true", help="time `perfbench summary DIR --csv PREFIX` (Locust's files)")
    ap.add_argument("--verify", action="store_true", help="check the summary's numbers against numpy")
    ap.add_argument("--code", default=str(ROOT),
                    help="the perfbench checkout whose `perfbench summary` is timed (default this one), "
                         "to compare two versions on the same run directory")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [args.code, os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory(prefix="perfbench-summary-scale-") as tmp:
        path = Path(args.dir).resolve() if args.dir else Path(tmp) / "run"
        meta = path / rundir.META
        reuse = meta.exists() and json.loads(meta.read_text()).get("rows") == args.rows
        if not reuse:
            if path.exists():
                raise SystemExit(f"{path} exists and does not hold a {args.rows}-row run; give another --dir")
            t0 = time.perf_counter()
            build(path, args.rows, args.seed)
            print(f"built {args.rows:,} rows in {time.perf_counter() - t0:.1f} s: {path} "
                  f"(requests.parquet {(path / rundir.REQUESTS).stat().st_size / 2**20:.0f} MiB)", flush=True)
        (path / rundir.SUMMARY).unlink(missing_ok=True)  # computed from the rows every time
        cmd = [sys.executable, "-m", "perfbench", "summary", *(["--recompute"] if args.recompute else []),
               *(["--csv", str(path.parent / "locust")] if args.csv else []), str(path)]
        runs = []
        for i in range(args.repeat):
            r = timed(cmd, env, args.code)
            if r["rc"] != 0:
                raise SystemExit(f"perfbench summary exited {r['rc']}: {r['stderr'][-2000:]}")
            runs.append(r)
            print(f"run {i + 1}: {r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} CPU-s, peak RSS {r['peak_rss_mb']:.0f} MB",
                  flush=True)
            (path / rundir.SUMMARY).unlink(missing_ok=True)
        print(runs[-1]["stdout"])
        if args.verify:
            j = timed([*cmd[:4], "--json", *cmd[4:]], env, args.code)
            verify(path, json.loads(j["stdout"]))
            (path / rundir.SUMMARY).unlink(missing_ok=True)
    walls = [r["wall_s"] for r in runs]
    rss = [r["peak_rss_mb"] for r in runs]
    print(f"perfbench summary of {args.rows:,} rows: wall median {statistics.median(walls):.2f} s "
          f"[{min(walls):.2f} - {max(walls):.2f}], peak RSS median {statistics.median(rss):.0f} MB "
          f"[{min(rss):.0f} - {max(rss):.0f}] (bars: 2 s, 500 MB)")
    print(json.dumps({"rows": args.rows, "command": " ".join(cmd[1:-1]) + " DIR", "code": args.code,
                      "load_avg": os.getloadavg(),
                      "runs": [{k: round(v, 3) for k, v in r.items() if k in ("wall_s", "cpu_s", "peak_rss_mb")}
                               for r in runs]}))


if __name__ == "__main__":
    main()
