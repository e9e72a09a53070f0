"""Several runs a side: verdicts that take the drift between runs into account.

    c = compare_sets([load_side(r) for r in base_runs], [load_side(r) for r in cur_runs])

Runs of one build measured at different times differ by more than their own sampling noise: on a
shared machine another job, a CPU's clock or a cache's state moves a whole run (the same build's p50
was seen to drift by 30-80 % between runs). Within-run intervals cannot see that; the spread of
several runs can.

**Method** (per endpoint and statistic). Each run gives one value: the percentile of its requests, or
its throughput. On the log scale the runs of a side are taken as independent draws around the side's
level, with the same spread on both sides (one machine, one kind of drift): the estimate of the
change is the difference of the two sides' mean log values, and its interval Student's t with the
pooled standard deviation, ``n_b + n_c - 2`` degrees of freedom. The run-to-run spread includes each
run's own sampling noise, so nothing is counted twice. With two runs a side (2 degrees of freedom)
the interval is wide (t = 4.30 at 95 %): the price of not trusting a single run. At least three runs
in all are needed, and at least two on one side.

**One run a side** (``compare_sets`` with one and one, i.e. ``perfbench compare BASE CUR``): the
drift between runs cannot be estimated, so the comparison says so and, unless given a threshold or
rules, judges each statistic only beyond ``SINGLE_RUN_DRIFT``, the drift measured between runs of one
build on this kind of machine (``benchmarks/run_drift.py``; the figures and the command are in
benchmarks/README.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import fmean

from ..errors import ConfigError
from ..importers.base import Measurements
from . import stats as st
from .core import (
    DEFAULT_CONFIDENCE,
    DEFAULT_STATS,
    DEFAULT_THRESHOLD,
    NO_CHANGE,
    PERCENTILES,
    THROUGHPUT,
    Comparison,
    Row,
    Rule,
    compare,
    decide,
    default_floor,
    default_stats,
)
from .noise import COMPARE_LIMITS, NoiseLimits
from .noise import reasons as noise_reasons

# The drift between two runs of one build on this machine, per statistic: the 95th percentile of
# |log(run_j / run_i)| over endpoints and pairs of runs, as a change (benchmarks/run_drift.py; the
# figures and the command in benchmarks/README.md). With one run a side, a change must exceed it.
# Measured on a busy shared 2-CPU machine (24 runs, other processes 0.2-1.9 cores): an upper bound for runs
# that pass the noise check. p99.9 takes p99's figure; throughput drifted 0% (an open model sends its plan),
# so it keeps compare's 10%.
SINGLE_RUN_DRIFT = {"p50": 0.60, "p90": 4.6, "p95": 8.2, "p99": 14.6, "p99_9": 14.6, THROUGHPUT: 0.10}
SINGLE_RUN_THRESHOLD = SINGLE_RUN_DRIFT["p50"]
INTERVAL = "t CI over runs"


def single_run_rules(stats: Sequence[str]) -> list[Rule]:
    """With one run a side and no threshold given: each statistic gates beyond its measured drift."""
    return [Rule(s, SINGLE_RUN_DRIFT[s]) for s in stats]


def single_run_note(rules: Sequence[Rule], given: bool) -> str:
    drift = ", ".join(f"{s} {d:.0%}" for s, d in SINGLE_RUN_DRIFT.items() if any(r.stat == s for r in rules))
    below = [str(r) for r in rules if r.limit < SINGLE_RUN_DRIFT.get(r.stat, 0)]
    told = (f"; the limits given ({', '.join(below)}) are below that drift, so a verdict may be the machine's"
            if given and below else "")
    return (f"one run a side: machine noise between runs is NOT accounted for (the intervals are within each "
            f"run). Runs of one build drift by up to {drift} on this kind of machine (benchmarks/run_drift.py), "
            f"so {'verdicts need a change beyond that' if not given else 'a verdict needs a change beyond the limit'}"
            f"{told}. Give several runs a side (perfbench compare B1 B2 B3 --vs C1 C2 C3) or use perfbench ab")


# --- Student's t, from the regularized incomplete beta function (no scipy) -------------------------

def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c if abs(1 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1 + aa * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c if abs(1 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-14:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1 - x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1 - math.exp(lbt) * _betacf(b, a, 1 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2, 0.5, df / (df + t * t))
    return 1 - tail if t > 0 else tail


def t_quantile(q: float, df: float) -> float:
    """The q-quantile of Student's t (0.5 < q < 1), by bisection on ``t_cdf``."""
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def pooled_t_interval(xb: Sequence[float], xc: Sequence[float], confidence: float) -> tuple[float, float, float]:
    """(estimate, low, high) of mean(xc) - mean(xb), pooled-variance Student t interval."""
    nb, nc = len(xb), len(xc)
    df = nb + nc - 2
    if df < 1:
        raise ConfigError("a comparison over runs needs at least three runs in all")
    mb, mc = fmean(xb), fmean(xc)
    ss = sum((x - mb) ** 2 for x in xb) + sum((x - mc) ** 2 for x in xc)
    se = math.sqrt(ss / df * (1 / nb + 1 / nc))
    half = t_quantile(1 - (1 - confidence) / 2, df) * se
    d = mc - mb
    return d, d - half, d + half


