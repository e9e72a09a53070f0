"""Several runs a side: the t interval over runs, against recomputation and synthetic drift with known truth;
one run a side says what it cannot see; the CLI's two forms."""

from __future__ import annotations

import math
import random
from statistics import fmean

import pytest

from perfbench import compare as cmp
from perfbench.cli import main
from perfbench.compare import sets
from perfbench.errors import ConfigError
from perfbench.importers import Measurements, samples_frame
from tests.test_baselines import make_run


def run(rng: random.Random, label: str, *, drift_sd: float, effect: float = 1.0, n: int = 1500,
        meta: dict | None = None) -> Measurements:
    """One run: lognormal latencies (median 5 ms), the whole run moved by exp(N(0, drift_sd)): the drift
    between runs that within-run statistics cannot see."""
    level = math.exp(rng.gauss(0, drift_sd)) * effect
    lats = [round(5e6 * level * math.exp(rng.gauss(0, 0.4))) for _ in range(n)]
    return Measurements(label=label, source="perfbench", duration_s=n / 100,
                        requests=samples_frame(["a"] * n, [i * 10_000_000 for i in range(n)], lats),
                        meta={"machine": {"node": "vm", "cpu_count": 2}, **(meta or {})})


@pytest.mark.parametrize(("q", "df", "want"), [(0.975, 1, 12.7062), (0.975, 2, 4.302653), (0.975, 4, 2.776445),
                                               (0.975, 10, 2.228139), (0.95, 3, 2.353363), (0.975, 1000, 1.962339)])
def test_t_quantiles_match_the_tables(q, df, want):
    assert sets.t_quantile(q, df) == pytest.approx(want, rel=1e-4)
    assert sets.t_cdf(sets.t_quantile(q, df), df) == pytest.approx(q, abs=1e-9)


def test_pooled_interval_against_a_recomputation():
    xb, xc = [1.0, 1.2, 0.9], [1.5, 1.7]
    d, lo, hi = sets.pooled_t_interval(xb, xc, 0.95)
    mb, mc = fmean(xb), fmean(xc)
    sp2 = (sum((x - mb) ** 2 for x in xb) + sum((x - mc) ** 2 for x in xc)) / 3
    half = 3.182446 * math.sqrt(sp2 * (1 / 3 + 1 / 2))  # t(0.975, 3)
    assert d == pytest.approx(mc - mb) and lo == pytest.approx(d - half, rel=1e-5) and hi == pytest.approx(d + half,
                                                                                                           rel=1e-5)
    with pytest.raises(ConfigError):
        sets.pooled_t_interval([1.0], [2.0], 0.95)


def test_rows_recompute_from_the_runs_percentiles():
    rng = random.Random(2)
    bs = [run(rng, f"b{i}", drift_sd=0.2) for i in range(3)]
    cs = [run(rng, f"c{i}", drift_sd=0.2, effect=1.5) for i in range(3)]
    c = sets.compare_sets(bs, cs, stats=("p50", "p95"))
    for r in c.rows:
        p = cmp.PERCENTILES[r.stat]
        logs = [[math.log(sorted(m.requests["latency_ns"] / 1e6)[math.ceil(len(m.requests) * p) - 1]) for m in side]
                for side in (bs, cs)]
        d, lo, hi = sets.pooled_t_interval(logs[0], logs[1], 0.95)
        assert r.ratio == pytest.approx(math.exp(d)) and r.low == pytest.approx(math.exp(lo))
        assert r.high == pytest.approx(math.exp(hi)) and r.interval == sets.INTERVAL
        assert r.baseline == pytest.approx(math.exp(fmean(logs[0])))
    assert c.baseline == "3 runs (b0, b1, b2)" and "Student t" in c.method


def test_drift_between_runs_is_taken_into_account():
    """Runs of one build drifting by sd 0.25 (log): 40 A/A trials of 3 runs a side give at most 2 verdicts,
    where one run a side at compare's within-run 10% threshold gives many."""
    rng = random.Random(7)
    over_runs = single = 0
    for trial in range(40):
        bs = [run(rng, f"b{i}", drift_sd=0.25) for i in range(3)]
        cs = [run(rng, f"c{i}", drift_sd=0.25) for i in range(3)]
        over_runs += sets.compare_sets(bs, cs, stats=("p50",), min_change_ms=0).verdict != cmp.NO_CHANGE
        single += cmp.compare(bs[0], cs[0], stats=("p50",), n_boot=200, seed=trial,
                              min_change_ms=0).verdict != cmp.NO_CHANGE
    assert over_runs <= 2, over_runs
    assert single >= 15, single  # what the runs' spread protects against


