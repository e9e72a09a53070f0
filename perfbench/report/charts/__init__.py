"""Charts: pure functions from the small, already aggregated frames of ``perfbench.analysis.results`` to Altair charts.

    hist = results.latency_histogram(run.requests)
    charts.latency_histogram(hist, percentiles={"p50": 4.1, "p99": 19.0})

Each function takes a Polars frame, checks its columns, reshapes it in Polars (never aggregates raw rows in
Altair) and returns a chart value. Nothing here does I/O or touches Altair's global registries (renderers,
themes, data transformers): rendering is the caller's business (``perfbench.report.nb.setup``). No chart carries
``.configure_*`` so that any of them can be layered or concatenated; the shared look comes from ``PALETTE``,
``WIDTH``/``HEIGHT`` and the axis titles of ``base``. Latency is always in ms, time in seconds since the run start.

The charts live in submodules by what they show: ``load`` (one run's latency, throughput and errors),
``server`` (the target's resources, memory and SQL), ``bench`` (micro-benchmarks), ``explain`` (where each request's time
went), ``gauges`` (the service's pools and queues over time), ``experiments`` (stress,
spike, soak, cold/warm, regression, the reports index), ``ab`` (a paired A/B run: the units the verdict
compares over time, both sides' distributions), ``timeline`` (the linked time views of a run); ``data``
makes the small frames they need that ``results`` does not (offered rate, status codes, per-endpoint latency
over time, failures); ``base`` holds the shared look and helpers; ``embed`` puts interactive charts into a page
with no network. All are re-exported here.

Conventions: latency axes are logarithmic (ms), time axes are seconds since the run's start on the run's
whole duration (``run_domain``), the warm-up is shaded, and every chart carries a one-sentence
``description`` made from its data (the rendered figure's alt text).
"""

from __future__ import annotations

from .ab import ab_distributions, ab_ratio_over_time, shared_movement
from .base import (
    EXTRA_COLOURS,
    HEIGHT,
    LATENCY_AXIS,
    LATENCY_FORMAT,
    PALETTE,
    TIME_AXIS,
    WIDTH,
)
from .bench import bench_histograms, bench_scaling
from .data import (
    endpoint_timeseries,
    failures,
    planned_rate,
    run_domain,
    status_timeseries,
    warmup_end_s,
)
from .experiments import (
    VERDICT_COLOURS,
    compare_endpoint_bars,
    distributions_overlaid,
    drift_fit,
    ecdf_overlay,
    ecdf_points,
    error_rate_steps,
    ratio_forest,
    spike_timeline,
    stress_latency,
    stress_limit,
    stress_throughput,
    trend,
)
from .explain import time_breakdown
from .gauges import gauges_over_time
from .load import (
    endpoint_latency_bars,
    endpoint_latency_over_time,
    errors_over_time,
    latency_histogram,
    latency_over_time,
    overview,
    percentile_curve,
    status_over_time,
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
    resources_panels,
    slowest_fingerprints,
)
from .timeline import timeline

__all__ = [
    "bench_histograms",
    "bench_scaling",
    "WIDTH",
    "HEIGHT",
    "PALETTE",
    "EXTRA_COLOURS",
    "LATENCY_AXIS",
    "TIME_AXIS",
    "LATENCY_FORMAT",
    "planned_rate",
    "warmup_end_s",
    "run_domain",
    "status_timeseries",
    "endpoint_timeseries",
    "failures",
    "status_over_time",
    "endpoint_latency_over_time",
    "timeline",
    "resources_panels",
    "stress_limit",
    "ecdf_points",
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
    "time_breakdown",
    "gauges_over_time",
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
    "ab_ratio_over_time",
    "ab_distributions",
    "shared_movement",
]
