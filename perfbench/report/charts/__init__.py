"""Charts: pure functions from the small, already aggregated frames of ``perfbench.analysis.results`` to Altair charts.

    hist = results.latency_histogram(run.requests)
    charts.latency_histogram(hist, percentiles={"p50": 4.1, "p99": 19.0})

Each function takes a Polars frame, checks its columns, reshapes it in Polars (never aggregates raw rows in
Altair) and returns a chart value. Nothing here does I/O or touches Altair's global registries (renderers,
themes, data transformers): rendering (reports use vl-convert's SVG) is the caller's business. No chart carries
``.configure_*`` so that any of them can be layered or concatenated; the shared look comes from ``PALETTE``,
``WIDTH``/``HEIGHT`` and the axis titles of ``base``. Latency is always in ms, time in seconds since the run start.

The charts live in submodules by what they show: ``load`` (one run's latency, throughput and errors),
``server`` (the target's resources, memory and SQL), ``bench`` (micro-benchmarks), ``experiments`` (stress, spike, soak, cold/warm,
regression, the reports index); ``base`` holds the shared look and helpers. All are re-exported here.
"""

from __future__ import annotations

from .base import (
    EXTRA_COLOURS,
    HEIGHT,
    LATENCY_AXIS,
    PALETTE,
    TIME_AXIS,
    WIDTH,
)
from .bench import bench_histograms, bench_scaling
from .experiments import (
    VERDICT_COLOURS,
    compare_endpoint_bars,
    distributions_overlaid,
    drift_fit,
    ecdf_overlay,
    error_rate_steps,
    ratio_forest,
    spike_timeline,
    stress_latency,
    stress_throughput,
    trend,
)
from .load import (
    endpoint_latency_bars,
    errors_over_time,
    latency_histogram,
    latency_over_time,
    overview,
    percentile_curve,
    throughput_over_time,
)
from .server import (
    MEMORY_AXIS,
    latency_vs_queries,
    leak_growth,
    memory_diff_bars,
    n_plus_one_findings,
    queries_per_request,
    resources_over_time,
    slowest_fingerprints,
)

__all__ = [
    "bench_histograms",
    "bench_scaling",
    "WIDTH",
    "HEIGHT",
    "PALETTE",
    "EXTRA_COLOURS",
    "LATENCY_AXIS",
    "TIME_AXIS",
    "latency_histogram",
    "percentile_curve",
    "latency_over_time",
    "throughput_over_time",
    "errors_over_time",
    "endpoint_latency_bars",
    "overview",
    "MEMORY_AXIS",
    "resources_over_time",
    "memory_diff_bars",
    "leak_growth",
    "queries_per_request",
    "n_plus_one_findings",
    "slowest_fingerprints",
    "latency_vs_queries",
    "stress_throughput",
    "stress_latency",
    "error_rate_steps",
    "spike_timeline",
    "drift_fit",
    "ecdf_overlay",
    "compare_endpoint_bars",
    "VERDICT_COLOURS",
    "ratio_forest",
    "distributions_overlaid",
    "trend",
]
