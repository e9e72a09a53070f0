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
    NO_OVERLAP,
    PALETTE,
    WIDTH,
    _check_every,
    _colour,
    _colours,
    _empty,
    _frame,
    _layer,
    _log_spaced,
    _spacing,
    _title,
    describe,
    fmt_ms,
    fmt_s,
    latency_axis,
    latency_scale,
    time_x,
    warmup_band,
    zoom_x,
)

Domain = tuple[float, float] | None
Zoom = bool | alt.Parameter  # x zoom: none, its own, or one shared by the charts of a concatenation


def _span(t: pl.Series) -> str:
    lo, hi = number(t.min()), number(t.max())
    return f"over {fmt_s(hi - lo + _spacing(t))}" if t.len() else ""


def _time_layers(main: list, *, domain: Domain, warmup_end_s: float | None, zoom: Zoom) -> alt.LayerChart | alt.Chart:
    """The layers of a time chart with the warm-up band below them and x-zoom on the first data layer (``zoom``
    True: its own; a parameter: that one, shared with the other charts of a concatenation)."""
    if zoom is not False:
        main = [main[0].add_params(zoom_x() if zoom is True else zoom), *main[1:]]
    band = warmup_band(warmup_end_s, domain)
    layers = ([band] if band is not None else []) + main
    return layers[0] if len(layers) == 1 else _layer(*layers)


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
        x=alt.X("bin_start:Q", bin="binned", scale=scale, axis=latency_axis()),
        x2="bin_end:Q",
        y=alt.Y("count:Q", title="requests", axis=alt.Axis(format="~s")),
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
        base = alt.Chart(marks).encode(x=alt.X("value_ms:Q", axis=latency_axis()))
        rules = base.mark_rule(strokeWidth=2, strokeDash=[4, 3]).encode(
            color=_colour("series", marks["series"].to_list(), "percentile"),
            tooltip=[alt.Tooltip("series:N", title="percentile"),
                     alt.Tooltip("value_ms:Q", title="latency (ms)", format=".3~f")])
        labels = base.mark_text(align="left", baseline="top", dx=4, dy=2, fontSize=11).encode(
            y=alt.value(0), text="label:N", color=_colour("series", marks["series"].to_list(), "percentile"))
        chart = _layer(bars, rules, labels)
    peak = df.sort("count", descending=True).row(0, named=True)
    n = integer(df["count"].sum())
    text = (f"Histogram of {n:,} request latencies from {fmt_ms(number(df['bin_start'].min()))} to "
            f"{fmt_ms(number(df['bin_end'].max()))}{' on a log axis' if log else ''}; the most requests "
            f"({integer(peak['count']):,}) took {fmt_ms(peak['bin_start'])} to {fmt_ms(peak['bin_end'])}"
            + "".join(f", {r['series']} {fmt_ms(r['value_ms'])}" for r in marks.iter_rows(named=True)) + ".")
    return describe(chart.properties(width=width, height=height, title=_title(title)), text)


def _pct(p: float) -> str:
    """A percentile for a sentence: ``99.9``, ``99.99``, ``50``."""
    return f"{float(f'{p:.4g}'):g}"


def _nines_axis(top: float) -> alt.Axis:
    ticks = [0.0, math.log10(2)] + [float(k) for k in range(1, math.floor(top + 1e-9) + 1)]
    decimals = max(0, math.floor(top + 1e-9) - 2)
    return alt.Axis(values=ticks, title="percentile (%), tail stretched", grid=True, **NO_OVERLAP,
                    labelExpr=f"format(100 - 100 * pow(10, -datum.value), '.{decimals}~f')")


