"""perfbench.bench: the runner (sync, async, calibration, warm-up, budgets, GC, processes), its statistics
recomputed from the raw rounds, cost per call (SQL, memory), run directories and comparisons.

Assertions are on structure, counts and recomputation, never on how fast anything ran."""

from __future__ import annotations

import asyncio
import gc
import json
import random
import statistics

import numpy as np
import polars as pl
import pytest

from perfbench import bench
from perfbench.bench import cost, runner
from perfbench.bench.stats import fit_scaling, round_stats
from perfbench.errors import ConfigError

TINY = {"max_time": 0.0, "min_rounds": 5, "max_rounds": 5, "min_time": 0.0}


# --- statistics ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_stats_match_a_recomputation_with_numpy(seed):
    rng = random.Random(seed)
    xs = [rng.lognormvariate(7, 0.3) for _ in range(rng.randint(5, 400))] + [1e6]  # one far outlier
    s = round_stats(xs, 17)
    a = np.array(xs)
    q1, q3 = np.percentile(a, [25, 75])
    iqr = q3 - q1
    assert s["rounds"] == len(xs) and s["loops"] == 17
    assert s["min_ns"] == a.min() and s["max_ns"] == a.max()
    assert s["mean_ns"] == pytest.approx(a.mean(), rel=1e-12)
    assert s["stddev_ns"] == pytest.approx(a.std(ddof=1), rel=1e-9)
    assert s["median_ns"] == pytest.approx(np.median(a), rel=1e-12)
    assert (s["q1_ns"], s["q3_ns"]) == (pytest.approx(q1, rel=1e-12), pytest.approx(q3, rel=1e-12))
    assert s["iqr_ns"] == pytest.approx(iqr, rel=1e-9)
    low, high = int((a < q1 - 1.5 * iqr).sum()), int((a > q3 + 1.5 * iqr).sum())
    assert (s["outliers_low"], s["outliers_high"], s["outliers"]) == (low, high, low + high)
    assert high >= 1
    assert s["ops"] == pytest.approx(1e9 / a.mean(), rel=1e-12)


def test_round_stats_of_one_round_and_bad_input():
    s = round_stats([250.0], 4)
    assert s["stddev_ns"] == 0 and s["iqr_ns"] == 0 and s["median_ns"] == 250 and s["outliers"] == 0
    with pytest.raises(ConfigError, match="at least one measured round"):
        round_stats([], 1)
    with pytest.raises(ConfigError, match="loops"):
        round_stats([1.0], 0)


@pytest.mark.parametrize(("model", "f"), [("constant", lambda n: 500.0), ("1/n", lambda n: 100 + 5e4 / n),
                                          ("linear", lambda n: 200 + 30 * n),
                                          ("n log n", lambda n: 50 + 10 * n * np.log(n)),
                                          ("quadratic", lambda n: 100 + 0.5 * n * n)])
def test_fit_scaling_names_the_model_that_made_the_times(model, f):
    ns = [10, 30, 100, 300, 1000, 3000]
    rng = random.Random(model)
    fit = fit_scaling(ns, [f(n) * (1 + rng.uniform(-0.02, 0.02)) for n in ns])
    assert fit["model"] == model, fit["text"]
    verb = {"constant": "is", "1/n": "falls as"}.get(model, "grows as")
    assert fit["text"].startswith(f"time {verb} {model} in n")
    assert set(fit["fits"]) == {"constant", "1/n", "linear", "n log n", "quadratic"}


def test_fit_scaling_needs_three_values():
    assert fit_scaling([10, 100], [1.0, 2.0])["model"] is None
    assert "too few" in fit_scaling([10, 10, 10], [1.0, 2.0, 3.0])["text"]


# --- the runner -----------------------------------------------------------------------------------


def _drive(plan, cost_per_call):
    """Run a plan against a fake timer: a round of n loops takes n * cost_per_call ns; every yield seen."""
    seen = [next(plan)]
    try:
        while True:
            seen.append(plan.send(seen[-1] * cost_per_call))
    except StopIteration as stop:
        return stop.value, seen


