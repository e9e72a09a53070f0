"""perfbench.bench: the runner (sync, async, calibration, warm-up, budgets, GC, processes), its statistics
recomputed from the raw rounds, cost per call (SQL, memory), run directories and comparisons.

Assertions are on structure, counts and recomputation, never on how fast anything ran."""

from __future__ import annotations

import asyncio
import gc
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


@pytest.mark.parametrize(("model", "f"), [("constant", lambda n: 500.0), ("linear", lambda n: 200 + 30 * n),
                                          ("n log n", lambda n: 50 + 10 * n * np.log(n)),
                                          ("quadratic", lambda n: 100 + 0.5 * n * n)])
def test_fit_scaling_names_the_model_that_made_the_times(model, f):
    ns = [10, 30, 100, 300, 1000, 3000]
    rng = random.Random(model)
    fit = fit_scaling(ns, [f(n) * (1 + rng.uniform(-0.02, 0.02)) for n in ns])
    assert fit["model"] == model, fit["text"]
    assert fit["text"].startswith(f"time grows as {model}")
    assert set(fit["fits"]) == {"constant", "linear", "n log n", "quadratic"}


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
    sa = pytest.importorskip("sqlalchemy")
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
