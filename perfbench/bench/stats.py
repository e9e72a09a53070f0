"""The numbers of a micro-benchmark, each computed here and nowhere else: pure functions on plain lists.

``round_stats`` takes one benchmark's measured rounds (time per call of each round, ns) and gives what
pytest-benchmark users read (min, max, mean, stddev, median, quartiles, IQR, Tukey outliers, ops/s,
rounds, loops per round). ``fit_scaling`` states how time grows with a numeric parameter.

Conventions: stddev is the sample standard deviation (n - 1); the median is ``statistics.median``;
the quartiles are ``statistics.quantiles(method="inclusive")`` (numpy's default linear
interpolation); an outlier is a round beyond 1.5 IQR from the nearest quartile (Tukey's fences);
ops/s = 1e9 / mean time per call.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError

STAT_KEYS = ("rounds", "loops", "min_ns", "max_ns", "mean_ns", "stddev_ns", "median_ns", "q1_ns", "q3_ns",
             "iqr_ns", "outliers", "outliers_low", "outliers_high", "ops")


def round_stats(per_call_ns: Sequence[float], loops: int) -> dict[str, Any]:
    """Every statistic of one benchmark from its rounds' time per call (ns) and loops per round."""
    xs = [float(x) for x in per_call_ns]
    if not xs:
        raise ConfigError("a benchmark needs at least one measured round, got none")
    if loops < 1:
        raise ConfigError(f"loops per round must be at least 1, got {loops}")
    n = len(xs)
    mean = statistics.fmean(xs)
    q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive") if n > 1 else (xs[0], xs[0], xs[0])
    iqr = q3 - q1
    low_fence, high_fence = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    low = sum(1 for x in xs if x < low_fence)
    high = sum(1 for x in xs if x > high_fence)
    return {
        "rounds": n, "loops": int(loops), "min_ns": min(xs), "max_ns": max(xs), "mean_ns": mean,
        "stddev_ns": statistics.stdev(xs) if n > 1 else 0.0, "median_ns": statistics.median(xs),
        "q1_ns": q1, "q3_ns": q3, "iqr_ns": iqr, "outliers": low + high, "outliers_low": low,
        "outliers_high": high, "ops": 1e9 / mean if mean > 0 else math.inf,
    }


# --- scaling with a parameter ---------------------------------------------------------------------

MODELS: dict[str, Any] = {  # simplest first
    "constant": lambda n: 1.0,
    "1/n": lambda n: 1.0 / n,  # a fixed cost shared by n (a batch's round trip spread over its rows)
    "linear": lambda n: float(n),
    "n log n": lambda n: n * math.log(n) if n > 1 else 0.0,
    "quadratic": lambda n: float(n) ** 2,
}


def _fit(xs: list[float], ts: list[float]) -> tuple[float, float, float]:
    """(a, b, relative rms error) of ts ≈ a + b·xs by least squares weighted by 1/t² (relative errors),
    with a, b >= 0 (a negative coefficient is set to 0 and the other refitted)."""
    w = [1 / (t * t) for t in ts]

    def solve_b_only() -> tuple[float, float]:
        den = sum(wi * x * x for wi, x in zip(w, xs, strict=True))
        return 0.0, max(0.0, sum(wi * x * t for wi, x, t in zip(w, xs, ts, strict=True)) / den) if den else 0.0

    def solve_a_only() -> tuple[float, float]:
        return sum(wi * t for wi, t in zip(w, ts, strict=True)) / sum(w), 0.0

    sw = sum(w)
    sx = sum(wi * x for wi, x in zip(w, xs, strict=True))
    sxx = sum(wi * x * x for wi, x in zip(w, xs, strict=True))
    st = sum(wi * t for wi, t in zip(w, ts, strict=True))
    sxt = sum(wi * x * t for wi, x, t in zip(w, xs, ts, strict=True))
    det = sw * sxx - sx * sx
    if det <= 1e-12 * max(sw * sxx, 1e-300):
        a, b = solve_a_only()
    else:
        a, b = (sxx * st - sx * sxt) / det, (sw * sxt - sx * st) / det
        if b < 0:
            a, b = solve_a_only()
        elif a < 0:
            a, b = solve_b_only()
    err = math.sqrt(statistics.fmean([((a + b * x) - t) ** 2 / (t * t) for x, t in zip(xs, ts, strict=True)]))
    return a, b, err


def fit_scaling(params: Sequence[float], times_ns: Sequence[float]) -> dict[str, Any]:
    """How time changes with a numeric parameter n: each model t = a + b·f(n) (f: 1, 1/n, n, n log n, n²) fitted
    by relative least squares, the best (smallest relative rms error; the simpler model on a tie within
    10%), the log-log slope, and a sentence. Needs at least 3 distinct positive n and positive times."""
    pairs = sorted((float(n), float(t)) for n, t in zip(params, times_ns, strict=True))
    if len({n for n, _ in pairs}) < 3 or any(n <= 0 or t <= 0 for n, t in pairs):
        return {"model": None, "slope": None, "fits": {},
                "text": "too few parameter values to fit a scaling (needs 3 or more distinct positive numbers)"}
    ns, ts = [n for n, _ in pairs], [t for _, t in pairs]
    lx, lt = [math.log(n) for n in ns], [math.log(t) for t in ts]
    mx, mt = statistics.fmean(lx), statistics.fmean(lt)
    slope = sum((x - mx) * (y - mt) for x, y in zip(lx, lt, strict=True)) / sum((x - mx) ** 2 for x in lx)
    fits = {}
    for name, f in MODELS.items():
        a, b, err = _fit([f(n) for n in ns], ts)
        fits[name] = {"a_ns": a, "b_ns": b, "rel_rms": err}
    best = min(fits, key=lambda k: fits[k]["rel_rms"])
    for name in MODELS:  # simplest first: prefer it when it fits nearly as well as the best
        if fits[name]["rel_rms"] <= fits[best]["rel_rms"] * 1.1 + 0.01:
            best = name
            break
    f = fits[best]
    form = {"constant": "a", "1/n": "a + b/n", "linear": "a + b·n", "n log n": "a + b·n·ln n",
            "quadratic": "a + b·n²"}[best]
    verb = "falls as" if best == "1/n" else "is" if best == "constant" else "grows as"
    text = (f"time {verb} {best} in n (t ≈ {form}, a = {_ns(f['a_ns'])}, b = {_ns(f['b_ns'])}; "
            f"relative rms error {f['rel_rms']:.1%}; log-log slope {slope:.2f}) over n = {ns[0]:g}..{ns[-1]:g}")
    return {"model": best, "slope": slope, "fits": fits, "text": text}


def _ns(v: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.3g} ns"


def human_ns(v: float) -> str:
    """A duration in ns as text with a unit that keeps 3 significant digits."""
    return _ns(v)