@pytest.mark.parametrize("cost_ns", [3, 40, 900, 50_000])
def test_calibration_reaches_the_round_target_and_no_further_than_needed(cost_ns):
    o = runner.Options(min_time=20e-6, warmup_rounds=2, max_time=0, min_rounds=4, max_rounds=4)
    m, seen = _drive(runner._plan(o, resolution_ns=50.0), cost_ns)
    target = max(20e3, 100 * 50.0)
    assert m.loops * cost_ns >= target
    calib = seen[: len(seen) - 6]  # then 2 warm-up and 4 measured rounds, all at the calibrated count
    assert seen[len(calib):] == [m.loops] * 6
    assert all(n * cost_ns < target for n in calib[:-1]) and calib[-1] == m.loops
    assert m.loops == 1 or m.loops <= 10 * calib[-2]  # grows at most 10x a step
    assert m.per_call_ns == [float(cost_ns)] * 4 and len(m.starts_ns) == 4


def test_every_call_is_accounted_for_with_fixed_loops_and_warmup():
    calls = []
    r = bench.run(lambda: calls.append(1), loops=3, warmup_rounds=2, **{**TINY, "min_rounds": 4, "max_rounds": 4})
    assert len(calls) == 1 + 2 * 3 + 4 * 3  # the first call, the warm-up, the measured rounds
    assert r.loops == 3 and len(r.per_call_ns) == 4 and r.workers == [0] * 4
    assert r.stats["rounds"] == 4 and not r.is_async
    assert r.starts_ns == sorted(r.starts_ns)


def test_max_rounds_ends_a_benchmark_before_its_time_budget():
    r = bench.run(sum, [1, 2, 3], max_time=30.0, min_rounds=2, max_rounds=7, min_time=0.0)
    assert len(r.per_call_ns) == 7 and r.name == "sum"


def test_a_partial_is_named_after_its_function():
    import functools

    assert bench.run(functools.partial(sorted, reverse=True), [3, 1], **TINY).name == "sorted"


def test_min_rounds_are_measured_even_without_a_budget():
    r = bench.run(len, "abc", max_time=0.0, min_rounds=9, max_rounds=100)
    assert len(r.per_call_ns) == 9


def test_async_functions_run_on_one_loop_and_every_await_is_counted():
    loops_seen, calls = set(), []

    async def fetch(x):
        loops_seen.add(id(asyncio.get_running_loop()))
        calls.append(x)
        await asyncio.sleep(0)

    r = bench.run(fetch, 5, loops=2, warmup_rounds=1, **{**TINY, "min_rounds": 3, "max_rounds": 3})
    assert r.is_async and len(loops_seen) == 1 and set(calls) == {5}
    assert len(calls) == 1 + 1 * 2 + 3 * 2
    assert len(r.per_call_ns) == 3


def test_arun_uses_the_running_loop_and_run_refuses_inside_one():
    async def noop():
        return None

    async def main():
        r = await bench.arun(noop, **TINY)
        with pytest.raises(ConfigError, match="await perfbench.bench.arun"):
            bench.run(noop, **TINY)
        with pytest.raises(ConfigError, match="not an async def"):
            await bench.arun(len, "x")
        return r

    r = asyncio.run(main())
    assert r.is_async and len(r.per_call_ns) == 5


def test_a_sync_function_returning_a_coroutine_is_refused():
    async def inner():
        return 1

    with pytest.raises(ConfigError, match="returned an awaitable"):
        bench.run(lambda: inner(), **TINY)


def test_gc_is_off_during_rounds_when_asked_and_restored_after():
    states = []
    bench.run(lambda: states.append(gc.isenabled()), disable_gc=True, loops=1, warmup_rounds=0, **TINY)
    assert states[0] is True and set(states[1:]) == {False}  # the first call runs before the rounds
    assert gc.isenabled()


def test_worker_processes_share_the_rounds_with_one_loop_count():
    r = bench.run(sum, range(50), processes=2, loops=4, warmup_rounds=0, max_time=0.0, min_rounds=6,
                  max_rounds=6)
    assert r.loops == 4 and r.workers == [1, 1, 1, 2, 2, 2] and len(r.per_call_ns) == 6
    assert r.starts_ns == sorted(r.starts_ns)


