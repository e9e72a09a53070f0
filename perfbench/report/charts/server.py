"""Charts of the target's side of a run: process resources, memory growth by allocation site, leak growth,
and SQL statements (per request, N+1 findings, slowest fingerprints, latency against queries).

Frames from perfbench.profilers: resources.read_resources (t_s, rss_mb, cpu_percent), tracemalloc.diff /
the memory/tracemalloc_diff_*.parquet files (file, line, size_diff), leak.assess (fits and points);
and from ``perfbench.analysis.results`` and the query profiler for the SQL charts.
"""

from __future__ import annotations

import math

import altair as alt
import polars as pl
import polars.selectors as cs

from ...scalars import number
from .base import (
    HEIGHT,
    PALETTE,
    TIME_AXIS,
    WIDTH,
    _colour,
    _empty,
    _frame,
    _layer,
    _title,
    count_axis,
    describe,
    fmt_ms,
    latency_axis,
    latency_scale,
    shared_params,
    time_x,
    warmup_band,
    zoom_x,
)
from .load import Zoom, throughput_over_time

MEMORY_AXIS = "memory (MiB)"


def resources_panels(res: pl.DataFrame, *, domain: tuple[float, float] | None = None,
                     warmup_end_s: float | None = None, zoom: Zoom = False, width: int = WIDTH, height: int = 160,
                     title: str = "Target process: memory and CPU") -> list:
    """The memory (RSS, USS where sampled; MiB) and CPU (% of one core) charts of a target process over the
    run's time axis; an empty list when there are no samples. ``res``: ``t_s, rss_mb, cpu_percent``."""
    cols = ["t_s", "rss_mb", "cpu_percent"] + (["uss_mb"] if "uss_mb" in res.columns else [])
    df = _frame(res, cols, "resources_over_time", source="the frame perfbench.profilers.resources."
                                                         "read_resources() returns")
    if df is None or df.height == 0:
        return []
    mem = df.select("t_s", *(c for c in ("rss_mb", "uss_mb") if c in df.columns)).unpivot(
        index="t_s", variable_name="series", value_name="mib").drop_nulls("mib").with_columns(
        pl.col("series").str.strip_suffix("_mb"))
    series = [s for s in ("rss", "uss") if s in set(mem["series"].to_list())]
    mem_chart = alt.Chart(mem).mark_line(point=alt.OverlayMarkDef(size=6, filled=True), clip=True).encode(
        x=time_x(domain=domain), y=alt.Y("mib:Q", title=MEMORY_AXIS, scale=alt.Scale(zero=False),
                                         axis=alt.Axis(format="~s")),
        color=_colour("series", series, "memory"),
        tooltip=[alt.Tooltip("t_s:Q", title="t (s)", format=".2f"), alt.Tooltip("series:N"),
                 alt.Tooltip("mib:Q", title="MiB", format=".2f")],
    )
    cpu = df.select("t_s", "cpu_percent").drop_nulls()
    cpu_chart = alt.Chart(cpu).mark_line(color=PALETTE["cpu"], interpolate="step-before", clip=True).encode(
        x=time_x(domain=domain), y=alt.Y("cpu_percent:Q", title="CPU (% of one core)", axis=alt.Axis(format="~s")),
        tooltip=[alt.Tooltip("t_s:Q", title="t (s)", format=".2f"),
                 alt.Tooltip("cpu_percent:Q", title="CPU %", format=".1f")],
    )
    rss = mem.filter(pl.col("series") == series[0]) if series else mem
    out = []
    for i, unit in enumerate((mem_chart, cpu_chart)):
        band = warmup_band(warmup_end_s, domain)
        if zoom is not False:
            unit = unit.add_params(zoom_x() if zoom is True else zoom)
        chart = _layer(band, unit) if band is not None else unit
        out.append(chart.properties(width=width, height=height, title=_title(title) if i == 0 else ""))
    if rss.height:
        first, last = number(rss.sort("t_s")["mib"][0]), number(rss.sort("t_s")["mib"][-1])
        out[0] = describe(out[0], f"{series[0].upper() if series else 'Memory'} of the target from "
                                  f"{first:,.1f} to {last:,.1f} MiB (peak {number(rss['mib'].max()):,.1f} MiB) "
                                  f"{_over(df['t_s'])}.")
    out[1] = describe(out[1], f"CPU of the target, mean {number(cpu['cpu_percent'].mean() or 0):,.0f} % and "
                              f"peak {number(cpu['cpu_percent'].max() or 0):,.0f} % of one core.")
    return out


