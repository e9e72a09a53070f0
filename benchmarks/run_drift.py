"""Drift between runs of the same build on this machine: what one run a side cannot tell from a change.

    .venv/bin/python benchmarks/run_drift.py --runs 12 --seconds 10 --rate 40

One demo instance (as ``ab_noise.py``: /health, the eager and the naive post listing, weights 1, 1, 2),
warmed, then ``--runs`` runs of the same plan one after the other. Per run and endpoint, p50 and p95;
per pair of runs (every pair, i < j), the drift |log(x_j / x_i)| of each. Each run's machine block
(other processes' CPU, steal, load) says whether ``perfbench compare`` would have judged it; the drift is
reported over all pairs and over the pairs where both runs passed the noise check, as a change
(e^drift - 1). The 95th percentiles are what ``compare`` needs as its thresholds with one run a side
(``perfbench.compare.sets.SINGLE_RUN_DRIFT``).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from perfbench import compare as cmp  # noqa: E402
from perfbench import shapes  # noqa: E402
from perfbench.analysis.results import Run  # noqa: E402
from perfbench.compare.noise import reasons  # noqa: E402
from perfbench.demo.process import DemoProcess  # noqa: E402
from perfbench.load import run_load  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ab_noise import SCENARIO  # noqa: E402

STATS = ("p50", "p90", "p95", "p99", "rps")


def quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(max(math.ceil(len(s) * q), 1), len(s)) - 1]


def report(runs: list[dict]) -> str:
    lines = ["| pairs | stat | pairs x endpoints | median drift | 90th pct | 95th pct | max |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for which, keep in (("all", lambda a, b: True), ("both judged", lambda a, b: not a["noisy"] and not b["noisy"])):
        for stat in [s for s in STATS if all(s in st for r in runs for st in r["stats"].values())]:
            d = [abs(math.log(b["stats"][e][stat] / a["stats"][e][stat]))
                 for a, b in itertools.combinations(runs, 2) if keep(a, b)
                 for e in a["stats"] if e in b["stats"] and a["stats"][e][stat] and b["stats"][e][stat]]
            if not d:
                lines.append(f"| {which} | {stat} | 0 | - | - | - | - |")
                continue
            f = lambda x: f"{math.exp(x) - 1:+.0%}"  # noqa: E731
            lines.append(f"| {which} | {stat} | {len(d)} | {f(quantile(d, 0.5))} | {f(quantile(d, 0.9))} | "
                         f"{f(quantile(d, 0.95))} | {f(max(d))} |")
    judged = sum(1 for r in runs if not r["noisy"])
    loads = [r["load1"] for r in runs if r["load1"] is not None]
    others = [r["other_cpu"] for r in runs if r["other_cpu"] is not None]
    lines.append("")
    lines.append(f"{len(runs)} runs, {judged} passed the noise check; load average {min(loads):.1f} to {max(loads):.1f}, "
                 f"other processes {min(others):.2f} to {max(others):.2f} cores on average per run"
                 if loads and others else f"{len(runs)} runs, {judged} passed the noise check")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=12)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=40.0)
    p.add_argument("--out", default="benchmarks/results/run_drift.jsonl")
    p.add_argument("--report", metavar="FILE", nargs="+", help="print the table of earlier --out files and exit")
    args = p.parse_args()
    if args.report:
        print(report([json.loads(x) for f in args.report for x in Path(f).read_text().splitlines() if x.strip()]))
        return
    work = Path(tempfile.mkdtemp(prefix="run_drift-"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    demo = DemoProcess(db_path=work / "demo.sqlite", max_seconds=args.runs * (args.seconds + 20) + 120,
                       log_path=work / "demo.log")
    demo.start()
    runs: list[dict] = []
    try:
        run_load(demo.url, shapes.constant(args.rate, 3), SCENARIO, runs_dir=work / "warm", progress=False,
                 announce=lambda line: None)
        with out.open("a") as f:
            for i in range(args.runs):
                res = run_load(demo.url, shapes.constant(args.rate, args.seconds), SCENARIO, runs_dir=work / "runs",
                               label=f"drift{i}", progress=False, announce=lambda line: None)
                m = cmp.load_side(res.path)
                summary = Run.load(res.path).summary()
                machine = summary.get("machine") or {}
                stats = {e: {s: v.get("rps") if s == "rps" else (v.get("latency_ms") or {}).get(s) for s in STATS}
                         for e, v in summary["endpoints"].items()}
                r = {"run": i, "at": time.time(), "seconds": args.seconds, "rate": args.rate, "stats": stats,
                     "noisy": reasons("run", m.meta.get("generator"), m.meta.get("machine_load")),
                     "other_cpu": (machine.get("other_cpu_cores") or {}).get("mean"),
                     "load1": (machine.get("load1") or {}).get("mean")}
                f.write(json.dumps(r) + "\n")
                f.flush()
                runs.append(r)
                print(f"run {i + 1}/{args.runs}: " + ", ".join(f"{e} p50 {s['p50']:.2f} p95 {s['p95']:.2f}"
                                                           for e, s in stats.items())
                      + f"; other cpu {r['other_cpu']}, {'NOISY' if r['noisy'] else 'judged'}", flush=True)
    finally:
        with contextlib.suppress(Exception):
            demo.stop()
    print(report(runs))


if __name__ == "__main__":
    main()