def test_async_functions_in_worker_processes_calibrate_on_the_running_loop():
    async def tick():
        await asyncio.sleep(0)

    async def main():
        return await bench.arun(tick, processes=2, warmup_rounds=0, max_time=0.0, min_rounds=4, max_rounds=4)

    r = asyncio.run(main())
    assert r.is_async and r.workers == [1, 1, 2, 2] and r.loops >= 1


def test_a_failing_worker_is_reported():
    state = {"n": 0}

    def flaky():
        state["n"] += 1
        if state["n"] > 1:  # the first call runs here; the workers' calls fail
            raise RuntimeError("boom")

    with pytest.raises(bench.WorkerError, match="RuntimeError: boom"):
        bench.run(flaky, processes=2, loops=1, **TINY)


@pytest.mark.parametrize(("options", "field"), [({"max_time": -1}, "max_time"), ({"min_rounds": 0}, "min_rounds"),
                                                ({"loops": 0}, "loops"), ({"processes": 1.5}, "processes"),
                                                ({"min_rounds": 9, "max_rounds": 3}, "max_rounds"),
                                                ({"rounds": 3}, "unknown benchmark option rounds")])
def test_bad_options_name_the_field(options, field):
    with pytest.raises(ConfigError, match=field):
        bench.run(len, "x", **options)


# --- cost per call ----------------------------------------------------------------------------------


def test_sql_summary_matches_a_recount_of_the_statements():
    rng = random.Random(3)
    rows = {"request_id": [], "fingerprint": [], "duration_ns": []}
    for _ in range(200):
        rows["request_id"].append(rng.choice([0, 1, 2, None]))
        rows["fingerprint"].append(rng.choice("abc"))
        rows["duration_ns"].append(rng.randint(1, 1000))
    s = cost.sql_summary(rows, {"a": "SELECT a", "b": "SELECT b"}, 3, threshold=5)
    counts = [sum(1 for r in rows["request_id"] if r == i) for i in range(3)]
    assert s["statements_per_call"] == statistics.median(counts)
    assert (s["statements_min"], s["statements_max"]) == (min(counts), max(counts))
    times = [sum(d for r, d in zip(rows["request_id"], rows["duration_ns"], strict=True) if r == i) for i in range(3)]
    assert s["sql_ms_per_call"] == pytest.approx(statistics.median(times) / 1e6)
    for f in s["fingerprints"]:
        per = [sum(1 for r, fp in zip(rows["request_id"], rows["fingerprint"], strict=True) if r == i and
                   fp == f["fingerprint"]) for i in range(3)]
        assert f["per_call"] == statistics.median(per) and f["max_per_call"] == max(per)
    assert {g["fingerprint"] for g in s["n_plus_one"]} == {f["fingerprint"] for f in s["fingerprints"]
                                                          if f["max_per_call"] >= 5}


@pytest.fixture
def orm():
    """The demo's models on an in-memory SQLite: 8 posts by 8 users; authors loaded one query each, or eagerly."""
    import sqlalchemy as sa
    from sqlalchemy.orm import Session, selectinload

    from perfbench.demo.models import Base, Post, User, utcnow

    engine = sa.create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        for i in range(8):
            u = User(username=f"u{i}", email=f"u{i}@x", first_name="A", last_name="B", password_hash="-",
                     created_at=utcnow())
            s.add(u)
            s.flush()
            s.add(Post(author_id=u.id, title="t", body="b", created_at=utcnow()))
        s.commit()

    def lazy():
        with Session(engine) as s:
            return [s.get(User, p.author_id).username for p in s.scalars(sa.select(Post))]

    def eager():
        with Session(engine) as s:
            return [p.author.username for p in s.scalars(sa.select(Post).options(selectinload(Post.author)))]

    yield lazy, eager
    engine.dispose()


