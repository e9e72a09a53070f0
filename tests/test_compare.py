"""The comparison's statistics on synthetic data with known truth, its rules and its output formats."""

from __future__ import annotations

import functools
import json
import math
import random
import xml.etree.ElementTree as ET

import pytest

from perfbench import compare as cmp
from perfbench.compare import stats as st
from perfbench.errors import ConfigError, RegressionFound
from perfbench.importers import Measurements, samples_frame

# the statistics on their own: no absolute floor (see test_the_absolute_floor)
compare = functools.partial(cmp.compare, min_change_ms=0.0)

MACHINE = {"node": "vm", "machine": "x86_64", "cpu_count": 2, "python": "3.11.7", "perfbench": "0.1.0"}


def side(samples: dict[str, list[float]], label: str = "s", machine: dict | None = None) -> Measurements:
    """Measurements from latencies (ms) per endpoint, one request every 10 ms in list order."""
    names, starts, lats = [], [], []
    for e, xs in samples.items():
        for i, x in enumerate(xs):
            names.append(e)
            starts.append(i * 10_000_000)
            lats.append(round(x * 1e6))
    duration = max(len(xs) for xs in samples.values()) / 100
    return Measurements(label=label, source="perfbench", requests=samples_frame(names, starts, lats),
                        duration_s=duration, meta={"machine": dict(MACHINE if machine is None else machine)})


def lognormal(rng: random.Random, n: int, median: float = 5.0, sigma: float = 0.5, scale: float = 1.0):
    return [scale * median * math.exp(rng.gauss(0, sigma)) for _ in range(n)]


def verdicts(c: cmp.Comparison) -> set[str]:
    return {f"{r.endpoint}:{r.stat}" for r in c.rows if r.verdict != cmp.NO_CHANGE}


# --- the exact bootstrap -------------------------------------------------------------------------------


def test_beta_bootstrap_matches_resampling():
    """GIVEN a sample, the Beta order-statistic replicates have the distribution of naive resampling."""
    rng = random.Random(1)
    xs = sorted(lognormal(rng, 200))
    p = 0.9
    fast = sorted(math.exp(v) for v in st.bootstrap_log_percentile(xs, p, 4000, random.Random(2)))
    naive = sorted(st.percentile(sorted(rng.choices(xs, k=len(xs))), p) for _ in range(4000))
    for q in (0.05, 0.25, 0.5, 0.75, 0.95):
        assert st.quantiles(fast, [q])[0] == pytest.approx(st.quantiles(naive, [q])[0], rel=0.03)


def test_percentile_is_results_pct():
    import polars as pl

    from perfbench.analysis.results import pct

    xs = [3.0, 1.0, 2.0, 10.0, 7.0]
    for p in (0.5, 0.95, 0.99):
        assert st.percentile(sorted(xs), p) == pl.DataFrame({"x": xs}).select(pct("x", p)).item()


# --- known truth -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_identical_distributions_give_no_verdict_in_95_percent_of_trials():
    """200 seeded trials, two endpoints, p50/p95/p99 and throughput: almost never a verdict."""
    flagged = 0
    for trial in range(200):
        rng = random.Random(trial)
        base = side({"a": lognormal(rng, 600), "b": lognormal(rng, 600, median=20, sigma=1.0)})
        cur = side({"a": lognormal(rng, 600), "b": lognormal(rng, 600, median=20, sigma=1.0)})
        c = compare(base, cur, n_boot=300, seed=trial)
        flagged += bool(verdicts(c))
    assert flagged / 200 <= 0.05, f"false verdicts in {flagged} of 200 trials"


def test_a_20_percent_shift_is_found():
    found = {"p50": 0, "p95": 0, "p99": 0}
    for trial in range(20):
        rng = random.Random(1000 + trial)
        c = compare(side({"a": lognormal(rng, 5000)}), side({"a": lognormal(rng, 5000, scale=1.2)}),
                        n_boot=400, seed=trial)
        for r in c.rows:
            if r.verdict == cmp.REGRESSION:
                found[r.stat] += 1
            assert r.verdict != cmp.IMPROVEMENT
        assert c.exit_code == 10 or found["p50"] < trial + 1
    assert found["p50"] >= 19 and found["p95"] >= 18, found
    assert found["p99"] >= 8, found  # p99 from 5000 requests: its interval is about ±7%


