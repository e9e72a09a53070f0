"""Charts of experiments: stress steps, the spike, drift over a soak, cold against warm, the regression
verdict against a baseline, and the trend across runs of the reports index.

Frames from perfbench.experiments.stress.steps_frame, perfbench.analysis.trends, perfbench.analysis.results,
perfbench.compare and perfbench.report.index.
"""

from __future__ import annotations

import altair as alt
import polars as pl

from ...scalars import number
from .base import (
    EXTRA_COLOURS,
    HEIGHT,
    LATENCY_AXIS,
    PALETTE,
    TIME_AXIS,
    WIDTH,
    _colour,
    _empty,
    _frame,
    _layer,
    _title,
    _vrule,
)


def stress_throughput(steps: pl.DataFrame, *, breaking_rps: float | None = None,
                      title: str = "Offered load against achieved throughput (req/s)", width: int = WIDTH,
                      height: int = HEIGHT) -> alt.LayerChart | alt.Chart:
    """Achieved (all and successful) against offered req/s per stress step, with the ideal diagonal
    and the breaking point as a rule. Expects ``offered_rps, achieved_rps, ok_rps`` (stress.steps_frame)."""
    df = _frame(steps, ["offered_rps", "achieved_rps", "ok_rps"], "stress_throughput",
                source="the frame perfbench.experiments.stress.steps_frame() returns")
    if df is None or df.height == 0:
        return _empty("no steps", title, width)
    long = df.unpivot(index="offered_rps", variable_name="series", value_name="rps").with_columns(
        pl.col("series").replace({"achieved_rps": "achieved", "ok_rps": "ok"}))
    top = float(df.select(pl.max_horizontal(pl.col("offered_rps").max(), pl.col("achieved_rps").max())).item())
    diagonal = alt.Chart(pl.DataFrame({"x": [0.0, top], "y": [0.0, top]})).mark_line(
        strokeDash=[4, 4], color=PALETTE["planned"]).encode(x="x:Q", y="y:Q")
    lines = alt.Chart(long).mark_line(point=True).encode(
        x=alt.X("offered_rps:Q", title="offered (req/s)"), y=alt.Y("rps:Q", title="achieved (req/s)"),
        color=_colour("series", ["achieved", "ok"], "throughput"),
        tooltip=["offered_rps:Q", "series:N", alt.Tooltip("rps:Q", format=".1f")])
    layers = [diagonal, lines]
    if breaking_rps is not None:
        layers.append(_vrule(breaking_rps, f"breaks at {breaking_rps:g}"))
    return _layer(*layers).properties(width=width, height=height, title=_title(title))


def stress_latency(steps: pl.DataFrame, *, limit_ms: float | None = None, breaking_rps: float | None = None,
                   title: str = "Latency against offered load (ms, log scale)", width: int = WIDTH,
                   height: int = HEIGHT) -> alt.LayerChart | alt.Chart:
    """p50/p95/p99 latency per stress step against the offered rate: the knee is where they leave
    the floor. Expects ``offered_rps, p50_ms, p95_ms, p99_ms`` (stress.steps_frame)."""
    df = _frame(steps, ["offered_rps", "p50_ms", "p95_ms", "p99_ms"], "stress_latency",
                source="the frame perfbench.experiments.stress.steps_frame() returns")
    if df is None or df.height == 0:
        return _empty("no steps", title, width)
    long = (df.unpivot(index="offered_rps", variable_name="series", value_name="value_ms")
            .with_columns(pl.col("series").str.strip_suffix("_ms")).filter(pl.col("value_ms") > 0))
    layers = [alt.Chart(long).mark_line(point=True).encode(
        x=alt.X("offered_rps:Q", title="offered (req/s)"),
        y=alt.Y("value_ms:Q", title=LATENCY_AXIS, scale=alt.Scale(type="log")),
        color=_colour("series", ["p50", "p95", "p99"], "latency"),
        tooltip=["offered_rps:Q", "series:N", alt.Tooltip("value_ms:Q", format=".2f")])]
    if limit_ms is not None:
        layers.append(alt.Chart(pl.DataFrame({"y": [limit_ms], "label": [f"SLO {limit_ms:g} ms"]})).mark_rule(
            strokeDash=[6, 3], color=PALETTE["error"]).encode(y="y:Q"))
    if breaking_rps is not None:
        layers.append(_vrule(breaking_rps, f"breaks at {breaking_rps:g}"))
    return _layer(*layers).properties(width=width, height=height, title=_title(title))


