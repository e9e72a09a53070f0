"""The statistics of a comparison: pure functions on plain lists, no I/O, no numpy.

Percentile bootstrap, computed exactly and cheaply. Resampling n values with replacement from the
sorted sample ``x(1) <= ... <= x(n)`` is drawing ``F⁻¹(U_i)`` for n uniform ``U_i``, where
``F⁻¹(u) = x(ceil(n u))`` is non-decreasing; so the k-th smallest value of a resample is
``x(ceil(n U(k)))`` with ``U(k)``, the k-th smallest of n uniforms, distributed Beta(k, n + 1 - k).
One Beta draw (``random.betavariate``) thus gives one bootstrap replicate of the inverted-CDF
percentile (k = ceil(n p)), with the same distribution as resampling all n values: O(B) work per
percentile instead of O(B n), for any n.

Batch means: the bootstrap treats requests as independent, but on a real machine slow requests come
in bursts (a GC pause, a noisy neighbour), which makes a run's percentiles vary more than that. The
run is cut into m (4 to 10) consecutive time blocks, each with at least MIN_TAIL samples beyond
the percentile; when the block percentiles vary more than the bootstrap says the whole run's
percentile should, the bootstrap spread is widened by the ratio of the two standard deviations.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from statistics import NormalDist, fmean

EPS_MS = 1e-9  # latencies of 0 (coarse clocks) stay finite on a log scale
MIN_TAIL = 10  # a percentile needs at least this many samples beyond it on each side


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The inverted-CDF percentile (as ``perfbench.analysis.results.pct``) of already sorted values."""
    n = len(sorted_values)
    return sorted_values[max(math.ceil(n * p), 1) - 1]


def enough_for(n: int, p: float) -> bool:
    """Whether n samples can say anything about the p-percentile (MIN_TAIL on each side of it)."""
    return n * min(p, 1 - p) >= MIN_TAIL if 0 < p < 1 else n >= MIN_TAIL


def bootstrap_log_percentile(sorted_values: Sequence[float], p: float, n_boot: int,
                             rng: random.Random) -> list[float]:
    """``n_boot`` bootstrap replicates of log(percentile p), by the Beta order-statistic identity."""
    n = len(sorted_values)
    k = max(math.ceil(n * p), 1)
    a, b = float(k), float(n + 1 - k)
    out = []
    for _ in range(n_boot):
        u = rng.betavariate(a, b)
        out.append(math.log(max(sorted_values[min(max(math.ceil(n * u), 1), n) - 1], EPS_MS)))
    return out


def _sd(xs: Sequence[float]) -> float:
    if len(xs) < 2:
        return 0.0
    m = fmean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def batch_widening(time_ordered: Sequence[float], p: float, boot_sd: float, max_blocks: int = 10) -> float:
    """How much to widen the bootstrap of log(percentile p) for bursts: 1.0, or sd_batch / sd_boot.

    The values are cut, in time order, into m equal blocks (4 <= m <= max_blocks, each with at least
    MIN_TAIL samples beyond the percentile); sd_batch = sd(log block percentiles) / sqrt(m)
    estimates the run's percentile spread including correlation in time and drift within the run. It
    only widens, never narrows: with independent samples the factor is a little above 1 about half of
    the time (a small loss of power, the price of not crying wolf on a noisy machine).
    """
    n = len(time_ordered)
    tail = min(p, 1 - p)
    m = min(max_blocks, int(n * tail // MIN_TAIL))
    if m < 4 or boot_sd <= 0:
        return 1.0
    size = n // m
    logs = [math.log(max(percentile(sorted(time_ordered[i * size:(i + 1) * size]), p), EPS_MS)) for i in range(m)]
    sd_batch = _sd(logs) / math.sqrt(m)
    return max(1.0, sd_batch / boot_sd)


def quantiles(xs: Sequence[float], qs: Sequence[float]) -> list[float]:
    s = sorted(xs)
    return [s[min(max(math.ceil(len(s) * q), 1), len(s)) - 1] for q in qs]


def side_replicates(sorted_values: Sequence[float], p: float, *, n_boot: int, rng: random.Random,
                    time_ordered: Sequence[float] | None = None) -> tuple[float, list[float], float]:
    """(log point estimate, log bootstrap replicates, widening) of one side's percentile p.

    With ``time_ordered`` (the same values in time order), the replicates are stretched around the point
    estimate by ``batch_widening``.
    """
    point = math.log(max(percentile(sorted_values, p), EPS_MS))
    reps = bootstrap_log_percentile(sorted_values, p, n_boot, rng)
    widen = batch_widening(time_ordered, p, _sd(reps)) if time_ordered is not None else 1.0
    if widen != 1.0:
        reps = [point + widen * (r - point) for r in reps]
    return point, reps, widen


def ratio_ci(base: tuple[float, list[float], float], cur: tuple[float, list[float], float], *,
             confidence: float) -> tuple[float, float, float]:
    """(ratio, low, high): current/baseline from two ``side_replicates``, percentile-bootstrap CI.

    The sides are resampled independently, so the i-th replicates pair up into a replicate of the ratio.
    """
    diffs = [c - b for b, c in zip(base[1], cur[1], strict=True)]
    alpha = 1 - confidence
    lo, hi = quantiles(diffs, [alpha / 2, 1 - alpha / 2])
    return math.exp(cur[0] - base[0]), math.exp(lo), math.exp(hi)


def rate_ratio_ci(base_count: int, base_s: float, cur_count: int, cur_s: float, *,
                  confidence: float) -> tuple[float, float, float]:
    """(ratio, low, high) of two event rates, counts treated as Poisson: log-ratio ± z·sqrt(1/a + 1/b).

    Conservative for an open-model load (its arrivals are planned, so counts vary less than Poisson).
    """
    ratio = (cur_count / cur_s) / (base_count / base_s)
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    half = z * math.sqrt(1 / base_count + 1 / cur_count)
    return ratio, ratio * math.exp(-half), ratio * math.exp(half)