def test_sql_per_call_tells_eager_from_lazy_loading(orm):
    lazy, eager = orm
    s = bench.Session(**TINY)
    lz = s.run(lazy, sql=True, name="lazy")
    eg = s.run(eager, sql=True, name="eager")
    assert lz.sql["statements_per_call"] == 1 + 8 and lz.sql["calls"] == 3
    assert eg.sql["statements_per_call"] == 2 and eg.sql["n_plus_one"] == []
    [group] = lz.sql["n_plus_one"]
    assert group["repetitions"] == 8 and "users" in group["statement"].lower()
    t = s.table()
    assert t.filter(pl.col("benchmark") == "lazy")["sql_per_call"].item() == 9
    assert t.filter(pl.col("benchmark") == "lazy")["n_plus_one"].item() == 1
    assert "SQL/call" in str(s)


KEEP: list[bytes] = []


def test_memory_per_call_shows_peak_and_what_stays():
    s = bench.Session(**TINY)
    churn = s.run(lambda: len(list(range(100_000))), memory=True, name="churn")
    leak = s.run(lambda: KEEP.append(bytes(50_000)), memory=True, name="leak")
    assert churn.memory["peak_bytes"] >= 100_000 * 8 and churn.memory["net_bytes"] < 10_000
    assert leak.memory["net_bytes"] >= 50_000 and leak.memory["calls"] == 3
    t = s.table()
    assert t["mem_peak_kib"].to_list() == [churn.memory["peak_bytes"] / 1024, leak.memory["peak_bytes"] / 1024]


async def _sleep0():
    await asyncio.sleep(0)


def test_async_cost_per_call():
    r = bench.run(_sleep0, sql=True, memory=True, **TINY)
    assert r.sql["statements_per_call"] == 0 and r.memory["calls"] == 3


# --- run directories and comparisons ------------------------------------------------------------------


def synthetic(name, median_ns, n, sigma, seed, loops=10):
    rng = random.Random(f"{name}:{seed}")
    xs = [median_ns * rng.lognormvariate(0, sigma) for _ in range(n)]
    starts = [i * 1000 for i in range(n)]
    return runner.BenchResult(name, xs, starts, [0] * n, loops, 50.0, runner.Options())


def test_a_saved_run_holds_every_round_and_its_table_is_recomputed_from_them(tmp_path):
    from perfbench.rundir import BENCH_ROUNDS, read_json

    rs = [synthetic("a", 1000, 40, 0.05, 0), synthetic("b", 5000, 25, 0.05, 0)]
    rs[1].param = 100
    rs[1].sql = {"statements_per_call": 3, "sql_ms_per_call": 0.5, "n_plus_one": [], "calls": 3}
    path = bench.save_run(rs, tmp_path, "unit")
    meta = read_json(path / "meta.json")
    assert meta["kind"] == "bench" and [b["name"] for b in meta["benchmarks"]] == ["a", "b"]
    assert meta["benchmarks"][1]["stats"] == rs[1].stats and meta["machine"]["python"]
    rounds = pl.read_parquet(path / BENCH_ROUNDS)
    assert rounds.height == 65 and rounds["benchmark"].to_list() == ["a"] * 40 + ["b"] * 25
    assert rounds["per_call_ns"].to_list() == rs[0].per_call_ns + rs[1].per_call_ns
    assert rounds["start_ns"].is_sorted() and rounds["param"].to_list()[-1] == "100"
    loaded = bench.load_table(path)
    assert loaded.equals(bench.table(rs))
    assert loaded["sql_per_call"].to_list() == [None, 3.0]
    summary = json.loads((path / "summary.json").read_text())
    assert summary["benchmarks"]["a"]["stats"]["median_ns"] == statistics.median(rs[0].per_call_ns)
    assert bench.is_bench_run(path) and not bench.is_bench_run(tmp_path)


def test_saving_refuses_repeated_names_and_nothing(tmp_path):
    from perfbench.errors import RunDirError

    with pytest.raises(RunDirError, match="unique.*a"):
        bench.save_run([synthetic("a", 1, 3, 0.1, 0), synthetic("a", 1, 3, 0.1, 1)], tmp_path)
    with pytest.raises(RunDirError, match="no benchmark"):
        bench.save_run([], tmp_path)