# --- run-level values ---------------------------------------------------------------------------------

def run_values(m: Measurements, stat: str) -> dict[str, tuple[float | None, int]]:
    """Per endpoint, this run's value of ``stat`` (None: too few requests) and its request count."""
    out: dict[str, tuple[float | None, int]] = {}
    if m.requests is not None:
        import polars as pl

        g = (m.requests.lazy().group_by("endpoint")
             .agg((pl.col("latency_ns") / 1e6).sort().alias("ms"), pl.col("error").is_null().sum().alias("ok"))
             .collect())
        for endpoint, ms, ok in g.iter_rows():
            if stat == THROUGHPUT:
                ok = (m.counts or {}).get(endpoint, ok)
                out[endpoint] = (ok / m.duration_s if ok and m.duration_s else None, len(ms))
            else:
                p = PERCENTILES[stat]
                out[endpoint] = (st.percentile(ms, p) if st.enough_for(len(ms), p) else None, len(ms))
        return out
    if m.summary is None:
        raise ConfigError(f"{m.label}: neither samples nor a summary to compare")
    for r in m.summary.iter_rows(named=True):
        n = r.get("count") or 0
        if stat == THROUGHPUT:
            ok = n - (r.get("errors") or 0)
            out[r["endpoint"]] = (ok / m.duration_s if ok and m.duration_s else None, n)
        else:
            out[r["endpoint"]] = (r.get(f"{stat}_ms"), n)
    return out


def _label(runs: Sequence[Measurements]) -> str:
    return runs[0].label if len(runs) == 1 else f"{len(runs)} runs ({', '.join(m.label for m in runs)})"