def test_a_large_change_is_found_over_runs():
    rng = random.Random(11)
    found = 0
    for _ in range(20):
        bs = [run(rng, f"b{i}", drift_sd=0.05) for i in range(3)]
        cs = [run(rng, f"c{i}", drift_sd=0.05, effect=1.6) for i in range(3)]
        c = sets.compare_sets(bs, cs, stats=("p50",), min_change_ms=0)
        found += c.verdict == cmp.REGRESSION
    assert found >= 18, found


def test_one_run_a_side_says_so_and_uses_the_drift_threshold():
    rng = random.Random(3)
    b, c1 = run(rng, "b", drift_sd=0.0), run(rng, "c", drift_sd=0.0, effect=1.2)
    c = sets.compare_sets([b], [c1], stats=("p50", "p95"), n_boot=300, min_change_ms=0)
    assert {r.stat: r.threshold for r in c.rows} == {"p50": sets.SINGLE_RUN_DRIFT["p50"],
                                                     "p95": sets.SINGLE_RUN_DRIFT["p95"]}
    assert all(r.gating for r in c.rows)
    assert c.notes[0].startswith("one run a side: machine noise between runs is NOT accounted for")
    assert c.verdict == cmp.NO_CHANGE  # +20% is within the drift one run a side cannot tell from a change
    given = sets.compare_sets([b], [c1], stats=("p50",), n_boot=300, threshold=0.05, min_change_ms=0)
    assert given.verdict == cmp.REGRESSION and "below that drift" in given.notes[0]
    assert "NOT accounted for" in cmp.to_text(given)


def test_a_noisy_run_in_a_set_is_named():
    rng = random.Random(5)
    busy = {"machine_load": {"other_cpu_cores": {"mean": 1.2, "max": 2.0}}}
    bs = [run(rng, f"b{i}", drift_sd=0.05) for i in range(2)]
    cs = [run(rng, "c0", drift_sd=0.05, effect=2), run(rng, "c1", drift_sd=0.05, effect=2, meta=busy)]
    c = sets.compare_sets(bs, cs, stats=("p50",))
    assert c.verdict == cmp.INCONCLUSIVE and c.judged_regressions
    assert c.noisy == ["current c1: the machine was busy: other processes used 1.20 cores on average (limit 0.5)"]
    assert sets.compare_sets(bs, cs, stats=("p50",), judge_noisy=True).verdict == cmp.REGRESSION


def test_one_side_of_one_run_against_several():
    rng = random.Random(9)
    bs = [run(rng, f"b{i}", drift_sd=0.05) for i in range(4)]
    c = sets.compare_sets(bs, [run(rng, "c", drift_sd=0.05, effect=2.0)], stats=("p50", "rps"))
    assert {r.stat: r.verdict for r in c.rows}["p50"] == cmp.REGRESSION
    assert "4 + 1 runs, 3 degrees of freedom" in c.rows[0].note


def test_cli_several_runs_a_side_and_the_two_argument_form(tmp_path, capsys):
    root = tmp_path / "runs"
    base = [make_run(root, f"b{i}", seed=i) for i in range(3)]
    slow = [make_run(root, f"s{i}", scale=2.0, seed=10 + i) for i in range(3)]
    js = tmp_path / "sets.json"
    code = main(["compare", *map(str, base), "--vs", *map(str, slow), "--json", str(js)])
    out = capsys.readouterr().out
    assert code == 10, out
    assert "REGRESSION: slow" in out and "3 runs (b0, b1, b2)" in out
    import json

    rows = json.loads(js.read_text())["rows"]
    assert {r["interval"] for r in rows} == {sets.INTERVAL} and {r["endpoint"] for r in rows} == {"fast", "slow"}
    assert main(["compare", str(base[0]), str(base[1])]) == 0  # today's form still works
    assert "NOT accounted for" in capsys.readouterr().out
    assert main(["compare", *map(str, base)]) == 2
    assert "BASELINE... --vs CURRENT..." in capsys.readouterr().err