def test_the_improvement_mirror():
    rng = random.Random(5)
    c = compare(side({"a": lognormal(rng, 3000, scale=1.5)}), side({"a": lognormal(rng, 3000)}), n_boot=400)
    assert {r.stat: r.verdict for r in c.rows}["p50"] == cmp.IMPROVEMENT
    assert c.exit_code == 0


@pytest.mark.parametrize("kind", ["pareto", "lognormal_sigma2", "rare_huge_outliers"])
def test_heavy_tails_do_not_fool_it(kind):
    """Identical heavy-tailed distributions: a false verdict in at most 5% of 60 trials."""
    def draw(rng, n):
        if kind == "pareto":
            return [2.0 * rng.paretovariate(1.2) for _ in range(n)]
        if kind == "lognormal_sigma2":
            return lognormal(rng, n, sigma=2.0)
        return [5000.0 if rng.random() < 0.003 else rng.uniform(4, 6) for _ in range(n)]

    flagged = 0
    for trial in range(60):
        rng = random.Random(7000 + trial)
        c = compare(side({"a": draw(rng, 1500)}), side({"a": draw(rng, 1500)}), n_boot=300, seed=trial)
        flagged += bool(verdicts(c))
    assert flagged <= 3, f"{kind}: false verdicts in {flagged} of 60 trials"


def test_rare_huge_outliers_in_current_only_do_not_move_p50_or_p95():
    rng = random.Random(3)
    base = side({"a": [rng.uniform(4, 6) for _ in range(2000)]})
    cur = side({"a": [rng.uniform(4, 6) if rng.random() > 0.003 else 10_000.0 for _ in range(2000)]})
    rows = {r.stat: r for r in compare(base, cur, n_boot=400).rows}
    assert rows["p50"].verdict == rows["p95"].verdict == cmp.NO_CHANGE


def test_bursts_widen_the_interval_and_same_build_noise_is_not_a_regression():
    """Two runs of one build on a noisy machine: each has stalls (bursts of slow requests) at random times."""
    def noisy(rng):
        xs, stall = [], 0
        for _ in range(3000):
            if stall == 0 and rng.random() < 0.004:
                stall = rng.randint(20, 60)  # a neighbour takes the CPU for 20-60 requests
            xs.append(5 * math.exp(rng.gauss(0, 0.3)) * (rng.uniform(3, 8) if stall else 1))
            stall = max(stall - 1, 0)
        return xs

    flagged, widened = 0, 0
    for trial in range(30):
        rng = random.Random(500 + trial)
        c = compare(side({"a": noisy(rng)}), side({"a": noisy(rng)}), n_boot=300, seed=trial)
        flagged += any(r.verdict == cmp.REGRESSION for r in c.rows)
        widened += any("widened" in r.note for r in c.rows)
    assert flagged <= 1
    assert widened >= 10


def test_reproducible_with_a_seed():
    rng = random.Random(9)
    base, cur = side({"a": lognormal(rng, 800)}), side({"a": lognormal(rng, 800, scale=1.1)})
    a = compare(base, cur, n_boot=300, seed=4).to_dict()
    b = compare(base, cur, n_boot=300, seed=4).to_dict()
    assert a == b


def test_too_few_requests_for_a_tail_percentile_get_no_verdict():
    rng = random.Random(2)
    c = compare(side({"a": lognormal(rng, 100)}), side({"a": lognormal(rng, 100, scale=3)}), n_boot=300)
    p99 = next(r for r in c.rows if r.stat == "p99")
    assert p99.verdict == cmp.NO_CHANGE and p99.low is None and "too few" in p99.note


def test_the_absolute_floor():
    """A sure +30% on a 0.5 ms endpoint (+0.15 ms) is below the 1 ms default floor for HTTP runs."""
    rng = random.Random(21)
    base = side({"a": lognormal(rng, 3000, median=0.5)})
    cur = side({"a": lognormal(rng, 3000, median=0.5, scale=1.3)})
    assert not cmp.compare(base, cur, n_boot=300).regressions
    assert compare(base, cur, n_boot=300).regressions
    assert cmp.decide("p50", 1.3, 1.5, 0.1, baseline=10.0, floor=1.0)[0] == cmp.REGRESSION
    assert cmp.decide("p50", 1.3, 1.5, 0.1, baseline=2.0, floor=1.0)[0] == cmp.NO_CHANGE


# --- rules and decisions -----------------------------------------------------------------------------


