"""Verdicts under a noisy machine: paired A/B (`perfbench ab`) against two separate runs (`perfbench compare`).

    .venv/bin/python benchmarks/ab_noise.py --aa 40 --effect 20 --seconds 60

Three demo instances on this machine, each in its own process on 127.0.0.1 (one SQLite file, read
only by these GET endpoints): the baseline, the same build again, and the same build with
``--slowdown /api/posts=15%`` (the naive post listing made 15 % slower, busy). A CPU hog (one
spinning process per CPU, started and stopped by PID) is switched on and off at random, for 0.5
to 8 s at a time, during every trial. Each trial is, in a random order:

- `ab`: one paired A/B run of ``--seconds`` at ``--rate`` (1 s blocks), judged with its defaults;
- `compare`: two separate runs of ``--seconds / 2`` each (the same requests in all), the baseline's
  first, judged by ``perfbench.compare`` with its defaults, as a CI job does today.

A/A trials (baseline against the same build) count how often each method gives a verdict
(regression or improvement): every such verdict is false. Effect trials (baseline against the
slowed build) count how often the slowed endpoint is found a regression. Every trial's figures go
to a JSON-lines file as it ends (``--out``), so an interrupted benchmark keeps what it measured;
the table is printed at the end (``--report FILE...`` prints it from earlier files).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from perfbench import compare as cmp  # noqa: E402
from perfbench import shapes  # noqa: E402
from perfbench.demo.process import DemoProcess  # noqa: E402
from perfbench.experiments.ab import run_ab  # noqa: E402
from perfbench.load import run_load  # noqa: E402
from perfbench.scenario import Request, Scenario  # noqa: E402

SLOWED = "posts_naive"
SLOWDOWN = "/api/posts=15%"
SCENARIO = Scenario(name="ab_noise", requests=[
    Request("health", "GET", "/health", auth=False),
    Request("posts_eager", "GET", "/api/v2/posts?limit=10", auth=False),
    Request(SLOWED, "GET", "/api/posts?limit=3", auth=False, weight=2),
])
VERDICTS = (cmp.REGRESSION, cmp.IMPROVEMENT)


class Hog:
    """One spinning process per CPU, paused and resumed at random (SIGSTOP/SIGCONT, by PID)."""

    def __init__(self, lifetime_s: float, seed: int = 0):
        code = f"import time\nend = time.monotonic() + {lifetime_s}\nwhile time.monotonic() < end: pass\n"
        self.procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(os.cpu_count() or 2)]
        self.rng = random.Random(seed)
        self.on = True
        self.on_s = 0.0
        self.total_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._toggle, daemon=True)
        self._thread.start()

    def _signal(self, sig: int) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(sig)

    def _toggle(self) -> None:
        while not self._stop.is_set():
            span = self.rng.uniform(0.5, 8.0)
            self._stop.wait(span)
            self.total_s += span
            self.on_s += span if self.on else 0.0
            self.on = not self.on
            self._signal(signal.SIGCONT if self.on else signal.SIGSTOP)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._signal(signal.SIGCONT)
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
            p.wait(10)


def row(c: cmp.Comparison, endpoint: str, stat: str) -> dict | None:
    for r in c.rows:
        if r.endpoint == endpoint and r.stat == stat:
            return {"ratio": r.ratio, "low": r.low, "high": r.high, "verdict": r.verdict}
    return None


def trial(kind: str, base: str, cand: str, seconds: float, rate: float, runs: Path, seed: int) -> dict:
    quiet = {"announce": lambda line: None}
    out: dict = {"kind": kind, "seed": seed}
    ab = run_ab(base, cand, shapes.constant(rate, seconds), SCENARIO, block_s=1.0, seed=seed, runs_dir=runs / "ab",
                **quiet).comparison
    out["ab"] = {"verdict": ab.verdict, "false_rows": [f"{r.endpoint} {r.stat} {r.verdict}" for r in ab.comparison.rows
                                                       if r.verdict in VERDICTS],
                 "slowed_p50": row(ab.comparison, SLOWED, "p50"),
                 "rows": [{"endpoint": r.endpoint, "stat": r.stat, "low": r.low, "high": r.high, "ratio": r.ratio}
                          for r in ab.comparison.rows]}
    plan = shapes.constant(rate, seconds / 2)
    a = run_load(base, plan, SCENARIO, runs_dir=runs / "cmp", label="base", progress=False, **quiet).path
    b = run_load(cand, plan, SCENARIO, runs_dir=runs / "cmp", label="cand", progress=False, **quiet).path
    c = cmp.compare(cmp.load_side(a), cmp.load_side(b), n_boot=1000)
    out["compare"] = {"verdict": c.verdict, "false_rows": [f"{r.endpoint} {r.stat} {r.verdict}" for r in c.rows
                                                           if r.verdict in VERDICTS],
                      "slowed_p50": row(c, SLOWED, "p50"),
                      "rows": [{"endpoint": r.endpoint, "stat": r.stat, "low": r.low, "high": r.high, "ratio": r.ratio}
                               for r in c.rows if r.stat != cmp.THROUGHPUT]}
    return out


def report(results: list[dict], seconds: float | None = None) -> str:
    aa = [r for r in results if r["kind"] == "aa"]
    fx = [r for r in results if r["kind"] == "effect"]
    lines = ["| | `perfbench ab` (paired blocks) | `perfbench compare` (two separate runs) |", "| --- | ---: | ---: |"]

    def share(rs: list[dict], method: str, pred) -> str:
        if not rs:
            return "-"
        k = sum(1 for r in rs if pred(r[method]))
        return f"{k} / {len(rs)} ({k / len(rs):.0%})"

    gave = lambda m: m["verdict"] in VERDICTS  # noqa: E731
    found = lambda m: (m["slowed_p50"] or {}).get("verdict") == cmp.REGRESSION or any(  # noqa: E731
        x.startswith(f"{SLOWED} ") and x.endswith(cmp.REGRESSION) for x in m["false_rows"])
    lines.append(f"| A/A trials giving a verdict (all false) | {share(aa, 'ab', gave)} | {share(aa, 'compare', gave)} |")
    lines.append(f"| +15% on {SLOWED}: found a regression of it | {share(fx, 'ab', found)} | "
                 f"{share(fx, 'compare', found)} |")
    other = lambda m: any(not x.startswith(f"{SLOWED} ") for x in m["false_rows"])  # noqa: E731
    lines.append(f"| +15% trials with a verdict on another endpoint (false) | {share(fx, 'ab', other)} | "
                 f"{share(fx, 'compare', other)} |")
    for method in ("ab", "compare"):
        rows = [x for r in aa for x in r[method]["rows"] if x["low"] is not None]
        if rows:
            cover = sum(1 for x in rows if x["low"] <= 1 <= x["high"]) / len(rows)
            lines.append(f"| {method}: A/A intervals covering 1 (every row with an interval) | "
                         + (f"{cover:.1%} of {len(rows)} |  |" if method == "ab" else f" | {cover:.1%} of {len(rows)} |"))
    est = [r["ab"]["slowed_p50"]["ratio"] for r in fx if r["ab"]["slowed_p50"] and r["ab"]["slowed_p50"]["low"]]
    if est:
        true = statistics.median(est)
        ivs = [r["ab"]["slowed_p50"] for r in fx if r["ab"]["slowed_p50"] and r["ab"]["slowed_p50"]["low"]]
        cover = sum(1 for x in ivs if x["low"] <= true <= x["high"]) / len(ivs)
        lines.append(f"| ab: {SLOWED} p50 ratio, median of the effect trials | {true:.3f} |  |")
        lines.append(f"| ab: effect intervals covering that median | {cover:.0%} of {len(ivs)} |  |")
    halfs = [math.log(x["high"] / x["low"]) / 2 for r in aa for x in r["ab"]["rows"]
             if x["low"] and x["endpoint"] == SLOWED and x["stat"] == "p50"]
    if halfs:
        h = statistics.median(halfs)
        lines.append(f"| ab: {SLOWED} p50 interval half-width (log), median over A/A | {h:.3f} |  |")
        if seconds:
            h60 = h * math.sqrt(seconds / 60)
            lines.append(f"| ab: minimum detectable change at 60 s (50% power: 1.05 x e^h; ~84%: 1.05 x e^1.5h) | "
                         f"+{(1.05 * math.exp(h60) - 1):.0%} / +{(1.05 * math.exp(1.5 * h60) - 1):.0%} |  |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--aa", type=int, default=40, help="A/A trials (default 40)")
    p.add_argument("--effect", type=int, default=20, help="trials with the slowed build (default 20)")
    p.add_argument("--seconds", type=float, default=60.0, help="an A/B trial's length; each separate run is half")
    p.add_argument("--rate", type=float, default=50.0)
    p.add_argument("--no-hog", action="store_true", help="no CPU hog (a quiet-machine reference)")
    p.add_argument("--out", default="benchmarks/results/ab_noise.jsonl")
    p.add_argument("--report", metavar="FILE", nargs="+", help="print the table of earlier --out files and exit")
    args = p.parse_args()
    if args.report:
        rs = [json.loads(line) for f in args.report for line in Path(f).read_text().splitlines() if line.strip()]
        print(report(rs, args.seconds))
        return
    kinds = ["aa"] * args.aa + ["effect"] * args.effect
    random.Random(1).shuffle(kinds)
    work = Path(tempfile.mkdtemp(prefix="ab_noise-"))
    db = work / "demo.sqlite"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    budget = len(kinds) * (2 * args.seconds + 30) + 300
    demos = {}
    hog = None
    results: list[dict] = []
    try:
        for name, slow in (("base", []), ("same", []), ("slow", [SLOWDOWN])):
            d = DemoProcess(db_path=db, max_seconds=budget, slowdown=slow, log_path=work / f"{name}.log")
            d.start()
            demos[name] = d
        for d in demos.values():  # warm: the first requests of a process are slower (imports, caches)
            run_load(d.url, shapes.constant(50, 3), SCENARIO, runs_dir=work / "warm", progress=False,
                     announce=lambda line: None)
        hog = None if args.no_hog else Hog(budget)
        with out.open("a") as f:
            for i, kind in enumerate(kinds):
                cand = demos["same" if kind == "aa" else "slow"].url
                started = time.monotonic()
                r = trial(kind, demos["base"].url, cand, args.seconds, args.rate, work / "runs", seed=i)
                r.update(seconds=args.seconds, rate=args.rate, hog=not args.no_hog,
                         hog_on_share=(hog.on_s / hog.total_s) if hog and hog.total_s else None,
                         load_avg=os.getloadavg()[0], took_s=time.monotonic() - started)
                f.write(json.dumps(r) + "\n")
                f.flush()
                results.append(r)
                print(f"trial {i + 1}/{len(kinds)} {kind}: ab {r['ab']['verdict']}, compare {r['compare']['verdict']} "
                      f"({r['took_s']:.0f} s)", flush=True)
    finally:
        if hog is not None:
            hog.stop()
        for d in demos.values():
            with contextlib.suppress(Exception):
                d.stop()
    print(report(results, args.seconds))


if __name__ == "__main__":
    main()
