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
    WIDTH,
    _colour,
    _empty,
    _frame,
    _layer,
    _spacing,
    _title,
    _vrule,
    count_axis,
    describe,
    fmt_ms,
    fmt_s,
    latency_axis,
    latency_scale,
    time_x,
    warmup_band,
    zoom_x,
)


def stress_limit(verdict: dict | None = None, breaking_rps: float | None = None,
                 generator_limited: bool | None = None) -> tuple[float | None, str, str]:
    """What a stress chart marks, consistent with the verdict: ``(rate, label, sentence)``.

    A search the generator stopped (``verdict["generator_limited"]`` or ``cause == "generator"``) is the
    generator's limit, not a break of the service; ``breaking_rps`` alone is a break."""
    v = verdict or {}
    rate = v.get("breaking_rps", breaking_rps) if breaking_rps is None else breaking_rps
    if generator_limited is None:
        generator_limited = bool(v.get("generator_limited")) or v.get("cause") == "generator"
    if rate is None:
        held = v.get("highest_ok_rps")
        return None, "", (f"the service held to {held:g} req/s" if held is not None else "no breaking point found")
    if generator_limited:
        return rate, f"generator limit at {rate:g}", (f"the load generator saturated at {rate:g} req/s before "
                                                       "the service broke")
    return rate, f"breaks at {rate:g}", f"the service broke at {rate:g} req/s"


def stress_throughput(steps: pl.DataFrame, *, breaking_rps: float | None = None, verdict: dict | None = None,
                      generator_limited: bool | None = None,
                      title: str = "Offered load against achieved throughput (req/s)", width: int = WIDTH,
                      height: int = HEIGHT) -> alt.LayerChart | alt.Chart:
    """Achieved (all and successful) against offered req/s per stress step, with the ideal diagonal and the
    verdict's limit as a rule: "breaks at" for the service, "generator limit at" when the generator stopped
    the search (see ``stress_limit``). Expects ``offered_rps, achieved_rps, ok_rps`` (stress.steps_frame)."""
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
        x=alt.X("offered_rps:Q", axis=count_axis("offered (req/s)")), y=alt.Y("rps:Q", axis=count_axis("achieved (req/s)")),
        color=_colour("series", ["achieved", "ok"], "throughput"),
        tooltip=["offered_rps:Q", "series:N", alt.Tooltip("rps:Q", format=".1f")])
    layers = [diagonal, lines]
    rate, label, sentence = stress_limit(verdict, breaking_rps, generator_limited)
    if rate is not None:
        layers.append(_vrule(rate, label, colour=PALETTE["planned"] if label.startswith("generator")
                             else PALETTE["error"]))
    if label.startswith("generator"):
        title += ": the load generator's limit, not the service's"
    best = df.sort("achieved_rps", descending=True).row(0, named=True)
    n_steps = f"{df.height} step{'s' if df.height != 1 else ''}"
    text = (f"Achieved against offered throughput over {n_steps} up to {number(df['offered_rps'].max()):g} "
            f"req/s; at most {best['achieved_rps'] or 0:,.0f} req/s achieved; {sentence}.")
    return describe(_layer(*layers).properties(width=width, height=height, title=_title(title)), text)


def stress_latency(steps: pl.DataFrame, *, limit_ms: float | None = None, breaking_rps: float | None = None,
                   verdict: dict | None = None, generator_limited: bool | None = None,
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
        x=alt.X("offered_rps:Q", axis=count_axis("offered (req/s)")),
        y=alt.Y("value_ms:Q", axis=latency_axis(), scale=latency_scale()),
        color=_colour("series", ["p50", "p95", "p99"], "latency"),
        tooltip=["offered_rps:Q", "series:N", alt.Tooltip("value_ms:Q", format=".2f")])]
    if limit_ms is not None:
        layers.append(alt.Chart(pl.DataFrame({"y": [limit_ms], "label": [f"SLO {limit_ms:g} ms"]})).mark_rule(
            strokeDash=[6, 3], color=PALETTE["error"]).encode(y="y:Q"))
    rate, label, sentence = stress_limit(verdict, breaking_rps, generator_limited)
    if rate is not None:
        layers.append(_vrule(rate, label, colour=PALETTE["planned"] if label.startswith("generator")
                             else PALETTE["error"]))
    p99 = long.filter(pl.col("series") == "p99").sort("offered_rps")
    text = "p50/p95/p99 latency per stress step"
    if p99.height == 1:
        text += f"; p99 {fmt_ms(p99['value_ms'][0])} at {p99['offered_rps'][0]:g} req/s"
    elif p99.height:
        text += (f"; p99 goes from {fmt_ms(p99['value_ms'][0])} at {p99['offered_rps'][0]:g} req/s to "
                 f"{fmt_ms(p99['value_ms'][-1])} at {p99['offered_rps'][-1]:g} req/s")
    return describe(_layer(*layers).properties(width=width, height=height, title=_title(title)),
                    f"{text}; {sentence}.")


