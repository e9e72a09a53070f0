"""perfbench.bench beside pytest-benchmark on the same functions, in one pytest session; and an A/A test.

pytest-benchmark is installed in the benchmark tool directory, never as a project dependency:

    python -m pip install --no-deps --target benchmarks/.tools/pytest-benchmark pytest-benchmark==5.3.1 py-cpuinfo
    .venv/bin/python benchmarks/bench_vs_pytest_benchmark.py --sessions 3 --aa 20

Side by side: one generated test file, each function (an empty one for the overhead, ~1 µs, ~100 µs, ~10 ms)
timed by pytest-benchmark's ``benchmark`` fixture and by perfbench's ``bench`` fixture in alternating tests of
one pytest session (both plugins loaded; the same ``max_time`` and ``min_rounds``, otherwise each tool's
defaults; ``--pb-min-time 0.00002`` also gives pytest-benchmark perfbench's shortest round). Reported per
function and session: both medians (time per call) and their ratio, and a third opinion measured in this
process afterwards: the median of ``timeit.repeat`` with perfbench's loops per round. The median of the empty
function is each runner's own overhead per call (the loop and the call).

A/A (``--aa N``): N pairs of perfbench runs of the same function (~1 µs and ~100 µs), each pair compared as
``perfbench compare`` does (median, 10% threshold, 95% confidence), while a busy-looping process competes for
the CPU; a verdict other than "no change" is a false one. Results go to
``benchmarks/results/<date>-bench-vs-pytest-benchmark.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TOOLS = HERE / ".tools" / "pytest-benchmark"
sys.path.insert(0, str(ROOT))

FUNCTIONS = '''
def noop():
    pass


def f_1us():
    return sum(i * i for i in range(25))


def f_100us():
    return sum(i * i for i in range(3_000))


def f_10ms():
    return sum(i * i for i in range(300_000))


FUNCS = {"noop": noop, "f_1us": f_1us, "f_100us": f_100us, "f_10ms": f_10ms}
'''
NAMES = ("noop", "f_1us", "f_100us", "f_10ms")


def test_file(pb_first: bool) -> str:
    """The tests, each function timed by both tools one after the other; which goes first alternates between
    sessions, so neither always meets the machine's drift first."""
    tests = [FUNCTIONS]
    first, second = ("a", "b") if pb_first else ("b", "a")
    for i, name in enumerate(NAMES):
        tests.append(f"def test_{i}{first}_pb_{name}(benchmark):\n    benchmark(FUNCS[{name!r}])\n")
        tests.append(f"def test_{i}{second}_pf_{name}(bench):\n    bench(FUNCS[{name!r}])\n")
    return "\n\n".join(tests)


def one_session(tmp: Path, max_time: float, min_rounds: int, pb_first: bool,
                pb_min_time: float | None = None) -> dict[str, dict[str, float]]:
    from perfbench.bench import load_table

    (tmp / "test_side_by_side.py").write_text(test_file(pb_first))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TOOLS)])}
    out = tmp / "pb.json"
    cmd = [sys.executable, "-m", "pytest", "-p", "perfbench.bench.plugin", "-p", "no:cacheprovider", "-q",
           "--rootdir", str(tmp), str(tmp / "test_side_by_side.py"),
           f"--benchmark-max-time={max_time}", f"--benchmark-min-rounds={min_rounds}", f"--benchmark-json={out}",
           "--bench-max-time", str(max_time), "--bench-min-rounds", str(min_rounds), "--bench-save", "side",
           "--bench-runs-dir", str(tmp / "runs"), "--bench-baselines-dir", str(tmp / "bl")]
    if pb_min_time is not None:
        cmd.append(f"--benchmark-min-time={pb_min_time}")
    r = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise SystemExit(f"the pytest session failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}")
    pb = {b["name"].split("_pb_")[1]: b["stats"] for b in json.loads(out.read_text())["benchmarks"]}
    [run] = [p for p in (tmp / "runs").iterdir() if p.is_dir()]
    pf = {row["benchmark"].split("_pf_")[1]: row for row in load_table(run).iter_rows(named=True)}
    res = {}
    for name in NAMES:
        a, b = pb[name]["median"] * 1e9, pf[name]["median_us"] * 1e3
        res[name] = {"pytest_benchmark_median_ns": a, "perfbench_median_ns": b, "ratio": b / a,
                     "pytest_benchmark_rounds": pb[name]["rounds"], "perfbench_rounds": pf[name]["rounds"],
                     "perfbench_loops": pf[name]["loops"], "pytest_benchmark_iterations": pb[name]["iterations"]}
    return res


def timeit_reference(sessions: list[dict[str, dict[str, float]]], seconds: float) -> dict[str, float]:
    """A third opinion, in this process: the median of ``timeit.repeat`` (per call, ns) with perfbench's loops
    per round, repeated for about ``seconds`` per function."""
    import timeit

    ns: dict[str, object] = {}
    exec(FUNCTIONS, ns)  # noqa: S102 - the same functions as the side-by-side session
    funcs = ns["FUNCS"]
    assert isinstance(funcs, dict)
    out = {}
    for name in NAMES:
        loops = int(statistics.median(s[name]["perfbench_loops"] for s in sessions))
        per_round = max(sessions[-1][name]["perfbench_median_ns"] * loops / 1e9, 1e-7)
        reps = timeit.Timer(funcs[name]).repeat(repeat=max(20, min(100_000, int(seconds / per_round))), number=loops)
        out[name] = statistics.median(reps) / loops * 1e9
    return out