def _over(t: pl.Series) -> str:
    return f"over {number(t.max()) - number(t.min()):,.0f} s" if t.len() else ""


def resources_over_time(res: pl.DataFrame, tp: pl.DataFrame | None = None, *, every_s: float | None = None,
                        domain: tuple[float, float] | None = None, warmup_end_s: float | None = None,
                        title: str = "Target process: memory, CPU and throughput",
                        width: int = WIDTH, height: int = 160) -> alt.VConcatChart:
    """RSS (and USS where sampled) in MiB and CPU % over time, stacked above throughput on the same time axis
    (``domain``, the run's), zoomed together: a wheel or drag on one zooms or pans all three.

    ``res``: ``t_s, rss_mb, cpu_percent`` (and optional ``uss_mb``) from
    ``perfbench.profilers.resources.read_resources``; ``tp``: ``results.throughput_timeseries`` (optional).
    """
    zoom = zoom_x()  # one zoom for the three: zooming one zooms all
    charts = resources_panels(res, domain=domain, warmup_end_s=warmup_end_s, zoom=zoom, width=width,
                              height=height, title=title)
    if not charts:
        return describe(alt.vconcat(_empty("no resource samples", title, width)), "No resource samples.")
    text = " ".join(str(getattr(c, "description", "")) for c in charts)
    if tp is not None:
        charts.append(throughput_over_time(tp, every_s=every_s, domain=domain, warmup_end_s=warmup_end_s,
                                           zoom=zoom, title="Throughput (responses/s)", width=width, height=height))
    return describe(shared_params(lambda: alt.vconcat(*charts).resolve_scale(color="independent").resolve_legend(
        color="independent")), text)


def memory_diff_bars(diff: pl.DataFrame, *, n: int = 15, title: str = "Memory growth by allocation site",
                     width: int = WIDTH, height: int | None = None) -> alt.Chart:
    """Ranked horizontal bars of ``size_diff`` (KiB) per allocation site ``file:line``: the top ``n`` by |change|.

    Expects ``file, line, size_diff`` (and optional ``count_diff``) from ``perfbench.profilers.tracemalloc.diff``
    or a ``memory/tracemalloc_diff_*.parquet`` file. Growth is red, shrinkage green.
    """
    cols = ["file", "line", "size_diff"] + (["count_diff"] if "count_diff" in diff.columns else [])
    df = _frame(diff, cols, "memory_diff_bars", source="the frame perfbench.profilers.tracemalloc.diff() returns")
    if df is None or df.height == 0:
        return _empty("no allocation sites", title, width)
    df = (df.filter(pl.col("size_diff") != 0).sort(pl.col("size_diff").abs(), descending=True).head(n)
          .with_columns(site=pl.format("{}:{}", pl.col("file").str.split("/").list.slice(-2).list.join("/"),
                                       pl.col("line")),
                        kib=pl.col("size_diff") / 1024,
                        change=pl.when(pl.col("size_diff") > 0).then(pl.lit("growth")).otherwise(pl.lit("shrink"))))
    if df.height == 0:
        return _empty("no change between the snapshots", title, width)
    order = df["site"].to_list()
    tips = [alt.Tooltip("file:N"), alt.Tooltip("line:Q"), alt.Tooltip("kib:Q", title="change (KiB)", format=",.1f")]
    if "count_diff" in df.columns:
        tips.append(alt.Tooltip("count_diff:Q", title="change (blocks)"))
    top = df.row(0, named=True)
    text = (f"Memory change at the {df.height} allocation sites that changed most; {top['site']} changed most, "
            f"by {top['kib']:+,.1f} KiB.")
    return describe(alt.Chart(df).mark_bar().encode(
        y=alt.Y("site:N", sort=order, title="allocation site", axis=alt.Axis(labelLimit=320)),
        x=alt.X("kib:Q", axis=count_axis("change (KiB)", ",~r")),
        color=_colour("change", ["growth", "shrink"], "change"),
        tooltip=tips,
    ).properties(width=width, height=height or max(60, 18 * df.height), title=_title(title)), text)