def error_rate_steps(steps: pl.DataFrame, *, title: str = "Error rate per step (%)", width: int = WIDTH,
                     height: int = 160) -> alt.Chart:
    """Error rate (%) per stress step. Expects ``offered_rps, error_rate`` (stress.steps_frame)."""
    df = _frame(steps, ["offered_rps", "error_rate"], "error_rate_steps",
                source="the frame perfbench.experiments.stress.steps_frame() returns")
    if df is None or df.height == 0:
        return _empty("no steps", title, width)
    return alt.Chart(df.with_columns((pl.col("error_rate").fill_null(0) * 100).alias("pct"))).mark_bar(
        color=PALETTE["error"]).encode(
        x=alt.X("offered_rps:O", title="offered (req/s)"), y=alt.Y("pct:Q", title="errors (%)"),
        tooltip=["offered_rps:Q", alt.Tooltip("pct:Q", format=".2f")],
    ).properties(width=width, height=height, title=_title(title))


def spike_timeline(ts: pl.DataFrame, *, spike_start_s: float, spike_end_s: float, metric: str = "p95",
                   limit_ms: float | None = None, recovered_at_s: float | None = None,
                   title: str = "Latency through the spike (ms)", width: int = WIDTH,
                   height: int = HEIGHT) -> alt.LayerChart | alt.Chart:
    """A latency percentile over time with the spike shaded, the recovery limit as a rule and the
    moment of recovery marked. Expects ``t_s, <metric>_ms, rps`` (results.latency_timeseries)."""
    col = f"{metric}_ms"
    df = _frame(ts, ["t_s", col, "rps"], "spike_timeline", "latency_timeseries")
    if df is None or df.height == 0:
        return _empty("no requests", title, width)
    band = alt.Chart(pl.DataFrame({"a": [spike_start_s], "b": [spike_end_s]})).mark_rect(
        color=PALETTE["p95"], opacity=0.12).encode(x="a:Q", x2="b:Q")
    line = alt.Chart(df).mark_line(point=alt.OverlayMarkDef(size=8, filled=True), color=PALETTE[metric]).encode(
        x=alt.X("t_s:Q", title=TIME_AXIS), y=alt.Y(f"{col}:Q", title=f"{metric} {LATENCY_AXIS}"),
        tooltip=["t_s:Q", alt.Tooltip(f"{col}:Q", format=".2f"), alt.Tooltip("rps:Q", format=".0f")])
    layers = [band, line]
    if limit_ms is not None:
        layers.append(alt.Chart(pl.DataFrame({"y": [limit_ms]})).mark_rule(
            strokeDash=[6, 3], color=PALETTE["ok"]).encode(y="y:Q"))
    if recovered_at_s is not None:
        layers.append(_vrule(recovered_at_s, "recovered", colour=PALETTE["ok"]))
    return _layer(*layers).properties(width=width, height=height, title=_title(title))


def drift_fit(ts: pl.DataFrame, fit: dict, *, metric: str = "p95", title: str = "Latency drift over the run (ms)",
              width: int = WIDTH, height: int = HEIGHT) -> alt.LayerChart | alt.Chart:
    """A latency percentile per time bucket with the fitted trend of ``analysis.drift``.
    Expects ``t_s, <metric>_ms`` (results.latency_timeseries)."""
    col = f"{metric}_ms"
    df = _frame(ts, ["t_s", col], "drift_fit", "latency_timeseries")
    if df is None or df.height == 0:
        return _empty("no requests", title, width)
    points = alt.Chart(df).mark_circle(size=18, color=PALETTE[metric]).encode(
        x=alt.X("t_s:Q", title=TIME_AXIS), y=alt.Y(f"{col}:Q", title=f"{metric} {LATENCY_AXIS}"))
    layers = [points]
    if fit.get("slope_ms_per_h") is not None:
        t0, t1 = float(number(df["t_s"].min())), float(number(df["t_s"].max()))
        slope_s = fit["slope_ms_per_h"] / 3600
        line = pl.DataFrame({"t_s": [t0, t1], "fit": [fit["intercept_ms"] + slope_s * t0,
                                                      fit["intercept_ms"] + slope_s * t1]})
        layers.append(alt.Chart(line).mark_line(color=PALETTE["planned"], strokeDash=[6, 3]).encode(
            x="t_s:Q", y="fit:Q"))
    return _layer(*layers).properties(width=width, height=height, title=_title(title))


