"""Micro-benchmark charts: the rounds' distribution per benchmark, and time against a parameter with its fit.

They take the frames of ``perfbench.bench.frames`` (``round_histogram``, ``scaling_points``, ``scaling_fit``);
a comparison of two bench runs is drawn by ``ratio_forest`` like any other.
"""

from __future__ import annotations

import altair as alt
import polars as pl

from .base import EXTRA_COLOURS, PALETTE, WIDTH, _empty, _frame, _layer, _title

BENCH_AXIS = "time per call (µs)"


def bench_histograms(hist: pl.DataFrame, *, title: str = "Time per call, every measured round",
                     width: int = WIDTH, height: int = 90) -> alt.FacetChart | alt.Chart:
    """One histogram per benchmark (a row each, its own x scale) of its rounds' time per call.

    Expects ``benchmark, bin_start_us, bin_end_us, rounds`` from ``perfbench.bench.frames.round_histogram``.
    """
    df = _frame(hist, ["benchmark", "bin_start_us", "bin_end_us", "rounds"], "bench_histograms",
                source="the frame perfbench.bench.frames.round_histogram() returns")
    if df is None or df.height == 0:
        return _empty("no rounds", title, width)
    bars = alt.Chart(df).mark_bar(color=PALETTE["latency"], opacity=0.8, stroke="white", strokeWidth=0.3).encode(
        x=alt.X("bin_start_us:Q", bin="binned", title=BENCH_AXIS, scale=alt.Scale(zero=False)),
        x2="bin_end_us:Q", y=alt.Y("rounds:Q", title="rounds"),
        tooltip=[alt.Tooltip("benchmark:N"), alt.Tooltip("bin_start_us:Q", title="from (µs)", format=".4~g"),
                 alt.Tooltip("bin_end_us:Q", title="to (µs)", format=".4~g"), alt.Tooltip("rounds:Q")],
    ).properties(width=width, height=height)
    return bars.facet(row=alt.Row("benchmark:N", title=None, header=alt.Header(labelAngle=0, labelAlign="left")),
                      title=_title(title)).resolve_scale(x="independent", y="independent")


def bench_scaling(points: pl.DataFrame, fit: pl.DataFrame | None = None, *, fit_text: str = "",
            title: str = "Time per call against the parameter", width: int = WIDTH,
            height: int = 260) -> alt.Chart | alt.LayerChart:
    """Median time per call against the parameter n (log-log), the quartiles as a bar, and the fitted curve.

    Expects ``n, median_us, q1_us, q3_us`` (``perfbench.bench.frames.scaling_points``) and optionally ``n, fit_us``
    (``scaling_fit``); ``fit_text`` (the fit's sentence) becomes the subtitle.
    """
    df = _frame(points, ["n", "median_us", "q1_us", "q3_us"], "bench_scaling",
                source="the frame perfbench.bench.frames.scaling_points() returns")
    if df is None or df.height == 0:
        return _empty("no parametrized benchmark with a numeric parameter", title, width)
    x = alt.X("n:Q", scale=alt.Scale(type="log"), title="parameter n")
    y = alt.Y("median_us:Q", scale=alt.Scale(type="log"), title=BENCH_AXIS)
    tip = [alt.Tooltip("n:Q", format=",g"), alt.Tooltip("median_us:Q", title="median (µs)", format=".4~g"),
           alt.Tooltip("q1_us:Q", title="Q1 (µs)", format=".4~g"), alt.Tooltip("q3_us:Q", title="Q3 (µs)", format=".4~g")]
    spread = alt.Chart(df).mark_rule(color=EXTRA_COLOURS[0], strokeWidth=2).encode(x=x, y=alt.Y("q1_us:Q", scale=alt.Scale(type="log")), y2="q3_us:Q")
    dots = alt.Chart(df).mark_point(filled=True, size=60, color=EXTRA_COLOURS[0]).encode(x=x, y=y, tooltip=tip)
    layers: list[alt.Chart] = [spread, dots]
    if fit is not None:
        f = _frame(fit, ["n", "fit_us"], "bench_scaling", source="the curve perfbench.bench.frames.scaling_fit() returns")
        if f is not None and f.height:
            layers.insert(0, alt.Chart(f).mark_line(color=PALETTE["fit"], strokeDash=[4, 3]).encode(
                x=x, y=alt.Y("fit_us:Q", scale=alt.Scale(type="log"))))
    t = _title(title)
    if fit_text:
        t = alt.TitleParams(text=title, subtitle=fit_text, anchor="start", fontSize=14)
    return _layer(*layers).properties(width=width, height=height, title=t)