def leak_growth(points: pl.DataFrame, *, slope: float | None = None, intercept: float | None = None,
                x: str = "requests", ci: tuple[float, float] | None = None, warmup_x: float | None = None,
                title: str = "Memory growth and fitted slope", width: int = WIDTH,
                height: int = HEIGHT) -> alt.Chart | alt.LayerChart:
    """Memory (MiB) against ``x`` (``requests`` completed or ``t_s``) with the fitted line (bytes per unit of x).

    ``points``: ``x`` and ``bytes`` columns (and optional ``series``, e.g. rss / traced). ``slope`` and
    ``intercept`` (bytes) come from ``leak.assess(...).series[name].per_request``; ``ci`` is shown in the title.
    """
    cols = [x, "bytes"] + (["series"] if "series" in points.columns else [])
    df = _frame(points, cols, "leak_growth", source=f"a frame with columns {x}, bytes")
    if df is None or df.height == 0:
        return _empty("no memory samples", title, width)
    df = df.drop_nulls([x, "bytes"]).with_columns(mib=pl.col("bytes") / 2**20)
    if "series" not in df.columns:
        df = df.with_columns(series=pl.lit("rss"))
    series = sorted(set(df["series"].to_list()))
    xtitle = "requests completed" if x == "requests" else TIME_AXIS
    layers: list = [alt.Chart(df).mark_circle(size=18, opacity=0.7).encode(
        x=alt.X(f"{x}:Q", axis=count_axis(xtitle)), y=alt.Y("mib:Q", title=MEMORY_AXIS, scale=alt.Scale(zero=False)),
        color=_colour("series", series + (["fit"] if slope is not None else []), "series"),
        tooltip=[alt.Tooltip(f"{x}:Q", format=",.2f"), alt.Tooltip("mib:Q", title="MiB", format=".2f"),
                 alt.Tooltip("series:N")])]
    if slope is not None and intercept is not None:
        lo, hi = float(number(df[x].min())), float(number(df[x].max()))
        line = pl.DataFrame({x: [lo, hi], "mib": [(intercept + slope * lo) / 2**20, (intercept + slope * hi) / 2**20],
                             "series": ["fit", "fit"]})
        layers.append(alt.Chart(line).mark_line(strokeDash=[6, 3], strokeWidth=2).encode(
            x=f"{x}:Q", y="mib:Q", color=_colour("series", series + ["fit"], "series")))
        unit = "B/request" if x == "requests" else "B/s"
        title = f"{title}: {slope:,.0f} {unit}" + (f" (95 % CI {ci[0]:,.0f} to {ci[1]:,.0f})" if ci else "")
    if warmup_x is not None:
        layers.append(alt.Chart(pl.DataFrame({x: [float(warmup_x)]})).mark_rule(color="#9d9d9d", strokeDash=[2, 2])
                      .encode(x=f"{x}:Q"))
    chart = layers[0] if len(layers) == 1 else _layer(*layers)
    lo, hi = number(df["mib"].min()), number(df["mib"].max())
    text = (f"Memory ({', '.join(series)}) against {xtitle}, from {lo:,.1f} to {hi:,.1f} MiB"
            + (f"; the fitted slope is {slope:,.0f} {'B/request' if x == 'requests' else 'B/s'}"
               if slope is not None else "") + ".")
    return describe(chart.properties(width=width, height=height, title=_title(title)), text)


# --- SQL queries