def percentile_curve(curve: pl.DataFrame, *, by: str | None = None, overall: pl.DataFrame | None = None,
                     log_y: bool = True, title: str = "Latency by percentile (ms)", width: int = WIDTH,
                     height: int = HEIGHT) -> alt.Chart | alt.LayerChart:
    """HdrHistogram-style latency (ms, log axis) against percentile, the tail stretched out: one line per ``by``
    group, and ``overall`` (the curve of all requests) as a thicker dark line.

    Expects ``percentile, nines, value_ms`` (and the ``by`` column) from ``results.percentile_curve``. The x
    axis is ``nines`` = -log10(1 - p), labelled as percentiles (0, 50, 90, 99, 99.9, ...): each curve goes as
    far into the tail as its request count resolves (to p99.9 from 1,000 requests, p99.99 from 10,000).
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
    key = by or "curve"
    if df is not None:
        df = (df.with_columns(pl.col(by).cast(pl.String).fill_null("null")) if by
              else df.with_columns(curve=pl.lit("all requests")))
    if overall is not None:
        whole = _frame(overall, ["percentile", "nines", "value_ms"], "percentile_curve", "percentile_curve")
        if whole is not None and whole.height:
            whole = whole.drop_nulls(["nines", "value_ms"]).filter((pl.col("value_ms") > 0) | (not log_y))
            whole = whole.with_columns(pl.lit("all requests").alias(key))
            df = whole if df is None or df.height == 0 else pl.concat([df.select(whole.columns), whole])
    if df is None or df.height == 0:
        return _empty("no requests", title, width)
    top = max(number(df["nines"].max()), 1.0)
    groups = sorted(g for g in df[key].unique().to_list() if g != "all requests")
    domain = groups + (["all requests"] if "all requests" in set(df[key].to_list()) else [])
    colour = _colour(key, domain, by or "curve")
    if "all requests" in domain:  # the curve of all requests in dark grey, the endpoints in the palette's colours
        colour = alt.Color(f"{key}:N", scale=alt.Scale(domain=domain, range=[*_colours(groups), "#333333"]),
                           sort=domain,
                           legend=alt.Legend(title=by or "curve"))
    is_all = alt.datum[key] == "all requests"
    chart = alt.Chart(df).mark_line(point=alt.OverlayMarkDef(size=10, filled=True)).encode(
        x=alt.X("nines:Q", axis=_nines_axis(top), scale=alt.Scale(domain=[0, top], nice=False)),
        y=alt.Y("value_ms:Q", axis=latency_axis(), scale=latency_scale(log_y)),
        color=colour,
        strokeWidth=alt.when(is_all).then(alt.value(3.0)).otherwise(alt.value(1.6)),
        tooltip=[alt.Tooltip(f"{key}:N", title=by or "curve"),
                 alt.Tooltip("percentile:Q", title="percentile", format=".4~f"),
                 alt.Tooltip("value_ms:Q", title="latency (ms)", format=".3~f")],
    ).properties(width=width, height=height, title=_title(title))
    ends = df.sort("nines").group_by(key, maintain_order=True).last().sort("value_ms", descending=True)
    reach = max(ends["percentile"].to_list())
    worst = ends.row(0, named=True)
    what = (f"{len(groups)} endpoint{'s' if len(groups) != 1 else ''}" if by else "all requests") + (
        " and all requests" if by and "all requests" in domain else "")
    text = (f"Latency by percentile for {what}, to p{_pct(reach)}; the highest tail is "
            f"{worst[key]} at {fmt_ms(worst['value_ms'])} (p{_pct(worst['percentile'])}).")
    return describe(chart, text)


def latency_over_time(ts: pl.DataFrame, *, series: Sequence[str] = ("p50", "p95", "p99", "max"),
                      log_y: bool = True, domain: Domain = None, warmup_end_s: float | None = None,
                      zoom: Zoom = True, title: str = "Latency over time (ms)", width: int = WIDTH,
                      height: int = HEIGHT) -> alt.Chart | alt.LayerChart:
    """Latency percentiles (ms, log axis) per time bucket: p50/p95/p99 lines, max thinner and lighter.

    Expects ``t_s`` and ``<series>_ms`` columns (``p50_ms, p95_ms, p99_ms, max_ms``) from
    ``results.latency_timeseries``; t_s is the bucket start (by planned send time). ``domain`` is the run's
    time axis (``data.run_domain``), ``warmup_end_s`` shades the warm-up, ``zoom`` adds x zoom and pan.
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
    line = alt.Chart(long).mark_line(point=alt.OverlayMarkDef(size=8, filled=True), clip=True).encode(
        x=time_x(domain=domain),
        y=alt.Y("value_ms:Q", axis=latency_axis(), scale=latency_scale(log_y)),
        color=_colour("series", series, "latency"),
        opacity=alt.when(faint).then(alt.value(0.5)).otherwise(alt.value(1.0)),
        strokeWidth=alt.when(faint).then(alt.value(1.0)).otherwise(alt.value(2.0)),
        tooltip=[alt.Tooltip("t_s:Q", title="t (s)"), alt.Tooltip("series:N"),
                 alt.Tooltip("value_ms:Q", title="latency (ms)", format=".3~f")],
    )
    chart = _time_layers([line], domain=domain, warmup_end_s=warmup_end_s, zoom=zoom)
    named = [s for s in series if s != "max"] or series
    worst = long.filter(pl.col("series") == named[-1]).sort("value_ms", descending=True)
    text = f"{'/'.join(series)} latency per {fmt_s(_spacing(df['t_s']))} bucket {_span(df['t_s'])}"
    if worst.height:
        w = worst.row(0, named=True)
        text += f"; {named[-1]} peaks at {fmt_ms(w['value_ms'])} at {fmt_s(w['t_s'])}"
    return describe(chart.properties(width=width, height=height, title=_title(title)), text + ".")