def ecdf_overlay(curve: pl.DataFrame, *, by: str = "label", title: str = "Latency distributions (ECDF)",
                 width: int = WIDTH, height: int = HEIGHT) -> alt.Chart:
    """Overlaid empirical CDFs: share of requests (y) at or under a latency (x, log scale), one line
    per ``by`` group (e.g. cold and warm). Expects ``value_ms, percentile, <by>``
    (results.percentile_curve(..., by=...))."""
    df = _frame(curve, ["value_ms", "percentile", by], "ecdf_overlay", "percentile_curve")
    if df is None or df.height == 0:
        return _empty("no requests", title, width)
    groups = df[by].unique(maintain_order=True).to_list()
    return alt.Chart(df.filter(pl.col("value_ms") > 0)).mark_line(interpolate="step-after").encode(
        x=alt.X("value_ms:Q", title=LATENCY_AXIS, scale=alt.Scale(type="log")),
        y=alt.Y("percentile:Q", title="requests at or under (%)"),
        color=_colour(by, groups, by),
        tooltip=[f"{by}:N", alt.Tooltip("value_ms:Q", format=".2f"), alt.Tooltip("percentile:Q", format=".2f")],
    ).properties(width=width, height=height, title=_title(title))


def compare_endpoint_bars(stats: pl.DataFrame, *, by: str = "label", metric: str = "p50",
                          title: str | None = None, width: int = WIDTH) -> alt.Chart:
    """One latency percentile per endpoint, a bar per ``by`` group side by side (e.g. cold and warm).
    Expects ``endpoint, <metric>_ms, <by>`` (results.endpoint_stats with a label column)."""
    col = f"{metric}_ms"
    title = title or f"{metric} latency by endpoint (ms)"
    df = _frame(stats, ["endpoint", col, by], "compare_endpoint_bars", "endpoint_stats")
    if df is None or df.height == 0:
        return _empty("no requests", title, width)
    groups = df[by].unique(maintain_order=True).to_list()
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y("endpoint:N", title=None), yOffset=alt.YOffset(f"{by}:N", sort=groups),
        x=alt.X(f"{col}:Q", title=f"{metric} {LATENCY_AXIS}"), color=_colour(by, groups, by),
        tooltip=["endpoint:N", f"{by}:N", alt.Tooltip(f"{col}:Q", format=".2f")],
    ).properties(width=width, height=alt.Step(14), title=_title(title))


# --- regression ------------------------------------------------------------------------------------------

VERDICT_COLOURS = {"regression": "#e45756", "improvement": "#54a24b", "no significant change": "#9d9d9d"}


def ratio_forest(rows: pl.DataFrame, *, threshold: float = 0.10, title: str = "Change against the baseline",
                 width: int = WIDTH, height: int | None = None) -> alt.Chart | alt.LayerChart:
    """A forest plot: per endpoint and statistic, the change (ratio - 1, %) with its interval, coloured by verdict.

    Expects ``endpoint, stat, ratio, low, high, verdict`` from ``perfbench.compare.Comparison.to_frame()``.
    Dashed rules mark ±``threshold`` and a solid one no change. Rows without an interval show the point only.
    """
    df = _frame(rows, ["endpoint", "stat", "ratio", "low", "high", "verdict"], "ratio_forest",
                source="Comparison.to_frame() of perfbench.compare")
    if df is None or df.height == 0:
        return _empty("nothing compared", title, width)
    df = df.drop_nulls("ratio").with_columns(
        label=pl.format("{} {}", "endpoint", "stat"), change=(pl.col("ratio") - 1) * 100,
        lo=(pl.col("low") - 1) * 100, hi=(pl.col("high") - 1) * 100)
    order = df["label"].to_list()
    height = height or max(80, 18 * len(order))
    verdicts = [v for v in VERDICT_COLOURS if v in set(df["verdict"].to_list())]
    colour = alt.Color("verdict:N", scale=alt.Scale(domain=verdicts, range=[VERDICT_COLOURS[v] for v in verdicts]),
                       legend=alt.Legend(title="verdict"))
    y = alt.Y("label:N", sort=order, title=None)
    tip = [alt.Tooltip("endpoint:N"), alt.Tooltip("stat:N"), alt.Tooltip("change:Q", title="change (%)", format="+.1f"),
           alt.Tooltip("lo:Q", title="low (%)", format="+.1f"), alt.Tooltip("hi:Q", title="high (%)", format="+.1f"),
           alt.Tooltip("verdict:N")]
    x = alt.X("change:Q", title="change against the baseline (%)", scale=alt.Scale(type="symlog", constant=10))
    bars = alt.Chart(df).mark_rule(strokeWidth=2).encode(x=alt.X("lo:Q", scale=alt.Scale(type="symlog", constant=10)),
                                                         x2="hi:Q", y=y, color=colour, tooltip=tip)
    points = alt.Chart(df).mark_point(filled=True, size=50).encode(x=x, y=y, color=colour, tooltip=tip)
    refs = pl.DataFrame({"x": [0.0, threshold * 100, -threshold * 100], "kind": ["none", "threshold", "threshold"]})
    rules = alt.Chart(refs).mark_rule(color="#333333").encode(
        x="x:Q", strokeDash=alt.condition(alt.datum.kind == "threshold", alt.value([4, 3]), alt.value([1, 0])))
    return _layer(rules, bars, points).properties(width=width, height=height, title=_title(title))