def queries_per_request(stats: pl.DataFrame, *, title: str = "Queries per request, by endpoint",
                        width: int = WIDTH, height: int | None = None) -> alt.Chart | alt.LayerChart:
    """Per endpoint, the distribution of SQL statements per request: a min-max rule, a p50-p99 bar
    and a tick at the median.

    Expects ``endpoint, min, p50, p90, p99, max`` from ``analysis.queries.query_count_stats``.
    """
    df = _frame(stats, ["endpoint", "min", "p50", "p90", "p99", "max"], "queries_per_request",
                source="perfbench.analysis.queries.query_count_stats()")
    if df is None or df.height == 0:
        return _empty("no requests", title, width)
    df = df.with_columns(pl.col("endpoint").cast(pl.String), cs.numeric().cast(pl.Float64))
    endpoints = df["endpoint"].to_list()
    height = height or max(60, 26 * len(endpoints))
    y = alt.Y("endpoint:N", sort=endpoints, title="endpoint")
    tooltip = [alt.Tooltip("endpoint:N"), *(alt.Tooltip(f"{c}:Q", format=".3~f") for c in
                                             ("min", "p50", "p90", "p99", "max"))]
    span = alt.Chart(df).mark_rule(color=PALETTE["max"]).encode(
        y=y, x=alt.X("min:Q", axis=count_axis("SQL statements per request")), x2="max:Q", tooltip=tooltip)
    box = alt.Chart(df).mark_bar(size=12, color=PALETTE["p95"], opacity=0.6).encode(
        y=y, x="p50:Q", x2="p99:Q", tooltip=tooltip)
    median = alt.Chart(df).mark_tick(color=PALETTE["p50"], thickness=3, size=16).encode(
        y=y, x="p50:Q", tooltip=tooltip)
    most = df.sort("p99", descending=True).row(0, named=True)
    text = (f"SQL statements per request for {len(endpoints)} endpoints; {most['endpoint']} runs the most, "
            f"p50 {most['p50']:g} and p99 {most['p99']:g}.")
    return describe(_layer(span, box, median).properties(width=width, height=height, title=_title(title)), text)


def n_plus_one_findings(summary: pl.DataFrame, *, top: int = 15, title: str = "N+1 findings: time they cost (ms)",
                        width: int = WIDTH, height: int | None = None) -> alt.Chart:
    """Horizontal bars of the time repeated statements cost, per endpoint and statement; "no N+1" if none.

    Expects ``endpoint, statement, requests, repetitions_median, time_ms_total`` from
    ``analysis.queries.n_plus_one_summary``.
    """
    cols = ["endpoint", "statement", "requests", "repetitions_median", "time_ms_total"]
    df = _frame(summary, cols, "n_plus_one_findings", source="perfbench.analysis.queries.n_plus_one_summary()")
    if df is None or df.height == 0:
        return _empty("no N+1 found", title, width)
    df = df.sort("time_ms_total", descending=True).head(top).with_columns(
        label=pl.format("{}: {}", "endpoint", pl.col("statement").str.slice(0, 70)))
    labels = df["label"].to_list()
    endpoints = list(dict.fromkeys(df["endpoint"].to_list()))
    top_row = df.row(0, named=True)
    text = (f"{df.height} N+1 finding{'s' if df.height != 1 else ''}; the costliest is {top_row['endpoint']} "
            f"repeating a statement {top_row['repetitions_median']:g} times per request, "
            f"{fmt_ms(top_row['time_ms_total'])} in all.")
    return describe(alt.Chart(df).mark_bar().encode(
        y=alt.Y("label:N", sort=labels, title=None, axis=alt.Axis(labelLimit=420)),
        x=alt.X("time_ms_total:Q", axis=count_axis("time in repeated statements (ms)", ",~r")),
        color=_colour("endpoint", endpoints, "endpoint"),
        tooltip=[alt.Tooltip("endpoint:N"), alt.Tooltip("statement:N"), alt.Tooltip("requests:Q"),
                 alt.Tooltip("repetitions_median:Q", title="repetitions (median)"),
                 alt.Tooltip("time_ms_total:Q", title="total ms", format=".2f")],
    ).properties(width=width, height=height or max(60, 22 * df.height), title=_title(title)), text)


