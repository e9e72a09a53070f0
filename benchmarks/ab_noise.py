"""Verdicts under a noisy machine: paired A/B (`perfbench ab`) against two separate runs (`perfbench compare`).

    .venv/bin/python benchmarks/ab_noise.py --aa 40 --effect 20 --seconds 60

Three demo instances on this machine, each in its own process on 127.0.0.1 (one SQLite file, read
only by these GET endpoints): the baseline, the same build again, and the same build with
``--slowdown /api/posts=15%`` (the naive post listing made 15 % slower, busy). A CPU hog (one
spinning process per CPU, started and stopped by PID) is switched on and off at random, for 0.5
to 8 s at a time, during every trial. Each trial is, in a random order:

- `ab`: one paired A/B run of ``--seconds`` at ``--rate`` (``--block``, default perfbench ab's), judged with its
  defaults;
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

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from perfbench import compare as cmp  # noqa: E402
from perfbench import shapes  # noqa: E402
from perfbench.compare.sets import compare_sets  # noqa: E402
from perfbench.demo.process import DemoProcess  # noqa: E402
from perfbench.experiments.ab import DEFAULT_BLOCK_S, run_ab  # noqa: E402
from perfbench.load import run_load  # noqa: E402
from perfbench.scenario import Request, Scenario  # noqa: E402
from perfbench.service import parse_cpus  # noqa: E402

SLOWED = "posts_naive"
SLOWDOWN = "/api/posts=15%"
SCENARIO = Scenario(name="ab_noise", requests=[
    Request("health", "GET", "/health", auth=False),
    Request("posts_eager", "GET", "/api/v2/posts?limit=10", auth=False),
    Request(SLOWED, "GET", "/api/posts?limit=3", auth=False, weight=2),
])
VERDICTS = (cmp.REGRESSION, cmp.IMPROVEMENT)


def spawn_detached(code: str) -> psutil.Process:
    """A Python process that is not our descendant (a short-lived parent starts it and exits), so the machine
    sampler counts its CPU as another process's, as it would a neighbour's; handled by its PID (psutil checks
    the PID still names that process before each signal)."""
    starter = ("import subprocess, sys\n"
               f"p = subprocess.Popen([sys.executable, '-c', {code!r}], start_new_session=True, "
               "stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\nprint(p.pid)\n")
    out = subprocess.run([sys.executable, "-c", starter], capture_output=True, text=True, check=True, timeout=60)
    return psutil.Process(int(out.stdout.strip()))


class Hog:
    """One spinning process per CPU, paused and resumed at random (SIGSTOP/SIGCONT, by PID); each ends by
    itself after ``lifetime_s`` whatever happens to us."""

    def __init__(self, lifetime_s: float, seed: int = 0):
        code = f"import time\nend = time.monotonic() + {lifetime_s}\nwhile time.monotonic() < end: pass\n"
        self.procs = [spawn_detached(code) for _ in range(os.cpu_count() or 2)]
        self.rng = random.Random(seed)
        self.on = True
        self.on_s = 0.0
        self.total_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._toggle, daemon=True)
        self._thread.start()

    def _signal(self, sig: int) -> None:
        for p in self.procs:
            with contextlib.suppress(psutil.Error):
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
            with contextlib.suppress(psutil.Error):
                p.terminate()
                p.wait(10)


def row(c: cmp.Comparison, endpoint: str, stat: str) -> dict | None:
    for r in c.rows:
        if r.endpoint == endpoint and r.stat == stat:
            return {"ratio": r.ratio, "low": r.low, "high": r.high, "verdict": r.verdict}
    return None


def outcome(c: cmp.Comparison, verdict: str) -> dict:
    """What a method said: its verdict, whether it refused as noisy, and the rows' own verdicts."""
    return {"verdict": verdict, "noisy": c.noisy, "refused": c.refused,
            "false_rows": [f"{r.endpoint} {r.stat} {r.verdict}" for r in c.rows if r.verdict in VERDICTS],
            "slowed_p50": row(c, SLOWED, "p50"),
            "rows": [{"endpoint": r.endpoint, "stat": r.stat, "low": r.low, "high": r.high, "ratio": r.ratio}
                     for r in c.rows if r.stat != cmp.THROUGHPUT]}


