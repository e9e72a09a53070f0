"""Baseline against current: one row per endpoint and statistic, each with a ratio, an interval and a verdict.

See the package docstring for the decision rule.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from ..errors import ConfigError
from ..importers.base import OVERALL, Measurements
from ..importers.locust import locust_step
from . import stats as st
from .noise import COMPARE_LIMITS, NoiseLimits
from .noise import reasons as noise_reasons

PERCENTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99, "p99_9": 0.999}
THROUGHPUT = "rps"  # successful responses per second
DEFAULT_STATS = ("p50", "p95", "p99", THROUGHPUT)
DEFAULT_THRESHOLD = 0.10
DEFAULT_CONFIDENCE = 0.95
DEFAULT_BOOT = 2000

REGRESSION, IMPROVEMENT, NO_CHANGE = "regression", "improvement", "no significant change"
INCONCLUSIVE = "inconclusive"
NOISY = "noisy"  # the reason of an inconclusive comparison that refused to judge a compromised run

_RULE = re.compile(r"^\s*(?P<stat>[a-z0-9_.]+)\s*:\s*(?P<sign>[+-])?\s*(?P<num>\d+(?:\.\d+)?)\s*%\s*$", re.I)


@dataclass(frozen=True)
class Rule:
    """Fail when ``stat`` gets worse by more than ``limit`` (a fraction), with the stated confidence.

    Latency percentiles get worse upwards (``p95:+10%``), throughput downwards (``rps:-10%``).
    """

    stat: str
    limit: float

    def __str__(self) -> str:
        return f"{self.stat}:{'-' if self.stat == THROUGHPUT else '+'}{self.limit * 100:g}%"


def parse_rule(text: str) -> Rule:
    """``"p95:+10%"`` -> Rule("p95", 0.10). Percentiles: p50, p90, p95, p99, p99_9 (or p99.9); throughput: rps."""
    m = _RULE.match(text)
    if not m:
        raise ConfigError(f"--fail-on {text!r}: expected STAT:+N% such as p95:+10% or rps:-5%")
    stat = m["stat"].lower().replace("p99.9", "p99_9")
    if stat not in PERCENTILES and stat != THROUGHPUT:
        raise ConfigError(f"--fail-on {text!r}: unknown statistic {stat!r}; use one of "
                          f"{', '.join([*PERCENTILES, THROUGHPUT])}")
    worse = "-" if stat == THROUGHPUT else "+"
    if m["sign"] and m["sign"] != worse:
        raise ConfigError(f"--fail-on {text!r}: {stat} gets worse {'down' if worse == '-' else 'up'}wards; "
                          f"write {stat}:{worse}{m['num']}%")
    limit = float(m["num"]) / 100
    if not 0 <= limit < 10:
        raise ConfigError(f"--fail-on {text!r}: the change must be between 0% and 1000%")
    return Rule(stat, limit)


def parse_rules(texts: list[str]) -> list[Rule]:
    """Every ``--fail-on`` rule, or one ConfigError listing every bad one."""
    rules, problems = [], []
    for text in texts:
        try:
            rules.append(parse_rule(text))
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("bad --fail-on", problems)
    return rules


@dataclass
class Row:
    endpoint: str
    stat: str
    baseline: float | None
    current: float | None
    ratio: float | None
    low: float | None  # interval of the ratio (None: none could be computed)
    high: float | None
    interval: str  # how low/high were obtained: "bootstrap CI", "Poisson CI", "rounding bounds", "point estimate"
    verdict: str
    threshold: float
    gating: bool  # whether a rule makes a regression here fail the comparison
    conclusive: bool  # False: the interval reaches beyond the threshold without a verdict
    n_baseline: int
    n_current: int
    note: str = ""

    @property
    def change(self) -> float | None:
        return None if self.ratio is None else self.ratio - 1


@dataclass
class Comparison:
    baseline: str
    current: str
    baseline_source: str
    current_source: str
    rows: list[Row]
    warnings: list[str]
    notes: list[str]
    rules: list[Rule]
    threshold: float
    confidence: float
    n_boot: int
    seed: int
    method: str = ""
    machines: dict[str, Any] = field(default_factory=dict)
    noisy: list[str] = field(default_factory=list)  # why a side's run is compromised (perfbench.compare.noise)
    judge_noisy: bool = False  # judge even so (and say so)

    @property
    def refused(self) -> bool:
        """Whether the comparison declines to judge: a side's run was noisy and ``judge_noisy`` is off."""
        return bool(self.noisy) and not self.judge_noisy

    @property
    def regressions(self) -> list[Row]:
        return [] if self.refused else self.judged_regressions

    @property
    def judged_regressions(self) -> list[Row]:
        """The gating regressions the rows show, whether or not the comparison refused to judge."""
        return [r for r in self.rows if r.gating and r.verdict == REGRESSION]

    @property
    def improvements(self) -> list[Row]:
        return [] if self.refused else [r for r in self.rows if r.verdict == IMPROVEMENT]

    @property
    def verdict(self) -> str:
        if self.refused:
            return INCONCLUSIVE
        return REGRESSION if self.regressions else (IMPROVEMENT if self.improvements else NO_CHANGE)

    @property
    def verdict_reason(self) -> str:
        """``noisy`` when the comparison refused to judge a compromised run, else empty."""
        return NOISY if self.refused else ""

    @property
    def exit_code(self) -> int:
        from ..errors import RegressionFound

        return RegressionFound.exit_code if self.regressions else 0

    def to_frame(self) -> pl.DataFrame:
        return pl.DataFrame([{**asdict(r), "change": r.change} for r in self.rows], schema_overrides={
            "baseline": pl.Float64, "current": pl.Float64, "ratio": pl.Float64, "low": pl.Float64,
            "high": pl.Float64, "change": pl.Float64}) if self.rows else pl.DataFrame()

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "verdict_reason": self.verdict_reason, "exit_code": self.exit_code,
                "noisy": self.noisy, "judge_noisy": self.judge_noisy,
                "baseline": {"label": self.baseline, "source": self.baseline_source},
                "current": {"label": self.current, "source": self.current_source},
                "threshold": self.threshold, "confidence": self.confidence, "rules": [str(r) for r in self.rules],
                "n_boot": self.n_boot, "seed": self.seed, "method": self.method, "warnings": self.warnings,
                "notes": self.notes, "machines": self.machines,
                "rows": [{**asdict(r), "change": r.change} for r in self.rows]}