def slowest_fingerprints(slow: pl.DataFrame, *, top: int = 15, title: str = "Slowest statements (total ms)",
                         width: int = WIDTH, height: int | None = None) -> alt.Chart:
    """Bars of total time per statement fingerprint, with count, mean and p95 in the tooltip.

    Expects ``fingerprint, statement, count, total_ms, mean_ms, p95_ms`` from
    ``analysis.queries.slowest_fingerprints``.
    """
    cols = ["fingerprint", "statement", "count", "total_ms", "mean_ms", "p95_ms"]
    df = _frame(slow, cols, "slowest_fingerprints", source="perfbench.analysis.queries.slowest_fingerprints()")
    if df is None or df.height == 0:
        return _empty("no statements", title, width)
    df = df.sort("total_ms", descending=True).head(top).with_columns(
        label=pl.format("{} {}", pl.col("fingerprint").str.slice(0, 6), pl.col("statement").str.slice(0, 70)))
    first = df.row(0, named=True)
    text = (f"Total time of the {df.height} slowest SQL statements; the first ran {first['count']:,} times for "
            f"{fmt_ms(first['total_ms'])} in all: {str(first['statement'])[:60]}.")
    return describe(alt.Chart(df).mark_bar(color=PALETTE["latency"]).encode(
        y=alt.Y("label:N", sort=df["label"].to_list(), title=None, axis=alt.Axis(labelLimit=420)),
        x=alt.X("total_ms:Q", axis=count_axis("total time (ms)", ",~r")),
        tooltip=[alt.Tooltip("statement:N"), alt.Tooltip("count:Q"),
                 alt.Tooltip("total_ms:Q", format=".2f"), alt.Tooltip("mean_ms:Q", format=".3f"),
                 alt.Tooltip("p95_ms:Q", format=".3f")],
    ).properties(width=width, height=height or max(60, 22 * df.height), title=_title(title)), text)


def latency_vs_queries(per_request: pl.DataFrame, *, max_points: int = 4000,
                       title: str = "Latency against SQL statements per request", width: int = WIDTH,
                       height: int = HEIGHT) -> alt.Chart:
    """A scatter of each request's latency (ms) against how many statements it ran, by endpoint.

    Expects ``endpoint, queries, latency_ms`` from ``analysis.queries.request_queries``; more than ``max_points``
    rows are thinned to every k-th row (in Polars, keeping the order) so the spec stays small.
    """
    df = _frame(per_request, ["endpoint", "queries", "latency_ms"], "latency_vs_queries",
                source="perfbench.analysis.queries.request_queries()")
    if df is None or df.height == 0:
        return _empty("no requests", title, width)
    if df.height > max_points:
        df = df.gather_every(math.ceil(df.height / max_points))
    df = df.with_columns(pl.col("endpoint").cast(pl.String))
    endpoints = sorted(df["endpoint"].unique().to_list())
    corr = df.select(pl.corr("queries", "latency_ms")).item()
    text = (f"Latency of {df.height:,} requests against their SQL statement count (up to "
            f"{number(df['queries'].max()):g})" + (f"; correlation {corr:.2f}" if corr is not None
                                                    and math.isfinite(corr) else "") + ".")
    return describe(alt.Chart(df.filter(pl.col("latency_ms") > 0)).mark_circle(size=28, opacity=0.6).encode(
        x=alt.X("queries:Q", axis=count_axis("SQL statements per request")),
        y=alt.Y("latency_ms:Q", axis=latency_axis(), scale=latency_scale()),
        color=_colour("endpoint", endpoints, "endpoint"),
        tooltip=[alt.Tooltip("endpoint:N"), alt.Tooltip("queries:Q"),
                 alt.Tooltip("latency_ms:Q", title="latency (ms)", format=".3~f")],
    ).properties(width=width, height=height, title=_title(title)), text)