def test_a_bench_run_is_a_comparison_side_with_one_sample_per_round(tmp_path):
    from perfbench import importers

    path = bench.save_run([synthetic("a", 1234.4, 30, 0.05, 0)], tmp_path)
    m = importers.load(path)
    assert m.source == "bench" and m.duration_s is None and m.endpoints() == ["a"]
    assert m.requests["latency_ns"].to_list() == [round(x) for x in bench.read_rounds(path)["per_call_ns"]]


def test_a_pytest_benchmark_file_against_a_bench_run_compares_the_median(tmp_path):
    """Moving from pytest-benchmark: its saved JSON is the baseline of a bench run with the same test names."""
    from pathlib import Path

    from perfbench import compare as cmp
    from perfbench import importers

    pb = Path(__file__).parent / "data" / "importers" / "pytest_benchmark_base.json"
    base = importers.load(pb)
    names = base.endpoints()
    medians = {e: float(base.requests.filter(pl.col("endpoint") == e)["latency_ns"].median()) for e in names}
    run = bench.save_run([synthetic(e, medians[e] * 2, 60, 0.01, 0) for e in names], tmp_path)
    c = cmp.compare(cmp.load_side(pb), cmp.load_side(run))
    assert {r.stat for r in c.rows} == {"p50"} and {r.endpoint for r in c.regressions} == set(names)


@pytest.fixture
def two_runs(tmp_path):
    base = [synthetic(n, 1000, 200, 0.02, 0) for n in ("slower", "faster", "same")]
    base.append(synthetic("noisy", 1000, 25, 0.6, 0))
    cur = [synthetic("slower", 1300, 200, 0.02, 1), synthetic("faster", 700, 200, 0.02, 1),
           synthetic("same", 1000, 200, 0.02, 1), synthetic("noisy", 1100, 25, 0.6, 1)]
    return bench.save_run(base, tmp_path / "runs", "base"), bench.save_run(cur, tmp_path / "runs", "cur")


def test_compare_two_bench_runs_gives_a_verdict_per_benchmark_on_the_median(two_runs):
    from perfbench import compare as cmp

    c = bench.compare(*two_runs)
    rows = {r.endpoint: r for r in c.rows}
    assert {r.stat for r in c.rows} == {"p50"} and set(rows) == {"slower", "faster", "same", "noisy"}
    assert rows["slower"].verdict == cmp.REGRESSION and rows["faster"].verdict == cmp.IMPROVEMENT
    assert rows["same"].verdict == cmp.NO_CHANGE and rows["same"].conclusive
    assert rows["noisy"].verdict == cmp.NO_CHANGE and not rows["noisy"].conclusive  # inconclusive
    for r in c.rows:
        assert r.interval == "bootstrap CI" and r.low < r.ratio < r.high
    assert c.exit_code == 10
    text, md = cmp.to_text(c), cmp.to_markdown(c)
    assert "REGRESSION" in text and "(inconclusive)" in text and "µs" in text and "slower" in md
    assert {r["endpoint"] for r in json.loads(cmp.to_json(c))["rows"]} == set(rows)
    import xml.etree.ElementTree as ET

    suite = ET.fromstring(cmp.to_junit(c))
    assert suite.get("tests") == "4" and suite.get("failures") == "1"
    [failed] = [t for t in suite.iter("testcase") if t.find("failure") is not None]
    assert failed.get("classname") == "perfbench.compare.slower"


