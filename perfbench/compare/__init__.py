"""Regression verdicts: a current run against a baseline, per endpoint, with confidence intervals.

    from perfbench import compare
    c = compare.compare(compare.load_side("main"), compare.load_side("data/runs/<run-id>"))
    print(compare.to_text(c)); c.exit_code          # 10 on a regression, else 0

Per endpoint both sides have: the ratio current / baseline of p50, p95, p99 and throughput, with a
bootstrap interval (raw samples) or as point estimates and rounding bounds (aggregates only). With
threshold t and confidence c, a latency **regression** is an interval wholly above 1 + t (and beyond
``min_change_ms``), an improvement one wholly below 1 - t; otherwise no significant change, or
"inconclusive" when the interval reaches beyond 1 ± t. Requiring the whole interval beyond the
threshold bounds false alarms by (1 - c) / 2 whenever the true change is at most t: the threshold is
the tolerated noise between runs, the confidence the sampling noise. ``docs/design.md`` ("Regression
verdicts") gives the method in full.

Two more things decide whether a verdict is given at all. A run whose generator saturated or whose
machine was busy with other processes is not judged: "inconclusive: noisy" (``noise``; ``judge_noisy``
overrides). And two single runs cannot show the drift between runs: ``compare_sets`` takes several
runs a side (a t interval over runs) and, with one run a side, judges only beyond the drift measured
on this kind of machine (``sets``).
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
    INCONCLUSIVE,
    NO_CHANGE,
    NOISY,
    PERCENTILES,
    REGRESSION,
    THROUGHPUT,
    Comparison,
    Row,
    Rule,
    compare,
    decide,
    parse_rule,
    parse_rules,
)
from .noise import AB_LIMITS, COMPARE_LIMITS, NoiseLimits
from .render import headline, to_json, to_junit, to_markdown, to_text
from .sets import SINGLE_RUN_DRIFT, compare_sets

__all__ = ["AB_LIMITS", "COMPARE_LIMITS", "DEFAULT_CONFIDENCE", "DEFAULT_STATS", "DEFAULT_THRESHOLD", "IMPROVEMENT",
           "INCONCLUSIVE", "NOISY", "NO_CHANGE", "PERCENTILES", "NoiseLimits",
           "REGRESSION", "SINGLE_RUN_DRIFT", "THROUGHPUT", "Comparison", "Row", "Rule", "check", "compare", "compare_sets",
           "decide", "default_floor",
           "headline",
           "load_side", "parse_rule", "parse_rules", "to_json", "to_junit", "to_markdown", "to_text"]


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