def test_parse_rule():
    assert cmp.parse_rule("p95:+10%") == cmp.Rule("p95", 0.10)
    assert cmp.parse_rule("p99.9:+25%") == cmp.Rule("p99_9", 0.25)
    assert cmp.parse_rule("rps:-5%") == cmp.Rule("rps", 0.05)
    assert str(cmp.Rule("rps", 0.05)) == "rps:-5%"
    for bad in ("p95", "p95:-10%", "rps:+5%", "p42:+1%", "p95:+x%"):
        with pytest.raises(ConfigError):
            cmp.parse_rule(bad)


def test_decide():
    assert cmp.decide("p95", 1.11, 1.3, 0.10) == (cmp.REGRESSION, True)
    assert cmp.decide("p95", 1.05, 1.3, 0.10) == (cmp.NO_CHANGE, False)
    assert cmp.decide("p95", 0.95, 1.05, 0.10) == (cmp.NO_CHANGE, True)
    assert cmp.decide("p95", 0.5, 0.8, 0.10) == (cmp.IMPROVEMENT, True)
    assert cmp.decide("rps", 0.5, 0.8, 0.10) == (cmp.REGRESSION, True)


def test_rules_choose_what_gates():
    rng = random.Random(11)
    base = side({"a": lognormal(rng, 3000)})
    cur = side({"a": lognormal(rng, 3000, scale=1.5)})
    c = compare(base, cur, rules=[cmp.parse_rule("rps:-10%")], n_boot=300)
    assert c.exit_code == 0 and not c.regressions
    assert any(r.verdict == cmp.REGRESSION and not r.gating for r in c.rows)
    c = compare(base, cur, rules=[cmp.parse_rule("p50:+60%")], n_boot=300)
    assert c.exit_code == 0  # a 50% shift is within a 60% rule
    c = compare(base, cur, rules=[cmp.parse_rule("p50:+20%")], n_boot=300)
    assert c.exit_code == 10
    with pytest.raises(RegressionFound):
        cmp.check(c)


# --- outputs -----------------------------------------------------------------------------------------


def _regressed() -> cmp.Comparison:
    rng = random.Random(12)
    base = side({"fast": lognormal(rng, 2000), "slow": lognormal(rng, 2000)}, "base")
    cur = side({"fast": lognormal(rng, 2000), "slow": lognormal(rng, 2000, scale=2)}, "cur",
               machine={**MACHINE, "node": "other-host", "cpu_count": 8})
    return compare(base, cur, n_boot=300)


def test_outputs_carry_the_verdict_and_the_warnings():
    c = _regressed()
    assert {r.endpoint for r in c.regressions} == {"slow"}
    warning = next(w for w in c.warnings if w.startswith("DIFFERENT MACHINES"))
    text, md, js, junit = cmp.to_text(c), cmp.to_markdown(c), json.loads(cmp.to_json(c)), cmp.to_junit(c)
    assert text.startswith("WARNING: DIFFERENT MACHINES") and "REGRESSION: slow" in text
    assert "> [!WARNING]" in md and "🔴" in md and "| slow | p50 |" in md
    assert js["verdict"] == "regression" and js["exit_code"] == 10 and warning in js["warnings"]
    suite = ET.fromstring(junit)
    failed = [tc.get("classname") for tc in suite.iter("testcase") if tc.find("failure") is not None]
    assert failed and set(failed) == {"perfbench.compare.slow"}
    assert int(suite.get("failures")) == len(failed)
    assert warning in suite.find("system-err").text


def test_bad_parameters_are_all_reported():
    rng = random.Random(1)
    s = side({"a": lognormal(rng, 50)})
    with pytest.raises(ConfigError) as exc:
        compare(s, s, threshold=-1, confidence=1.5, n_boot=10)
    assert len(exc.value.problems) == 3


# --- refusing to judge a compromised run -------------------------------------------------------------


def _with(m: Measurements, *, generator: dict | None = None, machine_load: dict | None = None) -> Measurements:
    m.meta.update(generator=generator, machine_load=machine_load)
    return m


QUIET = {"other_cpu_cores": {"mean": 0.1, "max": 0.4}, "steal_share": {"mean": 0.0, "max": 0.0},
         "load1": {"mean": 0.5, "max": 0.7}}
BUSY = {"other_cpu_cores": {"mean": 1.3, "max": 2.0}, "steal_share": {"mean": 0.0, "max": 0.0},
        "load1": {"mean": 4.2, "max": 6.0}}
SATURATED = {"saturated": True, "saturation_reasons": ["send lag p99 25.0 ms is above the 10 ms bound"],
             "lag_ms": {"p99": 25.0}, "lag_bound_ms": 10.0, "capped": 0, "unsent": 0}