def other_cpu(run_dir: Path) -> float | None:
    machine = json.loads((run_dir / "summary.json").read_text()).get("machine") or {}
    return (machine.get("other_cpu_cores") or {}).get("mean")


def trial(kind: str, base: str, cand: str, seconds: float, rate: float, runs: Path, seed: int, block: float,
          only_ab: bool = False, segments: int = 1, restart=None, only_compare: bool = False) -> dict:
    quiet = {"announce": lambda line: None}
    out: dict = {"kind": kind, "seed": seed}
    if not only_compare:
        res = run_ab(base, cand, shapes.constant(rate, seconds), SCENARIO, block_s=block, seed=seed,
                     runs_dir=runs / "ab", segments=segments, restart=restart, **quiet)
        out["ab"] = {**outcome(res.comparison.comparison, res.comparison.verdict), "other_cpu": other_cpu(res.path),
                     "block": block}
    if only_ab:
        return out
    plan = shapes.constant(rate, seconds / 2)
    a = run_load(base, plan, SCENARIO, runs_dir=runs / "cmp", label="base", progress=False, **quiet).path
    b = run_load(cand, plan, SCENARIO, runs_dir=runs / "cmp", label="cand", progress=False, **quiet).path
    sa, sb = cmp.load_side(a), cmp.load_side(b)
    now = compare_sets([sa], [sb], n_boot=1000)  # perfbench compare A B as it is now
    old = cmp.compare(sa, sb, n_boot=1000, noise=None)  # before: 10%, judged whatever the machine did
    out["compare"] = {**outcome(now, now.verdict), "other_cpu": [other_cpu(a), other_cpu(b)]}
    out["compare_old"] = outcome(old, old.verdict)
    return out


METHODS = (("ab", "`perfbench ab` (paired blocks)"),
           ("compare", "`perfbench compare A B` (now: noise refused, drift threshold)"),
           ("compare_old", "two runs, compare's former rules (10%, judged regardless)"))


