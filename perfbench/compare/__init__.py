"""Regression verdicts: a current run against a baseline, per endpoint, with confidence intervals.

    from perfbench import compare
    c = compare.compare(compare.load_side("main"), compare.load_side("data/runs/<run-id>"))
    print(compare.to_text(c)); c.exit_code          # 10 on a regression, else 0

Statistics: for each endpoint both sides have, the change of the p50, p95 and p99 latency and of the
throughput (successful responses per second), as the ratio current / baseline with an interval.

- Percentiles, with raw samples on both sides: the percentile bootstrap of the ratio of percentiles
  (the percentile as ``results.pct`` defines it), each side resampled independently, B = 2000
  replicates, seeded per (seed, endpoint, statistic) so a comparison is reproducible. Each replicate is
  drawn exactly, without resampling n values: the k-th order statistic of a resample is
  x(ceil(n U)) with U ~ Beta(k, n + 1 - k) (see ``stats``). Because slow requests come in bursts, a
  side whose percentile varies across 4-10 time blocks more than the bootstrap says it should gets
  its bootstrap spread widened by that factor (batch means; only ever wider). A
  percentile needs at least 10 requests beyond it on each side (p95: 200 requests, p99: 1000) or it
  gets no verdict: a tail estimated from a handful of requests is one stall away from any value.
- Throughput: counts treated as Poisson, interval exp(log ratio ± z sqrt(1/a + 1/b)).
- Sources with aggregates only (Locust ``_stats.csv``, k6 ``--summary-export``, pytest-benchmark without
  ``data``): no confidence interval can be computed. Exact aggregates are compared as point estimates
  (the interval is the point); Locust's percentiles, rounded to ~2 significant digits, as the bounds
  of their rounding. The row says which (``interval``), and the notes say what the source lacked.

The decision rule, with threshold t (default 0.10) and confidence c (default 0.95), on the interval
[L, H] of the ratio r = current / baseline:

    latency    regression   iff  L > 1 + t    (the whole interval is more than t worse)
               improvement  iff  H < 1 - t
    throughput regression   iff  H < 1 - t    (worse is fewer responses per second)
               improvement  iff  L > 1 + t
    otherwise  no significant change; "inconclusive" when [L, H] reaches beyond 1 ± t.

and, for latency, the interval must also lie beyond the baseline value ± ``min_change_ms`` (default 1 ms
for HTTP load tests, 0 for pytest-benchmark): between two runs of one build on a shared machine a
0.5 ms endpoint moves by tenths of a millisecond, tens of percent, for reasons no code change made.

Why the whole interval beyond the threshold, and not "significant (L > 1) and the estimate beyond t":
the second rule calls about half of all true changes of exactly t a regression, so on a shared machine
whose runs drift by a few percent it cries wolf whenever the samples are large. This one guarantees,
for each row, P(regression) <= (1 - c) / 2 whenever the true change is at most t: the threshold is
the tolerated noise between runs, the confidence bounds the sampling noise. The price is power: a
change must exceed t by about the interval's half-width to be found (with 5000 requests a side, a 20%
shift of p50 and p95 is found nearly always, of p99 most of the time; the tests measure it). With
``--threshold 0`` the rule is a plain two-sided test at level 1 - c.

Rules (``Rule``, ``parse_rule("p95:+10%")``): without rules every statistic gates at the threshold; with
rules only the ruled statistics gate, each at its own limit, and the others are shown for information.
Comparing runs from different machines, Python or perfbench versions, tools, targets or load shapes
adds a warning to every output format (``checks``).
"""

from __future__ import annotations

import os

from ..importers import Measurements
from ..importers import load as load_source
from .baselines import DEFAULT_ROOT
from .baselines import load as load_baseline
from .baselines import resolve as resolve_baseline
from .core import (
    DEFAULT_CONFIDENCE,
    DEFAULT_STATS,
    DEFAULT_THRESHOLD,
    IMPROVEMENT,
    NO_CHANGE,
    PERCENTILES,
    REGRESSION,
    THROUGHPUT,
    Comparison,
    Row,
    Rule,
    compare,
    decide,
    parse_rule,
)
from .render import headline, to_json, to_junit, to_markdown, to_text

__all__ = ["DEFAULT_CONFIDENCE", "DEFAULT_STATS", "DEFAULT_THRESHOLD", "IMPROVEMENT", "NO_CHANGE", "PERCENTILES",
           "REGRESSION", "THROUGHPUT", "Comparison", "Row", "Rule", "check", "compare", "decide", "default_floor",
           "headline",
           "load_side", "parse_rule", "to_json", "to_junit", "to_markdown", "to_text"]


def load_side(spec: str | os.PathLike | Measurements, baselines_dir: str | os.PathLike = DEFAULT_ROOT
              ) -> Measurements:
    """A comparison side from a baseline name or directory, a run directory, or another tool's file(s)."""
    if isinstance(spec, Measurements):
        return spec
    if resolve_baseline(spec, baselines_dir) is not None:
        m = load_baseline(spec, baselines_dir)
        if m.source == "perfbench":
            m.source = "baseline"  # a saved perfbench run: the same tool
        return m
    return load_source(spec)


def check(comparison: Comparison) -> Comparison:
    """Raise ``RegressionFound`` when the comparison has a gating regression (for notebooks and scripts)."""
    from ..errors import RegressionFound

    if comparison.regressions:
        raise RegressionFound(headline(comparison))
    return comparison