def _pair(base_load: dict, cur_load: dict, base_gen: dict | None = None):
    rng = random.Random(31)
    base = _with(side({"a": lognormal(rng, 2000)}, "base"), generator=base_gen or {"saturated": False},
                 machine_load=base_load)
    cur = _with(side({"a": lognormal(rng, 2000, scale=2)}, "cur"), generator={"saturated": False},
                machine_load=cur_load)
    return base, cur


def test_a_busy_machine_on_one_side_is_inconclusive_noisy_naming_the_side():
    base, cur = _pair(QUIET, BUSY)
    c = compare(base, cur, n_boot=300)
    assert c.judged_regressions  # the rows alone: a regression (x2)
    assert c.verdict == cmp.INCONCLUSIVE and c.verdict_reason == cmp.NOISY
    assert c.regressions == [] and c.improvements == [] and c.exit_code == 0
    assert c.noisy == ["current: the machine was busy: other processes used 1.30 cores on average (limit 0.5), "
                       "load average 4.2"]
    text, js = cmp.to_text(c), json.loads(cmp.to_json(c))
    assert "INCONCLUSIVE: noisy: current: the machine was busy" in text and "--judge-noisy" in text
    assert "not judged: noisy" in text
    assert js["verdict"] == "inconclusive" and js["verdict_reason"] == "noisy" and js["exit_code"] == 0
    suite = ET.fromstring(cmp.to_junit(c))
    assert suite.get("failures") == "0"
    assert any(p.get("name") == "noisy" for p in suite.iter("property"))
    with pytest.raises(RegressionFound):  # the notebook check: nothing to raise on an inconclusive comparison
        cmp.check(compare(*_pair(QUIET, QUIET), n_boot=300))
    cmp.check(c)


def test_a_saturated_generator_is_noisy_and_judge_noisy_overrides_and_says_so():
    base, cur = _pair(QUIET, QUIET, base_gen=SATURATED)
    c = compare(base, cur, n_boot=300)
    assert c.verdict == cmp.INCONCLUSIVE
    assert c.noisy == ["baseline: the load generator saturated: send lag p99 25.0 ms is above the 10 ms bound"]
    assert not any("saturated" in w for w in c.warnings)  # said once, as the reason, not also as a warning
    judged = compare(base, cur, n_boot=300, judge_noisy=True)
    assert judged.verdict == cmp.REGRESSION and judged.exit_code == RegressionFound.exit_code
    text = cmp.to_text(judged)
    assert "NOISY, JUDGED ANYWAY (--judge-noisy): baseline: the load generator saturated" in text
    assert json.loads(cmp.to_json(judged))["judge_noisy"] is True
    assert compare(base, cur, n_boot=300, noise=None).verdict == cmp.REGRESSION  # no limits at all


@pytest.mark.parametrize(("load", "limits", "noisy"), [
    (QUIET, cmp.COMPARE_LIMITS, False),
    ({**QUIET, "other_cpu_cores": {"mean": 0.5, "max": 1.9}}, cmp.COMPARE_LIMITS, False),  # at the limit: judged
    ({**QUIET, "other_cpu_cores": {"mean": 0.51, "max": 0.6}}, cmp.COMPARE_LIMITS, True),
    ({**QUIET, "steal_share": {"mean": 0.12, "max": 0.3}}, cmp.COMPARE_LIMITS, True),
    ({**QUIET, "steal_share": {"mean": 0.12, "max": 0.3}}, cmp.NoiseLimits(max_steal=0.2), False),
    (BUSY, cmp.NoiseLimits(max_other_cpu=1.5), False),
    (None, cmp.COMPARE_LIMITS, False),  # nothing recorded (an older run, another tool): nothing to refuse on
])
def test_the_stated_limits(load, limits, noisy):
    base, cur = _pair(QUIET, load)
    assert bool(compare(base, cur, n_boot=300, noise=limits).noisy) is noisy


def test_ab_limits_refuse_only_an_undelivered_plan():
    from perfbench.compare.noise import reasons

    lag_only = {**SATURATED}
    assert reasons("baseline", lag_only, BUSY, cmp.AB_LIMITS) == []
    assert reasons("candidate", {**lag_only, "unsent": 7}, None, cmp.AB_LIMITS) == [
        "candidate: the load generator saturated: 7 planned requests were never sent"]
    assert reasons("baseline", {"capped": 3}, None, cmp.AB_LIMITS)[0].endswith(
        "3 arrivals waited for the in-flight cap")