def decide(stat: str, low: float, high: float, threshold: float, *, baseline: float | None = None,
           floor: float = 0.0) -> tuple[str, bool]:
    """(verdict, conclusive) from the interval [low, high] of current/baseline (the rule of the package doc).

    ``floor`` (ms, latency only): the interval must also be beyond ``baseline`` ± floor.
    """
    up, down = low > 1 + threshold, high < 1 - threshold
    if floor and baseline and stat != THROUGHPUT:
        up = up and baseline * (low - 1) > floor
        down = down and baseline * (1 - high) > floor
    if stat == THROUGHPUT:
        verdict = REGRESSION if down else IMPROVEMENT if up else NO_CHANGE
    else:
        verdict = REGRESSION if up else IMPROVEMENT if down else NO_CHANGE
    return verdict, verdict != NO_CHANGE or (low >= 1 - threshold and high <= 1 + threshold)


def compare(baseline: Measurements, current: Measurements, *, threshold: float = DEFAULT_THRESHOLD,
            confidence: float = DEFAULT_CONFIDENCE, rules: list[Rule] | None = None,
            stats: tuple[str, ...] | None = None, n_boot: int = DEFAULT_BOOT, seed: int = 0,
            batch: bool = True, min_change_ms: float | None = None, noise: NoiseLimits | None = COMPARE_LIMITS,
            judge_noisy: bool = False) -> Comparison:
    """Compare ``current`` with ``baseline``, per endpoint both have, on ``stats`` (and every ruled stat).

    Without ``rules`` every statistic gates at ``threshold``; with rules only the ruled ones gate (each at
    its own limit), the others are shown with a verdict at ``threshold``. ``stats``: default
    ``default_stats`` (the median alone between micro-benchmark runs, else DEFAULT_STATS). ``min_change_ms``: a latency
    change must also exceed this many ms (default: 1 ms for HTTP load tests, 0 for micro-benchmarks,
    see ``default_floor``). ``noise``: when either side's run is compromised by these limits
    (``perfbench.compare.noise``; None: never), the comparison refuses to judge ("inconclusive: noisy")
    unless ``judge_noisy``. Reproducible: the bootstrap of
    each (endpoint, statistic) draws from its own generator seeded by ``seed``, the endpoint and the stat.
    """
    from .checks import compatibility_warnings

    problems = []
    if not 0 <= threshold < 10:
        problems.append(f"threshold must be a fraction between 0 and 10 (0.10 = 10%), got {threshold}")
    if not 0.5 <= confidence < 1:
        problems.append(f"confidence must be between 0.5 and 1 (e.g. 0.95), got {confidence}")
    if n_boot < 100:
        problems.append(f"n_boot must be at least 100, got {n_boot}")
    if min_change_ms is None:
        min_change_ms = min(default_floor(baseline), default_floor(current))
    if min_change_ms < 0:
        problems.append(f"min_change_ms must be >= 0, got {min_change_ms}")
    if problems:
        raise ConfigError("cannot compare", problems)
    if stats is None:
        stats = default_stats(baseline, current)
    ruled = {r.stat: r for r in rules or []}
    wanted = list(dict.fromkeys([*stats, *ruled]))
    both_raw = baseline.has_samples and current.has_samples
    b_view, c_view = _view(baseline, not both_raw), _view(current, not both_raw)
    common = [e for e in b_view.endpoints if e in c_view.endpoints]
    notes = []
    for side, view, other in (("baseline", b_view, c_view), ("current", c_view, b_view)):
        only = [e for e in view.endpoints if e not in other.endpoints]
        if only:
            notes.append(f"only in the {side} (not compared): {', '.join(only)}")
    if not common:
        raise ConfigError(f"nothing to compare: no endpoint in both {baseline.label} "
                          f"({', '.join(b_view.endpoints) or 'none'}) and {current.label} "
                          f"({', '.join(c_view.endpoints) or 'none'})")
    rows = []
    for endpoint in common:
        for stat in wanted:
            limit = ruled[stat].limit if stat in ruled else threshold
            row = _row(endpoint, stat, b_view, c_view, limit=limit, confidence=confidence, n_boot=n_boot,
                       seed=seed, batch=batch, floor=min_change_ms)
            if row is not None:
                row.gating = stat in ruled if ruled else True
                rows.append(row)
    for m in (baseline, current):
        notes += [f"{m.label}: {n}" for n in m.notes]
    method = (f"percentiles: {'bootstrap' if both_raw else 'point estimates'} "
              f"{'(' + str(n_boot) + ' replicates, exact Beta order-statistic method, batch-means widening)' if both_raw else ''}; "
              f"throughput: Poisson interval on counts; confidence {confidence:.0%}; latency changes under "
              f"{min_change_ms:g} ms get no verdict").replace("  ", " ")
    noisy = [] if noise is None else [
        *noise_reasons("baseline", baseline.meta.get("generator"), baseline.meta.get("machine_load"), noise),
        *noise_reasons("current", current.meta.get("generator"), current.meta.get("machine_load"), noise)]
    return Comparison(baseline.label, current.label, baseline.source, current.source, rows,
                      compatibility_warnings(baseline, current), notes, list(ruled.values()) or
                      [Rule(s, threshold) for s in wanted], threshold, confidence, n_boot, seed, method,
                      {"baseline": baseline.machine, "current": current.machine}, noisy, judge_noisy)