def distributions_overlaid(frames: dict[str, pl.DataFrame], *, bins: int = 50, by: str = "endpoint",
                           title: str = "Latency distributions: baseline and current",
                           width: int = WIDTH // 2, height: int = 120) -> alt.FacetChart | alt.Chart:
    """Per endpoint, the latency distributions of each side overlaid (share of requests per log-spaced bin).

    ``frames`` maps a side name (``baseline``, ``current``) to a frame with ``endpoint`` and ``latency_ms``
    (e.g. a requests frame passed through ``results.with_ms``); the binning is done here in Polars, per
    endpoint, on bins shared by both sides, so only the bin counts reach Altair.
    """
    parts = []
    for name, f in frames.items():
        df = _frame(f, [by, "latency_ms"], "distributions_overlaid",
                    source="a requests frame with latency_ms (results.with_ms)")
        if df is not None:
            parts.append(df.with_columns(side=pl.lit(name)).drop_nulls("latency_ms"))
    if not parts:
        return _empty("no requests", title, width)
    df = pl.concat(parts).filter(pl.col("latency_ms") > 0)
    if df.height == 0:
        return _empty("no requests", title, width)
    lo, hi = pl.col("latency_ms").log10().min().over(by), pl.col("latency_ms").log10().max().over(by)
    span = pl.max_horizontal(hi - lo, pl.lit(1e-9))
    df = df.with_columns(bin=((pl.col("latency_ms").log10() - lo) / span * bins).floor().clip(0, bins - 1),
                         a=lo, w=span / bins)
    counts = (df.group_by(by, "side", "bin").agg(pl.len().alias("n"), pl.col("a").first(), pl.col("w").first())
              .with_columns(share=pl.col("n") / pl.col("n").sum().over(by, "side"),
                            bin_start=10 ** (pl.col("a") + pl.col("bin") * pl.col("w")),
                            bin_end=10 ** (pl.col("a") + (pl.col("bin") + 1) * pl.col("w")))
              .select(by, "side", "bin_start", "bin_end", "share", "n").sort(by, "side", "bin_start"))
    sides = list(frames)
    colours = ["#9d9d9d", "#e45756", *EXTRA_COLOURS][: len(sides)]
    return alt.Chart(counts).mark_bar(opacity=0.55).encode(
        x=alt.X("bin_start:Q", bin="binned", scale=alt.Scale(type="log"), title=LATENCY_AXIS),
        x2="bin_end:Q",
        y=alt.Y("share:Q", stack=None, title="share of requests", axis=alt.Axis(format="%")),
        color=alt.Color("side:N", scale=alt.Scale(domain=sides, range=colours), legend=alt.Legend(title="run")),
        tooltip=[alt.Tooltip(f"{by}:N"), alt.Tooltip("side:N"), alt.Tooltip("bin_start:Q", format=".3~f"),
                 alt.Tooltip("bin_end:Q", format=".3~f"), alt.Tooltip("n:Q", title="requests")],
    ).properties(width=width, height=height).facet(
        facet=alt.Facet(f"{by}:N", title=None), columns=2).properties(title=_title(title)).resolve_scale(x="independent")


# --- the reports index -------------------------------------------------------------------------------------



def trend(runs: pl.DataFrame, *, title: str = "p95 latency and throughput across runs", width: int = 520,
          height: int = 140) -> alt.VConcatChart | alt.Chart:
    """p95 latency (ms) and throughput (req/s) per run over time, for runs of one experiment.
    Expects ``started_at`` (ISO text or datetime), ``run_id``, ``p95_ms``, ``rps``."""
    df = _frame(runs, ["started_at", "run_id", "p95_ms", "rps"], "trend",
                source="a frame of runs (perfbench.report.index.collect_runs)")
    if df is None or df.height == 0:
        return _empty("no runs", title, width)
    if df.schema["started_at"] == pl.String:
        df = df.with_columns(pl.col("started_at").str.to_datetime(time_zone="UTC", strict=False))
    base = alt.Chart(df).encode(x=alt.X("started_at:T", title="run started"),
                                tooltip=["run_id:N", alt.Tooltip("p95_ms:Q", format=".2f"),
                                         alt.Tooltip("rps:Q", format=".1f")])
    p95 = base.mark_line(point=True, color=PALETTE["p95"]).encode(y=alt.Y("p95_ms:Q", title="p95 (ms)")).properties(
        width=width, height=height, title=_title(title))
    rps = base.mark_line(point=True, color=PALETTE["ok"]).encode(y=alt.Y("rps:Q", title="req/s")).properties(
        width=width, height=height)
    return alt.vconcat(p95, rps)