def aa_test(pairs: int, max_time: float) -> dict[str, dict[str, int]]:
    """A/A under a CPU hog: how often two runs of the same function get a verdict other than no change."""
    from perfbench import bench
    from perfbench import compare as cmp

    ns: dict[str, object] = {}
    exec(FUNCTIONS, ns)  # noqa: S102 - the same functions as the side-by-side session
    funcs = ns["FUNCS"]
    assert isinstance(funcs, dict)
    hog = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 3600\nwhile time.time() < end: pass"])
    out: dict[str, dict[str, int]] = {}
    try:
        with tempfile.TemporaryDirectory() as d:
            for name in ("f_1us", "f_100us"):
                counts = {"pairs": 0, "no_change": 0, "inconclusive": 0, "regression": 0, "improvement": 0}
                for i in range(pairs):
                    runs = []
                    for side in ("a", "b"):
                        s = bench.Session(f"aa-{name}-{i}{side}", max_time=max_time)
                        s.run(funcs[name], name=name)
                        runs.append(s.save(d))
                    [row] = bench.compare(*runs, seed=i).rows
                    counts["pairs"] += 1
                    key = {cmp.REGRESSION: "regression", cmp.IMPROVEMENT: "improvement"}.get(row.verdict)
                    counts[key or ("no_change" if row.conclusive else "inconclusive")] += 1
                out[name] = counts
    finally:
        hog.kill()  # the process this script started, by its handle
        hog.wait()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=4, help="side-by-side pytest sessions (default 4; 0: A/A only)")
    ap.add_argument("--max-time", type=float, default=1.0, help="seconds of rounds per benchmark, both tools (1.0)")
    ap.add_argument("--min-rounds", type=int, default=20, help="rounds at least, both tools (default 20)")
    ap.add_argument("--pb-min-time", type=float, default=None, metavar="SECONDS",
                    help="pytest-benchmark's --benchmark-min-time (default: its own, 5 µs; perfbench's rounds last "
                         "at least 20 µs: 0.00002 gives both the same loops per round)")
    ap.add_argument("--aa", type=int, default=0, metavar="N", help="also N A/A pairs per function under a CPU hog")
    ap.add_argument("--aa-max-time", type=float, default=0.5, help="seconds of rounds per A/A run (default 0.5)")
    args = ap.parse_args()
    if not (TOOLS / "pytest_benchmark").is_dir():
        raise SystemExit(f"pytest-benchmark is not in {TOOLS}; install it there (see this script's docstring)")
    sessions = []
    for k in range(args.sessions):
        with tempfile.TemporaryDirectory() as d:
            sessions.append(one_session(Path(d), args.max_time, args.min_rounds, pb_first=k % 2 == 0,
                                        pb_min_time=args.pb_min_time))
        print(f"session {k + 1}/{args.sessions} done", file=sys.stderr)
    summary: dict[str, dict] = {}
    if sessions:
        ref = timeit_reference(sessions, args.max_time)
        lines = ["| function | pytest-benchmark median | perfbench median | timeit median | perfbench / pytest-benchmark "
                 "(per session) | median ratio | perfbench / timeit |", "|---|---|---|---|---|---|---|"]
        for name in NAMES:
            ratios = [s[name]["ratio"] for s in sessions]
            a = statistics.median(s[name]["pytest_benchmark_median_ns"] for s in sessions)
            b = statistics.median(s[name]["perfbench_median_ns"] for s in sessions)
            summary[name] = {"pytest_benchmark_median_ns": a, "perfbench_median_ns": b, "ratios": ratios,
                             "median_ratio": statistics.median(ratios), "timeit_median_ns": ref[name]}
            lines.append(f"| {name} | {_t(a)} | {_t(b)} | {_t(ref[name])} | {', '.join(f'{r:.3f}' for r in ratios)} | "
                         f"{statistics.median(ratios):.3f} | {b / ref[name]:.3f} |")
        print("\n".join(lines))
        print(f"\nrunner overhead per call (median of the empty function): perfbench "
              f"{_t(summary['noop']['perfbench_median_ns'])}, pytest-benchmark "
              f"{_t(summary['noop']['pytest_benchmark_median_ns'])}")
    doc = {"date": datetime.now().isoformat(timespec="seconds"), "args": vars(args), "sessions": sessions,
           "summary": summary, "python": sys.version.split()[0], "cpu_count": os.cpu_count()}
    if args.aa:
        t0 = time.monotonic()
        doc["aa"] = aa_test(args.aa, args.aa_max_time)
        for name, c in doc["aa"].items():
            false = c["regression"] + c["improvement"]
            print(f"A/A {name} under a CPU hog: {false} false verdicts of {c['pairs']} "
                  f"({false / c['pairs']:.0%}); {c['inconclusive']} inconclusive, {c['no_change']} no change")
        doc["aa_seconds"] = time.monotonic() - t0
    out = HERE / "results" / f"{datetime.now():%Y-%m-%d-%H%M%S}-bench-vs-pytest-benchmark.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwritten: {out.relative_to(ROOT)}")


def _t(ns: float) -> str:
    for unit, scale in (("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3f} {unit}"
    return f"{ns:.1f} ns"


if __name__ == "__main__":
    main()