@dataclass
class _View:
    """One side reduced to what a comparison reads: per endpoint, sorted and time-ordered latencies (ms),
    or summary values; successful-response counts and the duration for throughput."""

    m: Measurements
    endpoints: list[str]
    sorted_ms: dict[str, list[float]] = field(default_factory=dict)
    timed_ms: dict[str, list[float]] = field(default_factory=dict)
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    ok: dict[str, int] = field(default_factory=dict)
    raw: bool = True


def _view(m: Measurements, with_overall: bool) -> _View:
    if m.requests is not None:
        lf = m.requests.lazy().select("endpoint", "intended_ns", "latency_ns", "error")
        if with_overall:
            lf = pl.concat([lf, lf.with_columns(pl.lit(OVERALL).alias("endpoint"))])
        g = (lf.sort("intended_ns").group_by("endpoint", maintain_order=True)
             .agg((pl.col("latency_ns") / 1e6).alias("ms"), pl.col("error").is_null().sum().alias("ok"))
             .sort("endpoint").collect())
        v = _View(m, g["endpoint"].to_list(), raw=not with_overall)
        for e, ms, ok in g.iter_rows():
            v.timed_ms[e] = ms
            v.sorted_ms[e] = sorted(ms)
            v.ok[e] = ok
        if m.counts:
            v.ok.update({e: c for e, c in m.counts.items() if e in v.ok})
        if with_overall:
            for e, ms in v.sorted_ms.items():
                v.summary[e] = {f"{s}_ms": st.percentile(ms, p) for s, p in PERCENTILES.items()}
        return v
    if m.summary is None:
        raise ConfigError(f"{m.label}: neither samples nor a summary to compare")
    v = _View(m, sorted(m.summary["endpoint"].to_list()), raw=False)
    for r in m.summary.iter_rows(named=True):
        v.summary[r["endpoint"]] = r
        if r.get("count") is not None:
            v.ok[r["endpoint"]] = r["count"] - (r.get("errors") or 0)
    return v


MICRO_SOURCES = ("pytest-benchmark", "bench")  # sources whose samples are function calls, not HTTP requests
MICRO_STATS = ("p50",)  # what a comparison of two micro-benchmark runs judges by default: the median


