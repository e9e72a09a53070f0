"""Charts: pure functions from the small, already aggregated frames of ``perfbench.analysis.results`` to Altair charts.

    hist = results.latency_histogram(run.requests)
    charts.latency_histogram(hist, percentiles={"p50": 4.1, "p99": 19.0})

Each function takes a Polars frame, checks its columns, reshapes it in Polars (never aggregates raw rows in
Altair) and returns a chart value. Nothing here does I/O or touches Altair's global registries (renderers,
themes, data transformers): rendering (reports use vl-convert's SVG) is the caller's business. No chart carries
``.configure_*`` so that any of them can be layered or concatenated; the shared look comes from ``PALETTE``,
``WIDTH``/``HEIGHT`` and the axis titles below. Latency is always in ms, time in seconds since the run start.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import altair as alt
import polars as pl
import polars.selectors as cs

from ..errors import ConfigError, FrameError
from ..rundir import ERROR_KINDS

WIDTH = 640
HEIGHT = 240

# One colour per series name, the same in every chart.
PALETTE: dict[str, str] = {
    # latency series
    "latency": "#4c78a8",
    "p50": "#4c78a8",
    "p90": "#72b7b2",
    "p95": "#f58518",
    "p99": "#e45756",
    "p99_9": "#b279a2",
    "max": "#9d9d9d",
    "mean": "#54a24b",
    # outcomes and plan
    "ok": "#54a24b",
    "error": "#e45756",
    "planned": "#333333",
    # error kinds (perfbench.rundir.ERROR_KINDS)
    "timeout": "#ff7f0e",
    "connect": "#d62728",
    "dns": "#17becf",
    "tls": "#bcbd22",
    "reset": "#8c564b",
    "protocol": "#393b79",
    "http_4xx": "#e377c2",
    "http_5xx": "#9467bd",
    "check": "#1f77b4",
    "aborted": "#7f7f7f",
    "client": "#843c39",
}
# For names the palette does not know (endpoints, new error kinds), in order of appearance.
EXTRA_COLOURS = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#ff9da6", "#9d755d",
                 "#eeca3b", "#bab0ac")

LATENCY_AXIS = "latency (ms)"
TIME_AXIS = "time since start (s)"


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
        chart = alt.layer(bars, rules, labels)
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
    top = max(df["nines"].max(), 1.0)
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
    mark = {"point": alt.OverlayMarkDef(size=10, filled=True), "strokeWidth": 1.8}
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
    layers = []
    if df is not None and df.height:
        outcomes += sorted(set(df["outcome"].drop_nulls().to_list()) - set(outcomes))
        if every_s is not None:
            _check_every(every_s, "throughput_over_time")
        step = every_s or _spacing(df["t_s"])
        k = (pl.col("t_s") / step).round().cast(pl.Int64)
        df = df.drop_nulls().group_by(k.alias("k"), "outcome").agg(pl.col("rps").sum())
        lo, hi = df["k"].min(), df["k"].max()
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
    chart = layers[0] if len(layers) == 1 else alt.layer(*layers)
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


# --- helpers ---------------------------------------------------------------------------------------------


def _frame(df: pl.DataFrame, cols: list[str], func: str, producer: str | None = None, *,
           source: str | None = None) -> pl.DataFrame | None:
    """Only ``cols`` of ``df``, NaN turned into null (JSON has no NaN); None for a frame with no columns.

    Raises ValueError naming the missing columns and the function that makes the right frame.
    """
    where = source or f"the frame perfbench.analysis.results.{producer}() returns"
    if not isinstance(df, pl.DataFrame):
        hint = " (call .collect() first)" if isinstance(df, pl.LazyFrame) else ""
        raise FrameError(f"charts.{func}: expected a polars DataFrame, {where}; got {type(df).__name__}{hint}")
    if df.width == 0:  # e.g. results.percentile_curve of an empty run: a frame without columns
        return None
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ConfigError(f"charts.{func}: missing column(s) {', '.join(missing)}; pass {where} "
                         f"(needs {', '.join(cols)}; got {', '.join(df.columns)})")
    return df.select(cols).with_columns(cs.float().fill_nan(None))


def _colour(field: str, domain: list[str], title: str) -> alt.Color:
    """A nominal colour encoding whose colours come from PALETTE, so a name has one colour everywhere."""
    extra = iter(EXTRA_COLOURS * (len(domain) // len(EXTRA_COLOURS) + 1))
    colours = [PALETTE[d] if d in PALETTE else next(extra) for d in domain]
    return alt.Color(f"{field}:N", scale=alt.Scale(domain=domain, range=colours), sort=domain,
                     legend=alt.Legend(title=title))


def _title(text: str) -> alt.TitleParams:
    return alt.TitleParams(text=text, anchor="start", fontSize=14)


def _empty(message: str, title: str, width: int) -> alt.Chart:
    """A small chart that says ``message`` where the chart would be."""
    return alt.Chart(pl.DataFrame({"message": [message]})).mark_text(fontSize=14, color="#666666").encode(
        text="message:N").properties(width=width, height=60, title=_title(title))


def _log_spaced(df: pl.DataFrame) -> bool:
    """Whether histogram bins are log-spaced: constant end/start ratio rather than constant width."""
    if df["bin_start"].min() <= 0:
        return False
    width = df["bin_end"] - df["bin_start"]
    ratio = df["bin_end"] / df["bin_start"]
    equal_ratios = ratio.max() - ratio.min() <= 1e-6 * ratio.max()
    equal_widths = width.max() - width.min() <= 1e-6 * width.max()
    return bool(equal_ratios and not equal_widths)


def _check_every(every_s: float, func: str) -> None:
    if not every_s or every_s <= 0 or not math.isfinite(every_s):
        raise ConfigError(f"charts.{func}: every_s must be the positive bucket width (s) the frame was made "
                         f"with, got {every_s!r}")


def _spacing(t: pl.Series) -> float:
    """The bucket width of a time series: the smallest gap between its distinct times (1.0 for one bucket)."""
    gaps = t.drop_nulls().unique().sort().diff().drop_nulls()
    gaps = gaps.filter(gaps > 0)
    return float(gaps.min()) if gaps.len() else 1.0


# --- resources and memory ----------------------------------------------------------------------------------
# Frames from perfbench.profilers: resources.read_resources (t_s, rss_mb, cpu_percent), memory.diff /
# the memory/tracemalloc_diff_*.parquet files (file, line, size_diff), leak.assess (fits and points).

PALETTE.setdefault("rss", "#4c78a8")
PALETTE.setdefault("uss", "#72b7b2")
PALETTE.setdefault("cpu", "#f58518")
PALETTE.setdefault("growth", "#e45756")
PALETTE.setdefault("shrink", "#54a24b")
PALETTE.setdefault("fit", "#333333")
MEMORY_AXIS = "memory (MiB)"


def resources_over_time(res: pl.DataFrame, tp: pl.DataFrame | None = None, *, every_s: float | None = None,
                        title: str = "Target process: memory, CPU and throughput",
                        width: int = WIDTH, height: int = 160) -> alt.VConcatChart:
    """RSS (and USS where sampled) in MiB and CPU % over time, stacked above throughput on the same time axis.

    ``res``: ``t_s, rss_mb, cpu_percent`` (and optional ``uss_mb``) from
    ``perfbench.profilers.resources.read_resources``; ``tp``: ``results.throughput_timeseries`` (optional).
    """
    cols = ["t_s", "rss_mb", "cpu_percent"] + (["uss_mb"] if "uss_mb" in res.columns else [])
    df = _frame(res, cols, "resources_over_time", source="the frame perfbench.profilers.resources."
                                                         "read_resources() returns")
    if df is None or df.height == 0:
        return alt.vconcat(_empty("no resource samples", title, width))
    mem = df.select("t_s", *(c for c in ("rss_mb", "uss_mb") if c in df.columns)).unpivot(
        index="t_s", variable_name="series", value_name="mib").drop_nulls("mib").with_columns(
        pl.col("series").str.strip_suffix("_mb"))
    series = [s for s in ("rss", "uss") if s in set(mem["series"].to_list())]
    x = alt.X("t_s:Q", title=TIME_AXIS)
    mem_chart = alt.Chart(mem).mark_line(point=alt.OverlayMarkDef(size=6, filled=True)).encode(
        x=x, y=alt.Y("mib:Q", title=MEMORY_AXIS, scale=alt.Scale(zero=False)),
        color=_colour("series", series, "memory"),
        tooltip=[alt.Tooltip("t_s:Q", title="t (s)", format=".2f"), alt.Tooltip("series:N"),
                 alt.Tooltip("mib:Q", title="MiB", format=".2f")],
    ).properties(width=width, height=height, title=_title(title))
    cpu = df.select("t_s", "cpu_percent").drop_nulls()
    cpu_chart = alt.Chart(cpu).mark_line(color=PALETTE["cpu"], interpolate="step-before").encode(
        x=x, y=alt.Y("cpu_percent:Q", title="CPU (% of one core)"),
        tooltip=[alt.Tooltip("t_s:Q", title="t (s)", format=".2f"),
                 alt.Tooltip("cpu_percent:Q", title="CPU %", format=".1f")],
    ).properties(width=width, height=height)
    charts: list = [mem_chart, cpu_chart]
    if tp is not None:
        charts.append(throughput_over_time(tp, every_s=every_s, title="Throughput (responses/s)", width=width,
                                           height=height))
    return alt.vconcat(*charts).resolve_scale(color="independent").resolve_legend(color="independent")


def memory_diff_bars(diff: pl.DataFrame, *, n: int = 15, title: str = "Memory growth by allocation site",
                     width: int = WIDTH, height: int | None = None) -> alt.Chart:
    """Ranked horizontal bars of ``size_diff`` (KiB) per allocation site ``file:line``: the top ``n`` by |change|.

    Expects ``file, line, size_diff`` (and optional ``count_diff``) from ``perfbench.profilers.memory.diff``
    or a ``memory/tracemalloc_diff_*.parquet`` file. Growth is red, shrinkage green.
    """
    cols = ["file", "line", "size_diff"] + (["count_diff"] if "count_diff" in diff.columns else [])
    df = _frame(diff, cols, "memory_diff_bars", source="the frame perfbench.profilers.memory.diff() returns")
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
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y("site:N", sort=order, title="allocation site"),
        x=alt.X("kib:Q", title="change (KiB)"),
        color=_colour("change", ["growth", "shrink"], "change"),
        tooltip=tips,
    ).properties(width=width, height=height or max(60, 18 * df.height), title=_title(title))


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
        x=alt.X(f"{x}:Q", title=xtitle), y=alt.Y("mib:Q", title=MEMORY_AXIS, scale=alt.Scale(zero=False)),
        color=_colour("series", series + (["fit"] if slope is not None else []), "series"),
        tooltip=[alt.Tooltip(f"{x}:Q", format=",.2f"), alt.Tooltip("mib:Q", title="MiB", format=".2f"),
                 alt.Tooltip("series:N")])]
    if slope is not None and intercept is not None:
        lo, hi = float(df[x].min()), float(df[x].max())
        line = pl.DataFrame({x: [lo, hi], "mib": [(intercept + slope * lo) / 2**20, (intercept + slope * hi) / 2**20],
                             "series": ["fit", "fit"]})
        layers.append(alt.Chart(line).mark_line(strokeDash=[6, 3], strokeWidth=2).encode(
            x=f"{x}:Q", y="mib:Q", color=_colour("series", series + ["fit"], "series")))
        unit = "B/request" if x == "requests" else "B/s"
        title = f"{title}: {slope:,.0f} {unit}" + (f" (95 % CI {ci[0]:,.0f} to {ci[1]:,.0f})" if ci else "")
    if warmup_x is not None:
        layers.append(alt.Chart(pl.DataFrame({x: [float(warmup_x)]})).mark_rule(color="#9d9d9d", strokeDash=[2, 2])
                      .encode(x=f"{x}:Q"))
    chart = layers[0] if len(layers) == 1 else alt.layer(*layers)
    return chart.properties(width=width, height=height, title=_title(title))


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
        y=y, x=alt.X("min:Q", title="SQL statements per request"), x2="max:Q", tooltip=tooltip)
    box = alt.Chart(df).mark_bar(size=12, color=PALETTE["p95"], opacity=0.6).encode(
        y=y, x="p50:Q", x2="p99:Q", tooltip=tooltip)
    median = alt.Chart(df).mark_tick(color=PALETTE["p50"], thickness=3, size=16).encode(
        y=y, x="p50:Q", tooltip=tooltip)
    return alt.layer(span, box, median).properties(width=width, height=height, title=_title(title))


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
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y("label:N", sort=labels, title=None, axis=alt.Axis(labelLimit=420)),
        x=alt.X("time_ms_total:Q", title="time in repeated statements (ms)"),
        color=_colour("endpoint", endpoints, "endpoint"),
        tooltip=[alt.Tooltip("endpoint:N"), alt.Tooltip("statement:N"), alt.Tooltip("requests:Q"),
                 alt.Tooltip("repetitions_median:Q", title="repetitions (median)"),
                 alt.Tooltip("time_ms_total:Q", title="total ms", format=".2f")],
    ).properties(width=width, height=height or max(60, 22 * df.height), title=_title(title))


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
    return alt.Chart(df).mark_bar(color=PALETTE["latency"]).encode(
        y=alt.Y("label:N", sort=df["label"].to_list(), title=None, axis=alt.Axis(labelLimit=420)),
        x=alt.X("total_ms:Q", title="total time (ms)"),
        tooltip=[alt.Tooltip("statement:N"), alt.Tooltip("count:Q"),
                 alt.Tooltip("total_ms:Q", format=".2f"), alt.Tooltip("mean_ms:Q", format=".3f"),
                 alt.Tooltip("p95_ms:Q", format=".3f")],
    ).properties(width=width, height=height or max(60, 22 * df.height), title=_title(title))


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
    return alt.Chart(df).mark_circle(size=28, opacity=0.6).encode(
        x=alt.X("queries:Q", title="SQL statements per request"),
        y=alt.Y("latency_ms:Q", title=LATENCY_AXIS),
        color=_colour("endpoint", endpoints, "endpoint"),
        tooltip=[alt.Tooltip("endpoint:N"), alt.Tooltip("queries:Q"),
                 alt.Tooltip("latency_ms:Q", title="latency (ms)", format=".3~f")],
    ).properties(width=width, height=height, title=_title(title))


# --- experiments: stress, spike, soak, cold versus warm -----------------------------------------------------
# Frames from perfbench.experiments.stress.steps_frame, perfbench.analysis.trends and perfbench.analysis.results.percentile_curve.


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
    return alt.layer(*layers).properties(width=width, height=height, title=_title(title))


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
    return alt.layer(*layers).properties(width=width, height=height, title=_title(title))


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
    return alt.layer(*layers).properties(width=width, height=height, title=_title(title))


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
        t0, t1 = float(df["t_s"].min()), float(df["t_s"].max())
        slope_s = fit["slope_ms_per_h"] / 3600
        line = pl.DataFrame({"t_s": [t0, t1], "fit": [fit["intercept_ms"] + slope_s * t0,
                                                      fit["intercept_ms"] + slope_s * t1]})
        layers.append(alt.Chart(line).mark_line(color=PALETTE["planned"], strokeDash=[6, 3]).encode(
            x="t_s:Q", y="fit:Q"))
    return alt.layer(*layers).properties(width=width, height=height, title=_title(title))


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


def _vrule(x: float, label: str, colour: str = PALETTE["error"]) -> alt.LayerChart:
    d = pl.DataFrame({"x": [x], "label": [label]})
    rule = alt.Chart(d).mark_rule(strokeDash=[4, 3], color=colour).encode(x="x:Q")
    text = alt.Chart(d).mark_text(align="left", dx=4, dy=-4, color=colour, baseline="top").encode(
        x="x:Q", y=alt.value(0), text="label:N")
    return rule + text


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
    return alt.layer(rules, bars, points).properties(width=width, height=height, title=_title(title))


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