def test_cli_compare_baseline_save_and_reports_accept_bench_runs(two_runs, tmp_path, capsys):
    from perfbench.cli import main

    base, cur = two_runs
    assert main(["compare", str(base), str(cur), "--json", str(tmp_path / "c.json"),
                 "--junit", str(tmp_path / "c.xml")]) == 10
    assert json.loads((tmp_path / "c.json").read_text())["verdict"] == "regression"
    assert main(["baseline", "save", str(base), "--name", "main", "--baselines-dir", str(tmp_path / "bl")]) == 0
    assert main(["compare", "main", str(cur), "--baselines-dir", str(tmp_path / "bl"), "--format", "json"]) == 10
    out = capsys.readouterr().out
    doc = json.loads(out[out.index("{"):])
    assert doc["baseline"]["source"] == "bench" and {r["stat"] for r in doc["rows"]} == {"p50"}
    assert main(["compare", str(base), str(base)]) == 0
    capsys.readouterr()
    assert main(["summary", str(cur)]) == 0
    out = capsys.readouterr().out
    assert f"benchmarks of {cur.name}: 4" in out and "slower" in out
    assert main(["summary", str(cur), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == bench.load_table(cur).to_dicts()
    assert main(["summary", str(cur), "--slo", "p95<1ms"]) == 2
    assert main(["reports", "--runs-dir", str(tmp_path / "runs"), "--reports-dir", str(tmp_path / "rep")]) == 0
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "Micro-benchmarks" in page and base.name in page and "slower" in page


def test_the_runner_and_the_plugin_load_without_the_analysis_stack():
    import subprocess
    import sys

    code = ("import sys; import perfbench.bench.plugin, perfbench.bench as b; r = b.run(len, 'x', max_time=0, "
            "min_rounds=3); heavy = [m for m in ('polars', 'pyarrow', 'numpy') if m in sys.modules]; "
            "print(heavy, r.stats['rounds'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["[]", "3"]


def test_the_n_plus_one_threshold_is_the_analysis_one():
    from perfbench.analysis.results import N_PLUS_ONE_THRESHOLD

    assert cost.N_PLUS_ONE_THRESHOLD == N_PLUS_ONE_THRESHOLD


# --- frames and charts ------------------------------------------------------------------------------


def test_round_histogram_counts_every_round_as_numpy_does(tmp_path):
    from perfbench.bench import frames

    rs = [synthetic("a", 1000, 300, 0.2, 0), synthetic("b", 50, 40, 0.01, 0), synthetic("c", 7, 5, 0.0, 0)]
    path = bench.save_run(rs, tmp_path)
    h = frames.round_histogram(bench.read_rounds(path), bins=12)
    for r in rs:
        g = h.filter(pl.col("benchmark") == r.name)
        us = np.array(r.per_call_ns) / 1e3
        if us.max() > us.min():
            counts, _ = np.histogram(us, bins=12, range=(us.min(), us.max()))
            assert g["rounds"].to_list() == counts.tolist()
        else:
            assert g["rounds"].to_list() == [len(us)]  # all equal: one bin
        assert g["bin_start_us"].min() == pytest.approx(us.min())


def test_scaling_points_and_fit_from_a_parametrized_session(tmp_path):
    from perfbench.bench import frames
    from perfbench.report import charts

    s = bench.Session(**TINY)
    s.parametrize(lambda n: sum(range(n)), [10, 100, 1000, 10_000], name="total")
    s.run(len, "x", name="plain")
    table = bench.load_table(s.save(tmp_path))
    pts = frames.scaling_points(table)
    assert pts["n"].to_list() == [10, 100, 1000, 10_000] and set(pts["group"]) == {"total"}
    assert pts["median_us"].to_list() == [r.stats["median_ns"] / 1e3 for r in s.results[:4]]
    fit, curve = frames.scaling_fit(pts)
    assert fit == s.scaling("total") and curve.height == 50
    assert curve["n"].min() == pytest.approx(10) and curve["n"].max() == pytest.approx(10_000)
    spec = charts.bench_scaling(pts, curve, fit_text=fit["text"]).to_dict()
    assert spec["title"]["subtitle"] == fit["text"]
    [run] = [p for p in tmp_path.iterdir() if (p / "meta.json").is_file()]
    assert "facet" in charts.bench_histograms(frames.round_histogram(bench.read_rounds(run))).to_dict()


def test_bench_charts_refuse_other_frames_and_say_when_empty():
    from perfbench.report import charts

    with pytest.raises(ConfigError, match="round_histogram"):
        charts.bench_histograms(pl.DataFrame({"x": [1]}))
    with pytest.raises(ConfigError, match="scaling_points"):
        charts.bench_scaling(pl.DataFrame({"n": [1.0]}))
    empty = pl.DataFrame(schema={"n": pl.Float64, "median_us": pl.Float64, "q1_us": pl.Float64, "q3_us": pl.Float64})
    assert "numeric parameter" in json.dumps(charts.bench_scaling(empty).to_dict())