def default_floor(m: Measurements) -> float:
    """The smallest latency change (ms) worth a verdict: 1 ms for HTTP requests (below it, scheduler and
    network-stack noise between runs of the same build), 0 for micro-benchmarks."""
    return 0.0 if m.source in MICRO_SOURCES else 1.0


def default_stats(baseline: Measurements, current: Measurements) -> tuple[str, ...]:
    """The statistics compared when none are asked for: the median of each benchmark when one side is a
    perfbench micro-benchmark run and the other one too or a pytest-benchmark file (a micro-benchmark's tail is
    the machine's noise, and rounds run back to back have no throughput), else DEFAULT_STATS."""
    sources = {baseline.source, current.source}
    return MICRO_STATS if "bench" in sources and sources <= set(MICRO_SOURCES) else DEFAULT_STATS


def _row(endpoint: str, stat: str, b: _View, c: _View, *, limit: float, confidence: float, n_boot: int,
         seed: int, batch: bool, floor: float) -> Row | None:
    if stat == THROUGHPUT:
        nb, nc = b.ok.get(endpoint), c.ok.get(endpoint)
        if not (nb and nc and b.m.duration_s and c.m.duration_s):
            return None
        ratio, lo, hi = st.rate_ratio_ci(nb, b.m.duration_s, nc, c.m.duration_s, confidence=confidence)
        verdict, conclusive = decide(stat, lo, hi, limit)
        return Row(endpoint, stat, nb / b.m.duration_s, nc / c.m.duration_s, ratio, lo, hi, "Poisson CI", verdict,
                   limit, True, conclusive, nb, nc)
    p = PERCENTILES[stat]
    vb: float | None  # the stat of each side: from the raw samples, else from the summary (None if absent)
    vc: float | None
    if b.raw and c.raw:
        xb, xc = b.sorted_ms[endpoint], c.sorted_ms[endpoint]
        vb, vc = st.percentile(xb, p), st.percentile(xc, p)
        if not (st.enough_for(len(xb), p) and st.enough_for(len(xc), p)):
            need = math.ceil(st.MIN_TAIL / min(p, 1 - p))
            return Row(endpoint, stat, vb, vc, vc / vb if vb else None, None, None, "none", NO_CHANGE, limit, True,
                       False, len(xb), len(xc), f"too few requests for {stat} (need {need} on each side)")
        rng = random.Random(f"{seed}:{endpoint}:{stat}")
        sb = st.side_replicates(xb, p, n_boot=n_boot, rng=rng, time_ordered=b.timed_ms[endpoint] if batch else None)
        sc = st.side_replicates(xc, p, n_boot=n_boot, rng=rng, time_ordered=c.timed_ms[endpoint] if batch else None)
        ratio, lo, hi = st.ratio_ci(sb, sc, confidence=confidence)
        verdict, conclusive = decide(stat, lo, hi, limit, baseline=vb, floor=floor)
        note = ""
        if sb[2] > 1 or sc[2] > 1:
            note = (f"interval widened for bursts (x{sb[2]:.2f} baseline, x{sc[2]:.2f} current): latency varies "
                    "more over time than independent requests would")
        if not conclusive:
            note = (note + "; " if note else "") + "inconclusive: the interval reaches beyond the threshold"
        return Row(endpoint, stat, vb, vc, ratio, lo, hi, "bootstrap CI", verdict, limit, True, conclusive,
                   len(xb), len(xc), note)
    vb, vc = b.summary.get(endpoint, {}).get(f"{stat}_ms"), c.summary.get(endpoint, {}).get(f"{stat}_ms")
    if vb is None or vc is None or vb <= 0:
        return None
    lb, hb = _bounds(vb, b.m.rounding)
    lc, hc = _bounds(vc, c.m.rounding)
    lo, hi = lc / hb, hc / lb
    rounded = bool(b.m.rounding or c.m.rounding)
    verdict, conclusive = decide(stat, lo, hi, limit, baseline=vb, floor=floor)
    note = "no raw samples: " + ("Locust's rounded percentiles, bounds from the rounding only" if rounded
                                 else "exact aggregates compared as point estimates")
    return Row(endpoint, stat, vb, vc, vc / vb, lo, hi, "rounding bounds" if rounded else "point estimate", verdict,
               limit, True, verdict != NO_CHANGE, b.ok.get(endpoint, 0), c.ok.get(endpoint, 0), note)


def _bounds(v: float, rounding: str | None) -> tuple[float, float]:
    if rounding != "locust":
        return v, v
    half = locust_step(v) / 2
    return max(v - half, half / 10), v + half