def error_rate_steps(steps: pl.DataFrame, *, title: str = "Error rate per step (%)", width: int = WIDTH,
                     height: int = 160) -> alt.Chart:
    """Error rate (%) per stress step. Expects ``offered_rps, error_rate`` (stress.steps_frame)."""
    df = _frame(steps, ["offered_rps", "error_rate"], "error_rate_steps",
                source="the frame perfbench.experiments.stress.steps_frame() returns")
    if df is None or df.height == 0:
        return _empty("no steps", title, width)
    df = df.with_columns((pl.col("error_rate").fill_null(0) * 100).alias("pct"))
    worst = df.sort("pct", descending=True).row(0, named=True)
    n_steps = f"{df.height} stress step{'s' if df.height != 1 else ''}"
    text = (f"Error rate of {n_steps}; highest {worst['pct']:.2f} % at {worst['offered_rps']:g} req/s."
            if worst["pct"] > 0 else
            f"No errors in any of {n_steps}." if df.height != 1 else "No errors in the one stress step.")
    return describe(alt.Chart(df).mark_bar(color=PALETTE["error"]).encode(
        x=alt.X("offered_rps:O", title="offered (req/s)", axis=alt.Axis(labelOverlap="greedy", labelAngle=0)),
        y=alt.Y("pct:Q", title="errors (%)"),
        tooltip=["offered_rps:Q", alt.Tooltip("pct:Q", format=".2f")],
    ).properties(width=width, height=height, title=_title(title)), text)