def report(results: list[dict], seconds: float | None = None) -> str:
    aa = [r for r in results if r["kind"] == "aa"]
    fx = [r for r in results if r["kind"] == "effect"]
    methods = [(k, t) for k, t in METHODS if any(k in r for r in results)]  # each over the trials that ran it
    lines = ["| | " + " | ".join(t for _, t in methods) + " |", "| --- |" + " ---: |" * len(methods)]

    def share(rs: list[dict], method: str, pred) -> str:
        rs = [r for r in rs if method in r]
        if not rs:
            return "-"
        k = sum(1 for r in rs if pred(r[method]))
        return f"{k} / {len(rs)} ({k / len(rs):.0%})"

    def line(label: str, rs: list[dict], pred) -> None:
        lines.append(f"| {label} | " + " | ".join(share(rs, m, pred) for m, _ in methods) + " |")

    gave = lambda m: m["verdict"] in VERDICTS  # noqa: E731
    refused = lambda m: bool(m.get("refused"))  # noqa: E731
    found = lambda m: m["verdict"] == cmp.REGRESSION and any(  # noqa: E731
        x.startswith(f"{SLOWED} ") and x.endswith(cmp.REGRESSION) for x in m["false_rows"])
    other = lambda m: m["verdict"] in VERDICTS and any(  # noqa: E731
        not x.startswith(f"{SLOWED} ") for x in m["false_rows"])
    line("A/A trials giving a verdict (all false)", aa, gave)
    line("A/A trials refused: inconclusive (noisy)", aa, refused)
    line(f"+15% on {SLOWED}: found a regression of it", fx, found)
    line("+15% trials refused: inconclusive (noisy)", fx, refused)
    line("+15% trials with a verdict on another endpoint (false)", fx, other)
    for method in [m for m, _ in methods]:
        rows = [x for r in aa if method in r for x in r[method]["rows"] if x["low"] is not None]
        if rows:
            cover = sum(1 for x in rows if x["low"] <= 1 <= x["high"]) / len(rows)
            cells = [f"{cover:.1%} of {len(rows)}" if m == method else "" for m, _ in methods]
            lines.append(f"| {method}: A/A intervals covering 1 (every row with an interval) | "
                         + " | ".join(cells) + " |")
    aa, fx, results = ([r for r in rs if "ab" in r] for rs in (aa, fx, results))  # below: the A/B's own figures
    est = [r["ab"]["slowed_p50"]["ratio"] for r in fx if r["ab"]["slowed_p50"] and r["ab"]["slowed_p50"]["low"]]
    if est:
        true = statistics.median(est)
        ivs = [r["ab"]["slowed_p50"] for r in fx if r["ab"]["slowed_p50"] and r["ab"]["slowed_p50"]["low"]]
        cover = sum(1 for x in ivs if x["low"] <= true <= x["high"]) / len(ivs)
        pad = " |" * (len(methods) - 1)
        lines.append(f"| ab: {SLOWED} p50 ratio, median of the effect trials | {true:.3f} |{pad}")
        lines.append(f"| ab: effect intervals covering that median | {cover:.0%} of {len(ivs)} |{pad}")
        spread = sorted(x["ratio"] for x in ivs)
        lines.append(f"| ab: {SLOWED} p50 ratio over the effect trials, min / quartiles / max | "
                     f"{spread[0]:.3f} / {statistics.quantiles(spread, n=4)[0] if len(spread) > 1 else spread[0]:.3f} - "
                     f"{statistics.quantiles(spread, n=4)[2] if len(spread) > 1 else spread[0]:.3f} / {spread[-1]:.3f} |{pad}")
        others = [x["ratio"] for r in fx for x in r["ab"]["rows"]
                  if x["stat"] == "p50" and x["endpoint"] != SLOWED and x["ratio"]]
        if others:
            lines.append(f"| ab: the unslowed endpoints' p50 ratio in the effect trials, median (what the slowed "
                         f"endpoint's extra CPU work did to the requests queued behind it) | "
                         f"{statistics.median(others):.3f} |{pad}")
    halfs = [math.log(x["high"] / x["low"]) / 2 for r in aa for x in r["ab"]["rows"]
             if x["low"] and x["endpoint"] == SLOWED and x["stat"] == "p50"]
    if halfs:
        h = statistics.median(halfs)
        pad = " |" * (len(methods) - 1)
        lines.append(f"| ab: {SLOWED} p50 interval half-width (log), median over A/A | {h:.3f} |{pad}")
        if seconds:
            h60 = h * math.sqrt(seconds / 60)
            lines.append(f"| ab: minimum detectable change extrapolated to 60 s at the trials' rate (h x sqrt(t / 60); 50% power: 1.05 x e^h; ~84%: 1.05 x e^1.5h) | "
                         f"+{(1.05 * math.exp(h60) - 1):.0%} / +{(1.05 * math.exp(1.5 * h60) - 1):.0%} |{pad}")
    blocks = sorted({r["ab"].get("block", 1.0) for r in results})
    if len(blocks) > 1:  # several block lengths: the A/B method's figures for each
        for blk in blocks:
            rs = [r for r in results if r["ab"].get("block", 1.0) == blk]
            hw = sorted(math.log(x["high"] / x["low"]) / 2 for r in rs for x in r["ab"]["rows"]
                        if x["low"] and x["endpoint"].startswith("posts_") and x["stat"] == "p50")
            span = f"{statistics.median(hw):.3f} ({hw[0]:.3f}-{hw[-1]:.3f}, {len(hw)} rows)" if hw else "-"
            lines.append(f"| ab, {blk:g} s blocks: A/A verdicts; +15% found; post endpoints' p50 interval "
                         f"half-width (log), every trial: median (range) | "
                         f"{share([r for r in rs if r['kind'] == 'aa'], 'ab', gave)}; "
                         f"{share([r for r in rs if r['kind'] == 'effect'], 'ab', found)}; {span} |"
                         + " |" * (len(methods) - 1))
    loads = [r["ab"].get("other_cpu") for r in results if r["ab"].get("other_cpu") is not None]
    if loads:
        lines.append(f"| other processes' CPU during the A/B runs (cores, median / max) | "
                     f"{statistics.median(loads):.2f} / {max(loads):.2f} |" + " |" * (len(methods) - 1))
    return "\n".join(lines)