def throughput_over_time(tp: pl.DataFrame, *, planned: pl.DataFrame | None = None, every_s: float | None = None,
                         domain: Domain = None, warmup_end_s: float | None = None, zoom: Zoom = True,
                         title: str = "Throughput: offered and achieved (req/s)", width: int = WIDTH,
                         height: int = HEIGHT) -> alt.Chart | alt.LayerChart:
    """Completed responses per second, stacked by outcome (ok below error), against the offered rate (dashed).

    Expects ``t_s, outcome, rps`` from ``results.throughput_timeseries``; ``planned`` has ``t_s, rps`` (the
    arrival rate the plan offered, e.g. ``data.planned_rate(meta)``). Buckets with no responses are drawn
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
    text = "Responses per second"
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
        per_bucket = filled.group_by("k").agg(pl.col("rps").sum())
        mean = number(per_bucket["rps"].mean())
        text += f" averaged {mean:,.0f} over {fmt_s((hi - lo + 1) * step)}"
        # A closing point one bucket on, so that step-after draws the last bucket as wide as the others.
        filled = pl.concat([filled, filled.filter(pl.col("k") == hi).with_columns(k=pl.lit(hi + 1, pl.Int64))])
        filled = filled.with_columns(
            t_s=pl.col("k") * step,
            stack=pl.col("outcome").replace_strict(outcomes, list(range(len(outcomes))), return_dtype=pl.Int64),
        ).sort("k", "stack").select("t_s", "outcome", "rps", "stack")
        layers.append(alt.Chart(filled).mark_area(interpolate="step-after", opacity=0.85, clip=True).encode(
            x=time_x(domain=domain),
            y=alt.Y("rps:Q", stack="zero", title="responses per second", axis=alt.Axis(format="~s")),
            color=_colour("outcome", outcomes + (["planned"] if plan is not None else []), "outcome"),
            order=alt.Order("stack:Q", sort="ascending"),
            tooltip=[alt.Tooltip("t_s:Q", title="bucket start (s)"), alt.Tooltip("outcome:N"),
                     alt.Tooltip("rps:Q", title="responses/s", format=".1f")],
        ))
    if plan is not None:
        plan = plan.with_columns(outcome=pl.lit("planned"))
        cdomain = outcomes + ["planned"] if layers else ["planned"]
        layers.append(alt.Chart(plan).mark_line(strokeDash=[6, 4], strokeWidth=2, clip=True).encode(
            x=time_x(domain=domain),
            y=alt.Y("rps:Q", title="responses per second", axis=alt.Axis(format="~s")),
            color=_colour("outcome", cdomain, "outcome"),
            tooltip=[alt.Tooltip("t_s:Q", title="t (s)"), alt.Tooltip("rps:Q", title="offered req/s", format=".1f")],
        ))
        text += f" against an offered rate of up to {number(plan['rps'].max()):,.0f} req/s"
    chart = _time_layers(layers, domain=domain, warmup_end_s=warmup_end_s, zoom=zoom)
    return describe(chart.properties(width=width, height=height, title=_title(title)), text + ".")


def errors_over_time(err: pl.DataFrame, *, every_s: float = 1.0, domain: Domain = None,
                     warmup_end_s: float | None = None, zoom: Zoom = True, title: str = "Errors per second, by kind",
                     width: int = WIDTH, height: int = HEIGHT) -> alt.Chart | alt.LayerChart:
    """Stacked bars of errors per second in each time bucket, one colour per error kind; "no errors" if none.

    Expects ``t_s, error, errors`` from ``results.error_timeseries``; ``every_s`` must be the bucket width
    given to it (its default is 1.0 too), so counts become rates and bars get their width.
    """
    df = _frame(err, ["t_s", "error", "errors"], "errors_over_time", "error_timeseries")
    if df is None or df.height == 0:
        return describe(_empty("no errors", title, width), "No request failed in this run.")
    _check_every(every_s, "errors_over_time")
    df = df.with_columns(pl.col("error").fill_null("unknown")).with_columns(
        t_end=pl.col("t_s") + every_s, rate=pl.col("errors") / every_s)
    present = set(df["error"].to_list())
    kinds = [k for k in ERROR_KINDS if k in present] + sorted(present - set(ERROR_KINDS))
    bars = alt.Chart(df).mark_bar(clip=True).encode(
        x=time_x(domain=domain, bin="binned"),
        x2="t_end:Q",
        y=alt.Y("rate:Q", stack="zero", title="errors per second", axis=alt.Axis(format="~s")),
        color=_colour("error", kinds, "error kind"),
        tooltip=[alt.Tooltip("t_s:Q", title="bucket start (s)"), alt.Tooltip("error:N", title="kind"),
                 alt.Tooltip("errors:Q", title="errors"), alt.Tooltip("rate:Q", title="errors/s", format=".2f")],
    )
    by_kind = df.group_by("error").agg(pl.col("errors").sum()).sort("errors", "error", descending=[True, False])
    text = (f"{integer(df['errors'].sum()):,} errors of {len(kinds)} kind{'s' if len(kinds) != 1 else ''}; "
            f"most are {by_kind['error'][0]} ({integer(by_kind['errors'][0]):,})")
    chart = _time_layers([bars], domain=domain, warmup_end_s=warmup_end_s, zoom=zoom)
    return describe(chart.properties(width=width, height=height, title=_title(title)), text + ".")


# status code families: greens for 2xx, blues for 3xx, pinks for 4xx, purples for 5xx (in order of the codes)
STATUS_SHADES = {"1": ("#bab0ac", "#9d9d9d"), "2": ("#54a24b", "#8cd17d", "#2f6b2a"),
                 "3": ("#4c78a8", "#9ecae9", "#2b4c6f"), "4": ("#e377c2", "#f7b6d2", "#a4457f"),
                 "5": ("#9467bd", "#c5b0d5", "#5e3c82")}


def status_over_time(st: pl.DataFrame, *, every_s: float | None = None, domain: Domain = None,
                     warmup_end_s: float | None = None, zoom: Zoom = True,
                     title: str = "Responses per second, by status code", width: int = WIDTH,
                     height: int = 160) -> alt.Chart | alt.LayerChart:
    """Stacked bars of responses per second per status code (2xx green, 3xx blue, 4xx pink, 5xx purple; no
    response: the error kind). Expects ``t_s, status, rps`` from ``data.status_timeseries``."""
    df = _frame(st, ["t_s", "status", "rps"], "status_over_time", source="perfbench.report.charts.status_timeseries()")
    if df is None or df.height == 0:
        return _empty("no responses", title, width)
    step = every_s or _spacing(df["t_s"])
    df = df.with_columns(pl.col("status").cast(pl.String), t_end=pl.col("t_s") + step)
    codes = sorted(set(df["status"].to_list()), key=lambda c: (not c[:1].isdigit(), c))
    used: dict[str, int] = {}
    colours: list[str] = []
    for c in codes:
        shades = STATUS_SHADES.get(c[:1]) if c[:1].isdigit() else None
        if shades is None:
            colours.append(PALETTE.get(c, "#7f7f7f"))
            continue
        k = used.get(c[:1], 0)
        used[c[:1]] = k + 1
        colours.append(shades[k % len(shades)])
    bars = alt.Chart(df).mark_bar(clip=True).encode(
        x=time_x(domain=domain, bin="binned"), x2="t_end:Q",
        y=alt.Y("rps:Q", stack="zero", title="responses per second", axis=alt.Axis(format="~s")),
        color=alt.Color("status:N", scale=alt.Scale(domain=codes, range=colours), sort=codes,
                        legend=alt.Legend(title="status")),
        tooltip=[alt.Tooltip("t_s:Q", title="bucket start (s)"), alt.Tooltip("status:N"),
                 alt.Tooltip("rps:Q", title="responses/s", format=".1f")],
    )
    totals = df.group_by("status").agg((pl.col("rps") * step).sum().alias("n")).sort("n", "status",
                                                                                   descending=[True, False])
    text = "Status codes over time: " + ", ".join(f"{r['status']} {r['n']:,.0f}" for r in totals.head(4).iter_rows(
        named=True)) + (f" and {totals.height - 4} more" if totals.height > 4 else "")
    chart = _time_layers([bars], domain=domain, warmup_end_s=warmup_end_s, zoom=zoom)
    return describe(chart.properties(width=width, height=height, title=_title(title)), text + ".")


def endpoint_latency_over_time(ets: pl.DataFrame, *, metric: str = "p95", domain: Domain = None,
                               warmup_end_s: float | None = None, zoom: Zoom = True, title: str | None = None,
                               width: int = WIDTH, height: int = HEIGHT) -> alt.Chart | alt.LayerChart:
    """One line per endpoint of a latency percentile (ms, log axis) per time bucket.
    Expects ``t_s, endpoint, value_ms`` from ``data.endpoint_timeseries``."""
    title = title or f"{metric} latency over time, by endpoint (ms)"
    df = _frame(ets, ["t_s", "endpoint", "value_ms"], "endpoint_latency_over_time",
                source="perfbench.report.charts.endpoint_timeseries()")
    if df is None or df.height == 0:
        return _empty("no requests", title, width)
    df = df.with_columns(pl.col("endpoint").cast(pl.String)).filter(pl.col("value_ms") > 0)
    endpoints = sorted(df["endpoint"].unique().to_list())
    line = alt.Chart(df).mark_line(point=alt.OverlayMarkDef(size=6, filled=True), clip=True).encode(
        x=time_x(domain=domain), y=alt.Y("value_ms:Q", axis=latency_axis(f"{metric} {LATENCY_AXIS}"),
                                         scale=latency_scale()),
        color=_colour("endpoint", endpoints, "endpoint"),
        tooltip=[alt.Tooltip("t_s:Q", title="t (s)"), alt.Tooltip("endpoint:N"),
                 alt.Tooltip("value_ms:Q", title=f"{metric} (ms)", format=".3~f")])
    worst = df.sort("value_ms", descending=True).row(0, named=True)
    text = (f"{metric} latency of {len(endpoints)} endpoint{'s' if len(endpoints) != 1 else ''} per time bucket "
            f"{_span(df['t_s'])}; {worst['endpoint']} is highest at {fmt_ms(worst['value_ms'])} at "
            f"{fmt_s(worst['t_s'])}.")
    chart = _time_layers([line], domain=domain, warmup_end_s=warmup_end_s, zoom=zoom)
    return describe(chart.properties(width=width, height=height, title=_title(title)), text)


def endpoint_latency_bars(stats: pl.DataFrame, *, series: Sequence[str] = ("p50", "p95", "p99"),
                          title: str = "Latency by endpoint (ms)", width: int = WIDTH,
                          height: int | None = None) -> alt.Chart | alt.LayerChart:
    """Per endpoint, latency percentiles (ms) as dots on a log axis joined by a rule, endpoints in the frame's
    order (a dot plot: bars would need a zero the log axis has not).

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
            .with_columns(pl.col("series").str.strip_suffix("_ms")).filter(pl.col("value_ms") > 0))
    if height is None:
        height = max(60, 24 * len(endpoints))
    y = alt.Y("endpoint:N", sort=endpoints, title="endpoint", axis=alt.Axis(labelLimit=260))
    span = alt.Chart(long).mark_rule(color="#bbbbbb").encode(
        y=y, x=alt.X("min(value_ms):Q", axis=latency_axis(), scale=latency_scale()), x2="max(value_ms):Q")
    dots = alt.Chart(long).mark_point(filled=True, size=70, opacity=0.9).encode(
        y=y, x=alt.X("value_ms:Q", axis=latency_axis(), scale=latency_scale()),
        color=_colour("series", series, "latency"),
        tooltip=[alt.Tooltip("endpoint:N"), alt.Tooltip("series:N"),
                 alt.Tooltip("value_ms:Q", title="latency (ms)", format=".3~f")],
    )
    last = f"{series[-1]}_ms"
    worst = df.drop_nulls(last).sort(last, descending=True)
    text = f"{'/'.join(series)} latency of {len(endpoints)} endpoint{'s' if len(endpoints) != 1 else ''}"
    if worst.height:
        text += f"; {worst['endpoint'][0]} is highest at {series[-1]} {fmt_ms(worst[last][0])}"
    return describe(_layer(span, dots).properties(width=width, height=height, title=_title(title)), text + ".")