def compare_sets(baselines: Sequence[Measurements], currents: Sequence[Measurements], *,
                 threshold: float | None = None, confidence: float = DEFAULT_CONFIDENCE,
                 rules: list[Rule] | None = None, stats: tuple[str, ...] | None = None, n_boot: int = 2000,
                 seed: int = 0, min_change_ms: float | None = None, noise: NoiseLimits | None = COMPARE_LIMITS,
                 judge_noisy: bool = False) -> Comparison:
    """Compare a set of current runs with a set of baseline runs (see the module docstring).

    ``threshold`` None: ``SINGLE_RUN_THRESHOLD`` with one run a side, else ``DEFAULT_THRESHOLD``. ``stats``
    None: ``default_stats`` (the median alone between micro-benchmark runs, else DEFAULT_STATS). The drift
    between load runs does not apply to micro-benchmarks (rounds back to back, no network, no generator):
    one run a side of those is judged as ``compare`` judges it.
    """
    if not baselines or not currents:
        raise ConfigError("compare needs at least one baseline run and one current run")
    micro = default_stats(baselines[0], currents[0]) != DEFAULT_STATS
    if stats is None:
        stats = default_stats(baselines[0], currents[0])
    if len(baselines) == 1 and len(currents) == 1 and micro:
        return compare(baselines[0], currents[0], threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
                       confidence=confidence, rules=rules, stats=stats, n_boot=n_boot, seed=seed,
                       min_change_ms=min_change_ms, noise=noise, judge_noisy=judge_noisy)
    if len(baselines) == 1 and len(currents) == 1:
        given = threshold is not None or bool(rules)
        if not given:
            rules = single_run_rules(list(dict.fromkeys(stats)))
        c = compare(baselines[0], currents[0], threshold=SINGLE_RUN_THRESHOLD if threshold is None else threshold,
                    confidence=confidence, rules=rules, stats=stats, n_boot=n_boot, seed=seed,
                    min_change_ms=min_change_ms, noise=noise, judge_noisy=judge_noisy)
        c.notes.insert(0, single_run_note(c.rules, given))
        return c
    from .checks import compatibility_warnings

    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    problems = []
    if not 0 <= threshold < 10:
        problems.append(f"threshold must be a fraction between 0 and 10 (0.10 = 10%), got {threshold}")
    if not 0.5 <= confidence < 1:
        problems.append(f"confidence must be between 0.5 and 1 (e.g. 0.95), got {confidence}")
    if min_change_ms is None:
        min_change_ms = min(default_floor(m) for m in [*baselines, *currents])
    if min_change_ms < 0:
        problems.append(f"min_change_ms must be >= 0, got {min_change_ms}")
    if problems:
        raise ConfigError("cannot compare", problems)
    ruled = {r.stat: r for r in rules or []}
    wanted = list(dict.fromkeys([*stats, *ruled]))
    rows: list[Row] = []
    notes: list[str] = []
    for stat in wanted:
        limit = ruled[stat].limit if stat in ruled else threshold
        vb = [run_values(m, stat) for m in baselines]
        vc = [run_values(m, stat) for m in currents]
        common = sorted(set.intersection(*(set(v) for v in [*vb, *vc])))
        if not common and stat == wanted[0]:
            raise ConfigError("nothing to compare: no endpoint in every run of both sides")
        for endpoint in common:
            xb, xc = [v[endpoint][0] for v in vb], [v[endpoint][0] for v in vc]
            nb, nc = sum(v[endpoint][1] for v in vb), sum(v[endpoint][1] for v in vc)
            gating = stat in ruled if ruled else True
            if any(x is None or x <= 0 for x in [*xb, *xc]):
                rows.append(Row(endpoint, stat, None, None, None, None, None, "none", NO_CHANGE, limit, gating,
                                False, nb, nc, f"too few requests for {stat} in some run"))
                continue
            lb = [math.log(max(x, st.EPS_MS)) for x in xb if x is not None]
            lc = [math.log(max(x, st.EPS_MS)) for x in xc if x is not None]
            d, lo, hi = pooled_t_interval(lb, lc, confidence)
            base, cur = math.exp(fmean(lb)), math.exp(fmean(lc))
            verdict, conclusive = decide(stat, math.exp(lo), math.exp(hi), limit, baseline=base,
                                         floor=0.0 if stat == THROUGHPUT else min_change_ms)
            note = f"{len(lb)} + {len(lc)} runs, {len(lb) + len(lc) - 2} degrees of freedom"
            if not conclusive:
                note += "; inconclusive: the interval reaches beyond the threshold"
            rows.append(Row(endpoint, stat, base, cur, math.exp(d), math.exp(lo), math.exp(hi), INTERVAL, verdict,
                            limit, gating, conclusive, nb, nc, note))
    warnings = list(dict.fromkeys(w for b in baselines for c in currents for w in compatibility_warnings(b, c)))
    for m in [*baselines, *currents]:
        notes += [f"{m.label}: {n}" for n in m.notes]
    noisy = [] if noise is None else [
        r for side, runs in (("baseline", baselines), ("current", currents)) for m in runs
        for r in noise_reasons(f"{side} {m.label}", m.meta.get("generator"), m.meta.get("machine_load"), noise)]
    method = (f"over runs: per run the statistic (geometric mean of the runs shown), the log change's pooled "
              f"Student t interval across runs ({len(baselines)} baseline, {len(currents)} current); confidence "
              f"{confidence:g}; latency changes under {min_change_ms:g} ms get no verdict")
    return Comparison(_label(baselines), _label(currents), baselines[0].source, currents[0].source, rows, warnings,
                      notes, list(ruled.values()) or [Rule(s, threshold) for s in wanted], threshold, confidence,
                      0, seed, method, {"baseline": baselines[0].machine, "current": currents[0].machine}, noisy,
                      judge_noisy)
