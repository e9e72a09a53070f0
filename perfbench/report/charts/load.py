"""Charts of one load run: latency histogram and percentile curve, latency, throughput and errors over
time, latency by endpoint, and the overview that stacks the main ones. Frames come from
``perfbench.analysis.results``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import altair as alt
import polars as pl

from ...errors import ConfigError
from ...rundir import ERROR_KINDS
from ...scalars import integer, number
from .base import (
    HEIGHT,
    LATENCY_AXIS,
    PALETTE,
    TIME_AXIS,
    WIDTH,
    _check_every,
    _colour,
    _empty,
    _frame,
    _layer,
    _log_spaced,
    _spacing,
    _title,
)


def latency_histogram(hist: pl.DataFrame, *, percentiles: dict[str, float] | None = None,
                      log: bool | None = None, title: str = "Latency distribution (ms)",
                      width: int = WIDTH, height: int = HEIGHT) -> alt.Chart | alt.LayerChart:
    """Bars of request counts per latency bin, with optional vertical rules at given percentiles (ms).

    Expects ``bin_start, bin_end, count`` (ms) from ``results.latency_histogram``. The x axis is logarithmic
    when the bins are log-spaced (``log=None`` detects it). ``percentiles`` maps a name to a value in ms,
    e.g. ``{"p50": 4.1, "p99": 19.0}``.
    """
    df = _frame(hist, ["bin_start", "bin_end", "count"], "latency_histogram", "latency_histogram")
    if df is None or df.height == 0:
        return _empty("no requests", title, width)
    if log is None:
        log = _log_spaced(df)
    scale = alt.Scale(type="log") if log else alt.Scale(zero=False)
    bars = alt.Chart(df).mark_bar(color=PALETTE["latency"], opacity=0.8, stroke="white", strokeWidth=0.3
                                  ).encode(
        x=alt.X("bin_start:Q", bin="binned", scale=scale, title=LATENCY_AXIS),
        x2="bin_end:Q",
        y=alt.Y("count:Q", title="requests"),
        tooltip=[alt.Tooltip("bin_start:Q", title="from (ms)", format=".3~f"),
                 alt.Tooltip("bin_end:Q", title="to (ms)", format=".3~f"),
                 alt.Tooltip("count:Q", title="requests")],
    )
    chart: alt.Chart | alt.LayerChart = bars
    marks = pl.DataFrame({"series": list(percentiles or {}),
                          "value_ms": [None if v is None else float(v) for v in (percentiles or {}).values()]},
                         schema={"series": pl.String, "value_ms": pl.Float64})
    marks = marks.filter(pl.col("value_ms").is_finite() & ((pl.col("value_ms") > 0) | (not log))).with_columns(
        label=pl.format("{} {} ms", "series", pl.col("value_ms").round_sig_figs(3).cast(pl.String)))
    if marks.height:
        base = alt.Chart(marks).encode(x=alt.X("value_ms:Q", title=LATENCY_AXIS))
        rules = base.mark_rule(strokeWidth=2, strokeDash=[4, 3]).encode(
            color=_colour("series", marks["series"].to_list(), "percentile"),
            tooltip=[alt.Tooltip("series:N", title="percentile"),
                     alt.Tooltip("value_ms:Q", title="latency (ms)", format=".3~f")])
        labels = base.mark_text(align="left", baseline="top", dx=4, dy=2, fontSize=11).encode(
            y=alt.value(0), text="label:N", color=_colour("series", marks["series"].to_list(), "percentile"))
        chart = _layer(bars, rules, labels)
    return chart.properties(width=width, height=height, title=_title(title))


def percentile_curve(curve: pl.DataFrame, *, by: str | None = None, log_y: bool = False,
                     title: str = "Latency by percentile (ms)", width: int = WIDTH,
                     height: int = HEIGHT) -> alt.Chart | alt.LayerChart:
    """HdrHistogram-style latency (ms) against percentile, the tail stretched out: one line per ``by`` group.

    Expects ``percentile, nines, value_ms`` (and the ``by`` column) from ``results.percentile_curve``. The x
    axis is ``nines`` = -log10(1 - p), labelled as percentiles (0, 50, 90, 99, 99.9, ...).
    """
    cols = ["percentile", "nines", "value_ms"] + ([by] if by else [])
    df = _frame(curve, cols, "percentile_curve", "percentile_curve")
    if df is not None:
        if not by and df["percentile"].is_duplicated().any():
            others = [c for c in curve.columns if c not in cols]
            raise ConfigError("charts.percentile_curve: the frame has several rows per percentile (one curve per "
                             f"group); pass by=<the group column>{', one of ' + ', '.join(others) if others else ''}")
        df = df.drop_nulls(["nines", "value_ms"])
        if log_y:
            df = df.filter(pl.col("value_ms") > 0)
    if df is None or df.height == 0:
        return _empty("no requests", title, width)
    top = max(number(df["nines"].max()), 1.0)
    ticks = [0.0, math.log10(2)] + [float(k) for k in range(1, math.floor(top + 1e-9) + 1)]
    decimals = max(0, math.floor(top + 1e-9) - 2)
    axis = alt.Axis(values=ticks, title="percentile (%)", grid=True,
                    labelExpr=f"format(100 - 100 * pow(10, -datum.value), '.{decimals}~f')")
    enc = {
        "x": alt.X("nines:Q", axis=axis, scale=alt.Scale(domain=[0, top], nice=False)),
        "y": alt.Y("value_ms:Q", title=LATENCY_AXIS, scale=alt.Scale(type="log") if log_y else alt.Scale()),
        "tooltip": ([alt.Tooltip(f"{by}:N")] if by else []) + [
            alt.Tooltip("percentile:Q", title="percentile", format=".4~f"),
            alt.Tooltip("value_ms:Q", title="latency (ms)", format=".3~f")],
    }
    mark: dict[str, Any] = {"point": alt.OverlayMarkDef(size=10, filled=True), "strokeWidth": 1.8}
    if by:
        df = df.with_columns(pl.col(by).cast(pl.String).fill_null("null"))
        groups = sorted(df[by].unique().to_list())
        enc["color"] = _colour(by, groups, by)
        return alt.Chart(df).mark_line(**mark).encode(**enc).properties(
            width=width, height=height, title=_title(title))
    return alt.Chart(df).mark_line(color=PALETTE["latency"], **mark).encode(**enc).properties(
        width=width, height=height, title=_title(title))


def latency_over_time(ts: pl.DataFrame, *, series: Sequence[str] = ("p50", "p95", "p99", "max"),
                      log_y: bool = False, title: str = "Latency over time (ms)", width: int = WIDTH,
                      height: int = HEIGHT) -> alt.Chart | alt.LayerChart:
    """Latency percentiles (ms) per time bucket: p50/p95/p99 lines, max thinner and lighter.

    Expects ``t_s`` and ``<series>_ms`` columns (``p50_ms, p95_ms, p99_ms, max_ms``) from
    ``results.latency_timeseries``; t_s is the bucket start (by planned send time).
    """
    series = list(series)
    df = _frame(ts, ["t_s", *(f"{s}_ms" for s in series)], "latency_over_time", "latency_timeseries")
    if df is None or df.height == 0:
        return _empty("no requests", title, width)
    long = (df.unpivot(index="t_s", variable_name="series", value_name="value_ms")
            .with_columns(pl.col("series").str.strip_suffix("_ms")).drop_nulls("value_ms"))
    if log_y:
        long = long.filter(pl.col("value_ms") > 0)
    faint = alt.datum.series == "max"
    return alt.Chart(long).mark_line(point=alt.OverlayMarkDef(size=8, filled=True)).encode(
        x=alt.X("t_s:Q", title=TIME_AXIS),
        y=alt.Y("value_ms:Q", title=LATENCY_AXIS, scale=alt.Scale(type="log") if log_y else alt.Scale()),
        color=_colour("series", series, "latency"),
        opacity=alt.when(faint).then(alt.value(0.5)).otherwise(alt.value(1.0)),
        strokeWidth=alt.when(faint).then(alt.value(1.0)).otherwise(alt.value(2.0)),
        tooltip=[alt.Tooltip("t_s:Q", title="t (s)"), alt.Tooltip("series:N"),
                 alt.Tooltip("value_ms:Q", title="latency (ms)", format=".3~f")],
    ).properties(width=width, height=height, title=_title(title))


def throughput_over_time(tp: pl.DataFrame, *, planned: pl.DataFrame | None = None, every_s: float | None = None,
                         title: str = "Throughput (responses/s)", width: int = WIDTH,
                         height: int = HEIGHT) -> alt.Chart | alt.LayerChart:
    """Completed responses per second, stacked by outcome (ok below error), plus a dashed planned rate.

    Expects ``t_s, outcome, rps`` from ``results.throughput_timeseries``; ``planned`` has ``t_s, rps`` (the
    arrival rate the load shape planned, e.g. at its stage boundaries). Buckets with no responses are drawn
    as zero, each bucket as a step ``every_s`` wide (inferred from the t_s spacing when not given).
    """
    df = _frame(tp, ["t_s", "outcome", "rps"], "throughput_over_time", "throughput_timeseries")
    plan = None
    if planned is not None:
        plan = _frame(planned, ["t_s", "rps"], "throughput_over_time",
                      source="a frame of the planned arrival rate (columns t_s, rps)")
        plan = None if plan is None else plan.drop_nulls().sort("t_s")
        plan = plan if plan is not None and plan.height else None
    if (df is None or df.height == 0) and plan is None:
        return _empty("no responses", title, width)
    outcomes = ["ok", "error"]
    layers: list[alt.Chart] = []
    if df is not None and df.height:
        outcomes += sorted(set(df["outcome"].drop_nulls().to_list()) - set(outcomes))
        if every_s is not None:
            _check_every(every_s, "throughput_over_time")
        step = every_s or _spacing(df["t_s"])
        k = (pl.col("t_s") / step).round().cast(pl.Int64)
        df = df.drop_nulls().group_by(k.alias("k"), "outcome").agg(pl.col("rps").sum())
        lo, hi = integer(df["k"].min()), integer(df["k"].max())
        grid = pl.DataFrame({"k": range(lo, hi + 1)}).join(pl.DataFrame({"outcome": outcomes}), how="cross")
        filled = grid.join(df, on=["k", "outcome"], how="left").with_columns(pl.col("rps").fill_null(0.0))
        # A closing point one bucket on, so that step-after draws the last bucket as wide as the others.
        filled = pl.concat([filled, filled.filter(pl.col("k") == hi).with_columns(k=pl.lit(hi + 1, pl.Int64))])
        filled = filled.with_columns(
            t_s=pl.col("k") * step,
            stack=pl.col("outcome").replace_strict(outcomes, list(range(len(outcomes))), return_dtype=pl.Int64),
        ).sort("k", "stack").select("t_s", "outcome", "rps", "stack")
        layers.append(alt.Chart(filled).mark_area(interpolate="step-after", opacity=0.85).encode(
            x=alt.X("t_s:Q", title=TIME_AXIS),
            y=alt.Y("rps:Q", stack="zero", title="responses per second"),
            color=_colour("outcome", outcomes + (["planned"] if plan is not None else []), "outcome"),
            order=alt.Order("stack:Q", sort="ascending"),
            tooltip=[alt.Tooltip("t_s:Q", title="bucket start (s)"), alt.Tooltip("outcome:N"),
                     alt.Tooltip("rps:Q", title="responses/s", format=".1f")],
        ))
    if plan is not None:
        plan = plan.with_columns(outcome=pl.lit("planned"))
        domain = outcomes + ["planned"] if layers else ["planned"]
        layers.append(alt.Chart(plan).mark_line(strokeDash=[6, 4], strokeWidth=2).encode(
            x=alt.X("t_s:Q", title=TIME_AXIS),
            y=alt.Y("rps:Q", title="responses per second"),
            color=_colour("outcome", domain, "outcome"),
            tooltip=[alt.Tooltip("t_s:Q", title="t (s)"), alt.Tooltip("rps:Q", title="planned req/s", format=".1f")],
        ))
    chart = layers[0] if len(layers) == 1 else _layer(*layers)
    return chart.properties(width=width, height=height, title=_title(title))


def errors_over_time(err: pl.DataFrame, *, every_s: float = 1.0, title: str = "Errors per second, by kind",
                     width: int = WIDTH, height: int = HEIGHT) -> alt.Chart | alt.LayerChart:
    """Stacked bars of errors per second in each time bucket, one colour per error kind; "no errors" if none.

    Expects ``t_s, error, errors`` from ``results.error_timeseries``; ``every_s`` must be the bucket width
    given to it (its default is 1.0 too), so counts become rates and bars get their width.
    """
    df = _frame(err, ["t_s", "error", "errors"], "errors_over_time", "error_timeseries")
    if df is None or df.height == 0:
        return _empty("no errors", title, width)
    _check_every(every_s, "errors_over_time")
    df = df.with_columns(pl.col("error").fill_null("unknown")).with_columns(
        t_end=pl.col("t_s") + every_s, rate=pl.col("errors") / every_s)
    present = set(df["error"].to_list())
    kinds = [k for k in ERROR_KINDS if k in present] + sorted(present - set(ERROR_KINDS))
    return alt.Chart(df).mark_bar().encode(
        x=alt.X("t_s:Q", bin="binned", title=TIME_AXIS),
        x2="t_end:Q",
        y=alt.Y("rate:Q", stack="zero", title="errors per second"),
        color=_colour("error", kinds, "error kind"),
        tooltip=[alt.Tooltip("t_s:Q", title="bucket start (s)"), alt.Tooltip("error:N", title="kind"),
                 alt.Tooltip("errors:Q", title="errors"), alt.Tooltip("rate:Q", title="errors/s", format=".2f")],
    ).properties(width=width, height=height, title=_title(title))


def endpoint_latency_bars(stats: pl.DataFrame, *, series: Sequence[str] = ("p50", "p95", "p99"),
                          title: str = "Latency by endpoint (ms)", width: int = WIDTH,
                          height: int | None = None) -> alt.Chart | alt.LayerChart:
    """Per endpoint, grouped horizontal bars of latency percentiles (ms), endpoints in the frame's order.

    Expects ``endpoint`` and ``<series>_ms`` columns (``p50_ms, p95_ms, p99_ms``) from
    ``results.endpoint_stats`` (or ``Run.endpoint_table``).
    """
    series = list(series)
    df = _frame(stats, ["endpoint", *(f"{s}_ms" for s in series)], "endpoint_latency_bars", "endpoint_stats")
    if df is None or df.height == 0:
        return _empty("no requests", title, width)
    df = df.with_columns(pl.col("endpoint").cast(pl.String))
    endpoints = df["endpoint"].to_list()
    long = (df.unpivot(index="endpoint", variable_name="series", value_name="value_ms")
            .with_columns(pl.col("series").str.strip_suffix("_ms")))
    if height is None:
        height = max(60, 12 * len(series) * len(endpoints) + 8 * len(endpoints))
    return alt.Chart(long).mark_bar().encode(
        y=alt.Y("endpoint:N", sort=endpoints, title="endpoint"),
        yOffset=alt.YOffset("series:N", sort=series, scale=alt.Scale(domain=series)),
        x=alt.X("value_ms:Q", title=LATENCY_AXIS),
        color=_colour("series", series, "latency"),
        tooltip=[alt.Tooltip("endpoint:N"), alt.Tooltip("series:N"),
                 alt.Tooltip("value_ms:Q", title="latency (ms)", format=".3~f")],
    ).properties(width=width, height=height, title=_title(title))


def overview(hist: pl.DataFrame, ts: pl.DataFrame, tp: pl.DataFrame, err: pl.DataFrame, *,
             percentiles: dict[str, float] | None = None, planned: pl.DataFrame | None = None,
             every_s: float | None = None, width: int = WIDTH) -> alt.VConcatChart:
    """The main charts stacked: latency histogram, latency over time, throughput, errors.

    Takes the frames of ``results.latency_histogram``, ``latency_timeseries``, ``throughput_timeseries`` and
    ``error_timeseries``; ``every_s`` is their bucket width (inferred from the throughput frame when not given).
    Colour scales and legends stay per chart.
    """
    if every_s is None and isinstance(tp, pl.DataFrame) and "t_s" in tp.columns and tp.height:
        every_s = _spacing(tp["t_s"])
    return alt.vconcat(
        latency_histogram(hist, percentiles=percentiles, width=width),
        latency_over_time(ts, width=width),
        throughput_over_time(tp, planned=planned, every_s=every_s, width=width),
        errors_over_time(err, every_s=every_s or 1.0, width=width),
    ).resolve_scale(color="independent").resolve_legend(color="independent")