def spike_timeline(ts: pl.DataFrame, *, spike_start_s: float, spike_end_s: float, metric: str = "p95",
                   limit_ms: float | None = None, recovered_at_s: float | None = None,
                   domain: tuple[float, float] | None = None, warmup_end_s: float | None = None,
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
    line = alt.Chart(df.filter(pl.col(col) > 0)).mark_line(point=alt.OverlayMarkDef(size=8, filled=True),
                                                           color=PALETTE[metric], clip=True).encode(
        x=time_x(domain=domain), y=alt.Y(f"{col}:Q", axis=latency_axis(f"{metric} {LATENCY_AXIS}"),
                                         scale=latency_scale()),
        tooltip=["t_s:Q", alt.Tooltip(f"{col}:Q", format=".2f"), alt.Tooltip("rps:Q", format=".0f")]
    ).add_params(zoom_x())
    warm = warmup_band(warmup_end_s, domain)
    layers = ([warm] if warm is not None else []) + [band, line]
    if limit_ms is not None:
        layers.append(alt.Chart(pl.DataFrame({"y": [limit_ms]})).mark_rule(
            strokeDash=[6, 3], color=PALETTE["ok"]).encode(y="y:Q"))
    if recovered_at_s is not None:
        layers.append(_vrule(recovered_at_s, "recovered", colour=PALETTE["ok"]))
    inside = df.filter((pl.col("t_s") >= spike_start_s) & (pl.col("t_s") < spike_end_s)).drop_nulls(col)
    text = f"{metric} latency through a spike from {fmt_s(spike_start_s)} to {fmt_s(spike_end_s)}"
    if inside.height:
        text += f", peaking at {fmt_ms(number(inside[col].max()))}"
    text += (f"; recovered at {fmt_s(recovered_at_s)}" if recovered_at_s is not None else "; no recovery marked")
    return describe(_layer(*layers).properties(width=width, height=height, title=_title(title)), text + ".")


def drift_fit(ts: pl.DataFrame, fit: dict, *, metric: str = "p95", title: str = "Latency drift over the run (ms)",
              domain: tuple[float, float] | None = None, warmup_end_s: float | None = None,
              width: int = WIDTH, height: int = HEIGHT) -> alt.LayerChart | alt.Chart:
    """A latency percentile per time bucket with the fitted trend of ``analysis.drift``.
    Expects ``t_s, <metric>_ms`` (results.latency_timeseries)."""
    col = f"{metric}_ms"
    df = _frame(ts, ["t_s", col], "drift_fit", "latency_timeseries")
    if df is None or df.height == 0:
        return _empty("no requests", title, width)
    df = df.filter(pl.col(col) > 0)
    y_axis = latency_axis(f"{metric} {LATENCY_AXIS}")
    points = alt.Chart(df).mark_circle(size=18, color=PALETTE[metric], clip=True).encode(
        x=time_x(domain=domain), y=alt.Y(f"{col}:Q", axis=y_axis, scale=latency_scale()),
        tooltip=[alt.Tooltip("t_s:Q", title="t (s)"), alt.Tooltip(f"{col}:Q", format=".2f")]).add_params(zoom_x())
    warm = warmup_band(warmup_end_s, domain)
    layers: list = ([warm] if warm is not None else []) + [points]
    text = f"{metric} latency per time bucket over {fmt_s(number(df['t_s'].max()) + _spacing(df['t_s']))}"
    if fit.get("slope_ms_per_h") is not None and df.height:
        t0, t1 = float(number(df["t_s"].min())), float(number(df["t_s"].max()))
        slope_s = fit["slope_ms_per_h"] / 3600
        # sampled along the run: on the log axis the straight fit is a curve
        ts_fit = [t0 + (t1 - t0) * i / 24 for i in range(25)]
        line = pl.DataFrame({"t_s": ts_fit, "fit": [fit["intercept_ms"] + slope_s * t for t in ts_fit]}).filter(
            pl.col("fit") > 0)
        layers.append(alt.Chart(line).mark_line(color=PALETTE["planned"], strokeDash=[6, 3], clip=True).encode(
            x="t_s:Q", y="fit:Q"))
        text += f", with a fitted trend of {fit['slope_ms_per_h']:+,.1f} ms/h"
        if fit.get("ci_ms_per_h"):
            lo, hi = fit["ci_ms_per_h"]
            text += f" (95 % interval {lo:+,.1f} to {hi:+,.1f})"
    return describe(_layer(*layers).properties(width=width, height=height, title=_title(title)), text + ".")


def ecdf_overlay(curve: pl.DataFrame, *, by: str = "label", title: str = "Latency distributions (ECDF)",
                 width: int = WIDTH, height: int = HEIGHT) -> alt.Chart:
    """Overlaid empirical CDFs: share of requests (y) at or under a latency (x, log scale), one line
    per ``by`` group (e.g. cold and warm). Expects ``value_ms, percentile, <by>``
    (results.percentile_curve(..., by=...))."""
    df = _frame(curve, ["value_ms", "percentile", by], "ecdf_overlay", "percentile_curve")
    if df is None or df.height == 0:
        return _empty("no requests", title, width)
    groups = df[by].unique(maintain_order=True).to_list()
    df = df.filter(pl.col("value_ms") > 0)
    # every request is at or under the slowest one: each curve closes at 100 %
    tops = df.group_by(by, maintain_order=True).agg(pl.col("value_ms").max()).with_columns(
        percentile=pl.lit(100.0))
    df = pl.concat([df, tops.select(df.columns)]).unique(maintain_order=True)
    medians = df.filter(pl.col("percentile") == 50).select(by, "value_ms")
    text = (f"Cumulative latency distributions of {', '.join(map(str, groups))}"
            + ("; medians " + ", ".join(f"{g} {fmt_ms(v)}" for g, v in medians.iter_rows()) if medians.height else "")
            + ".")
    return describe(alt.Chart(df).mark_line(interpolate="step-after").encode(
        x=alt.X("value_ms:Q", axis=latency_axis(), scale=latency_scale()),
        y=alt.Y("percentile:Q", title="requests at or under (%)"),
        color=_colour(by, groups, by),
        tooltip=[f"{by}:N", alt.Tooltip("value_ms:Q", format=".2f"), alt.Tooltip("percentile:Q", format=".2f")],
    ).add_params(zoom_x()).properties(width=width, height=height, title=_title(title)), text)


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
    df = df.with_columns(pl.col("endpoint").cast(pl.String)).filter(pl.col(col) > 0)
    wide = df.group_by("endpoint").agg(lo=pl.col(col).min(), hi=pl.col(col).max()).sort("endpoint")
    gap = wide.with_columns(r=pl.col("hi") / pl.col("lo")).sort("r", descending=True)
    text = f"{metric} latency per endpoint for {', '.join(map(str, groups))}"
    if gap.height:
        text += f"; the widest gap is {gap['endpoint'][0]}: {fmt_ms(gap['lo'][0])} against {fmt_ms(gap['hi'][0])}"
    y = alt.Y("endpoint:N", title=None, axis=alt.Axis(labelLimit=260))
    x_axis = latency_axis(f"{metric} {LATENCY_AXIS}")
    rule = alt.Chart(wide).mark_rule(color="#bbbbbb").encode(y=y, x=alt.X("lo:Q", axis=x_axis, scale=latency_scale()),
                                                             x2="hi:Q")
    dots = alt.Chart(df).mark_point(filled=True, size=70).encode(
        y=y, x=alt.X(f"{col}:Q", axis=x_axis, scale=latency_scale()), color=_colour(by, groups, by),
        tooltip=["endpoint:N", f"{by}:N", alt.Tooltip(f"{col}:Q", format=".2f")])
    return describe(_layer(rule, dots).properties(width=width, height=max(60, 24 * wide.height), title=_title(title)),
                    text + ".")


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
    x = alt.X("change:Q", axis=count_axis("change against the baseline (%)", "~r"),
              scale=alt.Scale(type="symlog", constant=10))
    bars = alt.Chart(df).mark_rule(strokeWidth=2).encode(x=alt.X("lo:Q", scale=alt.Scale(type="symlog", constant=10)),
                                                         x2="hi:Q", y=y, color=colour, tooltip=tip)
    points = alt.Chart(df).mark_point(filled=True, size=50).encode(x=x, y=y, color=colour, tooltip=tip)
    refs = pl.DataFrame({"x": [0.0, threshold * 100, -threshold * 100], "kind": ["none", "threshold", "threshold"]})
    rules = alt.Chart(refs).mark_rule(color="#333333").encode(
        x="x:Q", strokeDash=alt.condition(alt.datum.kind == "threshold", alt.value([4, 3]), alt.value([1, 0])))
    counts = {v: int((df["verdict"] == v).sum()) for v in verdicts}
    worst = df.sort("change", descending=True).row(0, named=True)
    text = (f"Change against the baseline for {df.height} endpoint statistics: "
            + ", ".join(f"{n} {v}" for v, n in counts.items())
            + f"; the largest is {worst['label']} at {worst['change']:+.1f} %.")
    return describe(_layer(rules, bars, points).properties(width=width, height=height, title=_title(title)), text)


def distributions_overlaid(frames: dict[str, pl.DataFrame], *, by: str = "endpoint",
                           title: str = "Latency distributions: baseline and current (CDF)",
                           width: int = WIDTH // 2, height: int = 150, legend: str = "run",
                           ) -> alt.FacetChart | alt.Chart:
    """Per endpoint (and for all requests), the cumulative latency distributions of each side overlaid: the
    share of requests at or under a latency (log axis). A shift right is a slowdown at that share.

    ``frames`` maps a side name (``baseline``, ``current``) to a frame with ``endpoint`` and ``latency_ms``
    (e.g. a requests frame passed through ``results.with_ms``); the quantiles are taken here in Polars (every
    percent, then 99.5, 99.9, 99.99 where a side has the requests for them), so only they reach Altair.
    ``legend``: the colour legend's title (``side`` for the two sides of an A/B run).
    """
    parts = []
    for name, f in frames.items():
        df = _frame(f, [by, "latency_ms"], "distributions_overlaid",
                    source="a requests frame with latency_ms (results.with_ms)")
        if df is not None:
            parts.append(df.with_columns(side=pl.lit(name), group=pl.col(by).cast(pl.String)).drop_nulls(
                "latency_ms"))
    df = pl.concat(parts).filter(pl.col("latency_ms") > 0) if parts else None
    if df is None or df.height == 0:
        return _empty("no requests", title, width)
    df = pl.concat([df, df.with_columns(group=pl.lit("all requests"))])
    cdf = ecdf_points(df, ["group", "side"], "latency_ms")
    sides = list(frames)
    colours = ["#9d9d9d", "#e45756", *EXTRA_COLOURS][: len(sides)]
    groups = sorted(g for g in cdf["group"].unique().to_list() if g != "all requests") + ["all requests"]
    med = cdf.filter((pl.col("group") == "all requests") & (pl.col("percentile") == 50)).sort("side")
    text = (f"Cumulative latency distributions of {' and '.join(sides)} for {len(groups) - 1} endpoint"
            f"{'s' if len(groups) != 2 else ''} and all requests"
            + ("; all-request medians " + ", ".join(f"{sd} {fmt_ms(v)}" for sd, v in
                                                     med.select("side", "latency_ms").iter_rows())
               if med.height else "") + ".")
    chart = alt.Chart(cdf).mark_line(interpolate="step-after", strokeWidth=1.8).encode(
        x=alt.X("latency_ms:Q", axis=latency_axis(), scale=latency_scale()),
        y=alt.Y("percentile:Q", title="requests at or under (%)", scale=alt.Scale(domain=[0, 100])),
        color=alt.Color("side:N", scale=alt.Scale(domain=sides, range=colours), legend=alt.Legend(title=legend)),
        tooltip=[alt.Tooltip("group:N", title=by), alt.Tooltip("side:N"),
                 alt.Tooltip("percentile:Q", title="percentile", format=".4~f"),
                 alt.Tooltip("latency_ms:Q", title="latency (ms)", format=".3~f"), alt.Tooltip("n:Q", title="requests")],
    ).properties(width=width, height=height)
    return describe(chart.facet(facet=alt.Facet("group:N", title=None, sort=groups), columns=2).properties(
        title=_title(title)).resolve_scale(x="independent"), text)


def ecdf_points(df: pl.DataFrame, keys: list[str], column: str) -> pl.DataFrame:
    """Per ``keys`` group the quantiles of ``column`` at every percent and at 99.5, 99.9 and 99.99 where the
    group's count resolves them (one request in 1 / (1 - p)): ``*keys, percentile, <column>, n``."""
    ps = [float(k) for k in range(0, 101)] + [99.5, 99.9, 99.99]
    ps = sorted(set(ps))
    wide = df.group_by(keys).agg(pl.len().alias("n"), *(pl.col(column).quantile(p / 100, "higher").alias(f"q{i}")
                                                         for i, p in enumerate(ps)))
    long = wide.unpivot(index=[*keys, "n"], variable_name="q", value_name=column).with_columns(
        percentile=pl.col("q").str.strip_prefix("q").cast(pl.Int64).replace_strict(list(range(len(ps))), ps,
                                                                                     return_dtype=pl.Float64))
    keep = (pl.col("percentile") >= 100) | (pl.col("percentile") <= 100 * (1 - 1 / pl.col("n"))) | (
        pl.col("percentile") <= 99)
    return long.filter(keep).select(*keys, "percentile", column, "n").sort(*keys, "percentile")


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
    p95 = base.mark_line(point=True, color=PALETTE["p95"]).encode(
        y=alt.Y("p95_ms:Q", axis=latency_axis("p95 (ms)"), scale=latency_scale())).properties(
        width=width, height=height, title=_title(title))
    rps = base.mark_line(point=True, color=PALETTE["ok"]).encode(y=alt.Y("rps:Q", title="req/s")).properties(
        width=width, height=height)
    last = df.sort("started_at").row(-1, named=True)
    return describe(alt.vconcat(p95, rps), f"p95 latency and throughput of {df.height} runs; the newest, "
                    f"{last['run_id']}, had p95 {fmt_ms(last['p95_ms'])} at {last['rps'] or 0:,.1f} req/s.")