MARK_BEGIN = "<!-- ab_noise table: begin -->"
MARK_END = "<!-- ab_noise table: end -->"


def write_readme(table: str, header: str, readme: Path) -> None:
    """Put the table between the markers in benchmarks/README.md (appended with them if absent)."""
    text = readme.read_text()
    block = f"{MARK_BEGIN}\n{header}\n\n{table}\n{MARK_END}"
    if MARK_BEGIN in text and MARK_END in text:
        text = text[:text.index(MARK_BEGIN)] + block + text[text.index(MARK_END) + len(MARK_END):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    readme.write_text(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--aa", type=int, default=40, help="A/A trials (default 40)")
    p.add_argument("--effect", type=int, default=20, help="trials with the slowed build (default 20)")
    p.add_argument("--seconds", type=float, default=60.0, help="an A/B trial's length; each separate run is half")
    p.add_argument("--rate", type=float, default=50.0)
    p.add_argument("--slowdown", default=SLOWDOWN, metavar="PATH=N%",
                   help=f"the slowed build's --slowdown (default {SLOWDOWN}: 15%% of the handler's CPU time)")
    p.add_argument("--no-hog", action="store_true", help="no CPU hog (a quiet-machine reference)")
    p.add_argument("--block", type=float, nargs="+", default=[DEFAULT_BLOCK_S],
                   help=f"the A/B block length, s (default {DEFAULT_BLOCK_S:g}, as perfbench ab); several: one per "
                        "trial, in turn")
    p.add_argument("--only-ab", action="store_true", help="no separate runs (to compare A/B settings quickly)")
    p.add_argument("--only-compare", action="store_true",
                   help="only the two separate runs per trial (their table beside an --only-ab file's: --report both)")
    p.add_argument("--fresh-processes", action="store_true",
                   help="start new demo processes (and warm them) before every trial, instead of one set for all: "
                        "tells a difference between two processes from one that moves with time")
    p.add_argument("--segments", type=int, default=1,
                   help="with --fresh-processes: restart the trial's pair this many times in each A/B run, started "
                        "first in turn (as perfbench ab --segments; default 1, none)")
    p.add_argument("--first-seed", type=int, default=0,
                   help="the first trial's seed (the A/B's block order); the next trials count up from it")
    p.add_argument("--service-cpus", metavar="LIST",
                   help="pin the demo instances to these CPUs, all to the same set (as perfbench ab --service-cpus)")
    p.add_argument("--readme", metavar="FILE", help="also write the table into this README, between its markers "
                                                  "(benchmarks/README.md)")
    p.add_argument("--out", default="benchmarks/results/ab_noise.jsonl")
    p.add_argument("--report", metavar="FILE", nargs="+", help="print the table of earlier --out files and exit")
    args = p.parse_args()
    cpus = parse_cpus(args.service_cpus) if args.service_cpus else None
    if args.only_ab and args.only_compare:
        p.error("--only-ab and --only-compare leave nothing to run: give one")
    if args.segments > 1 and not args.fresh_processes:
        p.error("--segments restarts the trial's pair: give --fresh-processes")
    if args.report:
        rs = [json.loads(line) for f in args.report for line in Path(f).read_text().splitlines() if line.strip()]
        table = report(rs, args.seconds)
        print(table)
        if args.readme:
            write_readme(table, header(rs, " ".join(sys.argv[1:])), Path(args.readme))
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
    order_rng = random.Random(f"start-order:{args.first_seed}")

    def start_demos(names: tuple[str, ...] = ("base", "same", "slow"), order: list[str] | None = None,
                    ports: dict[str, int] | None = None) -> list[str]:
        """Start the named demos in a random order (the process started first reads ~1.5% slower at p50
        than its pair for the whole run, as perfbench ab's start_order says: so no side is always first),
        or in ``order``, on ``ports`` (name: port; default free ones); the order."""
        for d in demos.values():
            with contextlib.suppress(Exception):
                d.stop()
        demos.clear()
        if order is None:
            order = list(names)
            order_rng.shuffle(order)
        slowdowns = {"base": [], "same": [], "slow": [args.slowdown]}
        for name in order:
            slow = slowdowns[name]
            d = DemoProcess(db_path=db, max_seconds=budget, slowdown=slow, log_path=work / f"{name}.log", cpus=cpus,
                            port=(ports or {}).get(name, 0))
            d.start()
            demos[name] = d
        for d in demos.values():  # warm: the first requests of a process are slower (imports, caches)
            run_load(d.url, shapes.constant(50, 3), SCENARIO, runs_dir=work / "warm", progress=False,
                     announce=lambda line: None)
        return order

    try:
        # fresh processes: the trial's two only (a new pair, as a CI job starting two builds)
        first = start_demos(("base", "same" if kinds[0] == "aa" else "slow") if args.fresh_processes
                            else ("base", "same", "slow"))
        hog = None if args.no_hog else Hog(budget)
        with out.open("a") as f:
            for i, kind in enumerate(kinds):
                if args.fresh_processes and i:
                    first = start_demos(("base", "same" if kind == "aa" else "slow"))
                cand = demos["same" if kind == "aa" else "slow"].url
                started = time.monotonic()
                orders = [first]
                ports = {name: int(d.url.rsplit(":", 1)[1]) for name, d in demos.items()}

                def restart(k: int, pair: list[str] = first, orders: list = orders, ports: dict = ports) -> list[str]:
                    orders.append(start_demos(tuple(pair), order=pair if k % 2 == 0 else pair[::-1], ports=ports))
                    return orders[-1]

                r = trial(kind, demos["base"].url, cand, args.seconds, args.rate, work / "runs", seed=args.first_seed + i,
                          block=args.block[i % len(args.block)], only_ab=args.only_ab, segments=args.segments,
                          only_compare=args.only_compare,
                          restart=restart if args.segments > 1 else None)
                r.update(seconds=args.seconds, rate=args.rate, hog=not args.no_hog, fresh=args.fresh_processes,
                         service_cpus=args.service_cpus, started_first=first[0], started=orders,
                         segments=args.segments, slowdown=args.slowdown,
                         hog_on_share=(hog.on_s / hog.total_s) if hog and hog.total_s else None,
                         load_avg=os.getloadavg()[0], took_s=time.monotonic() - started)
                f.write(json.dumps(r) + "\n")
                f.flush()
                results.append(r)
                ab = r.get("ab", {})
                print(f"trial {i + 1}/{len(kinds)} {kind}: ab {ab.get('verdict')}, compare "
                      f"{r.get('compare', {}).get('verdict')}, old compare {r.get('compare_old', {}).get('verdict')} "
                      f"({r['took_s']:.0f} s, other cpu {ab.get('other_cpu', r.get('compare', {}).get('other_cpu'))})",
                      flush=True)
    finally:
        if hog is not None:
            hog.stop()
        for d in demos.values():
            with contextlib.suppress(Exception):
                d.stop()
    table = report(results, args.seconds)
    print(table)
    if args.readme and results:
        write_readme(table, header(results, " ".join(sys.argv[1:])), Path(args.readme))


def header(results: list[dict], argv: str) -> str:
    aa = sum(1 for r in results if r["kind"] == "aa")
    secs = sorted({r.get("seconds") for r in results if r.get("seconds")})
    rate = sorted({r.get("rate") for r in results if r.get("rate")})
    when = time.strftime("%Y-%m-%d", time.gmtime())
    pins = sorted({r.get("service_cpus") or "none" for r in results})
    return (f"Written by `benchmarks/ab_noise.py {argv}` on {when}: {aa} A/A and {len(results) - aa} effect trials "
            f"of {', '.join(f'{x:g}' for x in secs)} s at {', '.join(f'{x:g}' for x in rate)} req/s; demo instances "
            f"pinned to CPUs: {', '.join(pins)}.")


if __name__ == "__main__":
    main()