def overview(hist: pl.DataFrame, ts: pl.DataFrame, tp: pl.DataFrame, err: pl.DataFrame, *,
             percentiles: dict[str, float] | None = None, planned: pl.DataFrame | None = None,
             every_s: float | None = None, domain: Domain = None, warmup_end_s: float | None = None,
             width: int = WIDTH) -> alt.VConcatChart:
    """The main charts stacked: latency histogram, latency over time, throughput, errors.

    Takes the frames of ``results.latency_histogram``, ``latency_timeseries``, ``throughput_timeseries`` and
    ``error_timeseries``; ``every_s`` is their bucket width (inferred from the throughput frame when not given).
    Colour scales and legends stay per chart.
    """
    if every_s is None and isinstance(tp, pl.DataFrame) and "t_s" in tp.columns and tp.height:
        every_s = _spacing(tp["t_s"])
    hist_chart = latency_histogram(hist, percentiles=percentiles, width=width)
    common: dict[str, Any] = {"domain": domain, "warmup_end_s": warmup_end_s, "width": width, "zoom": False}
    return describe(alt.vconcat(
        hist_chart,
        latency_over_time(ts, **common),
        throughput_over_time(tp, planned=planned, every_s=every_s, **common),
        errors_over_time(err, every_s=every_s or 1.0, **common),
    ).resolve_scale(color="independent").resolve_legend(color="independent"),
        "Overview: " + str(getattr(hist_chart, "description", "latency")).rstrip(".")
        + ", then latency, throughput and errors over time.")
