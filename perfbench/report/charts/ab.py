"""Charts of a paired A/B run (``perfbench ab``): the units the verdict compares over time, and both sides'
distributions overlaid.

Frames from ``perfbench.compare.paired.unit_frame`` (per endpoint and unit of pairs of blocks: each side's
percentile and their ratio) and an A/B run's requests (``side``, ``endpoint``, ``latency_ms``).
"""

from __future__ import annotations

import math

import altair as alt
import polars as pl

from ...scalars import number
from .base import (
    HEIGHT,
    PALETTE,
    WIDTH,
    _colour,
    _empty,
    _frame,
    _layer,
    _title,
    describe,
    latency_axis,
    latency_scale,
    time_x,
)
from .experiments import distributions_overlaid

SIDE_COLOURS = {"baseline": "#9d9d9d", "candidate": "#e45756"}  # as distributions_overlaid's two sides
UNITS_SOURCE = "the frame perfbench.compare.paired.unit_frame() returns"


def ab_ratio_over_time(units: pl.DataFrame, *, threshold: float = 0.05, title: str | None = None,
                       domain: tuple[float, float] | None = None, width: int = WIDTH,
                       height: int = HEIGHT) -> alt.VConcatChart | alt.Chart:
    """Per unit of pairs of blocks, over the run: above, each side's percentile per endpoint (log ms), so
    machine noise shows as both sides moving together; below, the ratio candidate / baseline per endpoint
    (log scale) with no change (1) and ``1 ± threshold`` marked. The verdict's interval is taken over the
    logs of these ratios. Expects ``endpoint, unit, t_s, pairs, baseline_ms, candidate_ms, ratio, stat``
    (``perfbench.compare.paired.unit_frame``)."""
    cols = ["endpoint", "unit", "t_s", "pairs", "baseline_ms", "candidate_ms", "ratio", "stat"]
    extra = ["segment"] if isinstance(units, pl.DataFrame) and "segment" in units.columns else []
    df = _frame(units, cols + extra, "ab_ratio_over_time", source=UNITS_SOURCE)
    title = title or "Candidate against baseline, unit by unit"
    if df is None or df.height == 0:
        return _empty("no unit had requests on both sides", title, width)
    stat = str(df["stat"][0])
    if df["t_s"].null_count():  # rows without intended times: the unit's number stands for time
        df = df.with_columns(t_s=pl.col("unit").cast(pl.Float64))
    df = df.filter((pl.col("baseline_ms") > 0) & (pl.col("candidate_ms") > 0) & (pl.col("ratio") > 0))
    if df.height == 0:
        return _empty("no unit had requests on both sides", title, width)
    endpoints = sorted(df["endpoint"].unique().to_list())
    x = time_x(domain=domain, title="unit's start, time since the run's start (s)")
    long = df.unpivot(index=["endpoint", "unit", "t_s", "pairs"], on=["baseline_ms", "candidate_ms"],
                      variable_name="side", value_name="value_ms").with_columns(
        pl.col("side").str.strip_suffix("_ms"))
    sides = ["baseline", "candidate"]
    side_colour = alt.Color("side:N", scale=alt.Scale(domain=sides, range=[SIDE_COLOURS[s] for s in sides]),
                            legend=alt.Legend(title="side"))
    tip = [alt.Tooltip("endpoint:N"), alt.Tooltip("side:N"), alt.Tooltip("t_s:Q", title="start (s)", format=".2f"),
           alt.Tooltip("pairs:Q", title="pairs of blocks"),
           alt.Tooltip("value_ms:Q", title=f"{stat} (ms)", format=".3~f")]
    both = alt.Chart(long).mark_line(point=alt.OverlayMarkDef(size=14, filled=True), strokeWidth=1.2,
                                     clip=True).encode(
        x=x, y=alt.Y("value_ms:Q", axis=latency_axis(f"{stat} per unit (ms)"), scale=latency_scale()),
        color=side_colour, detail="endpoint:N", tooltip=tip).properties(
        width=width, height=height, title=_title(f"{title}: each side's {stat} (ms, log scale)"))
    lo, hi = float(number(df["ratio"].min())), float(number(df["ratio"].max()))
    refs = pl.DataFrame({"y": [1.0, 1 + threshold, 1 / (1 + threshold)],
                         "kind": ["no change", "threshold", "threshold"]})
    y_ratio = alt.Y("ratio:Q", scale=alt.Scale(type="log", domain=[min(lo, 1 / (1 + threshold)) / 1.05,
                                                                  max(hi, 1 + threshold) * 1.05], nice=False),
                    axis=alt.Axis(title="candidate / baseline", format=".2~f", labelOverlap="greedy",
                                  labelSeparation=6, labelFlush=False, tickCount=6))
    rules = alt.Chart(refs).mark_rule(color=PALETTE["planned"]).encode(
        y=alt.Y("y:Q"), strokeDash=alt.condition(alt.datum.kind == "threshold", alt.value([4, 3]), alt.value([1, 0])))
    ratio = alt.Chart(df).mark_line(point=alt.OverlayMarkDef(size=14, filled=True), strokeWidth=1.2,
                                    clip=True).encode(
        x=x, y=y_ratio, color=_colour("endpoint", endpoints, "endpoint"),
        tooltip=[alt.Tooltip("endpoint:N"), alt.Tooltip("t_s:Q", title="start (s)", format=".2f"),
                 alt.Tooltip("pairs:Q", title="pairs of blocks"),
                 alt.Tooltip("baseline_ms:Q", title=f"baseline {stat} (ms)", format=".3~f"),
                 alt.Tooltip("candidate_ms:Q", title=f"candidate {stat} (ms)", format=".3~f"),
                 alt.Tooltip("ratio:Q", title="ratio", format=".3f")])
    restarts = restart_times(df)
    layers = [rules, ratio]
    if restarts.height:  # where both services were restarted (a new pair of processes from there on)
        layers.append(alt.Chart(restarts).mark_rule(color=PALETTE["planned"], strokeDash=[2, 2]).encode(
            x=alt.X("t_s:Q"), tooltip=[alt.Tooltip("what:N"), alt.Tooltip("t_s:Q", title="at (s)", format=".2f")]))
    below = _layer(*layers).properties(width=width, height=height * 2 // 3, title=_title(
        f"Ratio candidate / baseline of the {stat} per unit (log scale; dashed: ±{threshold:.0%})"))
    median = float(number(df["ratio"].median()))
    together = shared_movement(df)
    text = (f"{stat} of baseline and candidate in {df.height} units of pairs of blocks over "
            f"{len(endpoints)} endpoint{'s' if len(endpoints) != 1 else ''}, and their ratio: median "
            f"{median:.3f}, from {lo:.3f} to {hi:.3f}"
            + (f"; the correlation of the sides' log {stat} from unit to unit is {together:.2f} (noise both "
               "sides share brings it towards 1)" if together is not None else "")
            + (f"; both services were restarted {restarts.height} time{'s' if restarts.height > 1 else ''} (dotted "
               "lines), each side started first in turn" if restarts.height else "") + ".")
    return describe(alt.vconcat(both, below, spacing=12).resolve_scale(color="independent").resolve_legend(
        color="independent"), text)


def restart_times(units: pl.DataFrame) -> pl.DataFrame:
    """When each segment after the first began (``t_s`` of its first unit; the services restarted there):
    ``t_s, what``; empty without a ``segment`` column or with one segment."""
    empty = pl.DataFrame(schema={"t_s": pl.Float64, "what": pl.String})
    if "segment" not in units.columns or units["segment"].n_unique() < 2:
        return empty
    return (units.filter(pl.col("segment") > 0).group_by("segment").agg(pl.col("t_s").min()).sort("segment")
            .select("t_s", what=pl.lit("both services restarted")))


def shared_movement(units: pl.DataFrame) -> float | None:
    """How much of the sides' variation from unit to unit they share: the correlation of log baseline and log
    candidate percentiles after each endpoint's own mean is taken out (None with fewer than 3 units)."""
    df = units.filter((pl.col("baseline_ms") > 0) & (pl.col("candidate_ms") > 0)).with_columns(
        b=pl.col("baseline_ms").log(), c=pl.col("candidate_ms").log()).with_columns(
        b=pl.col("b") - pl.col("b").mean().over("endpoint"), c=pl.col("c") - pl.col("c").mean().over("endpoint"))
    if df.height < 3:
        return None
    r = df.select(pl.corr("b", "c")).item()
    return float(r) if r is not None and math.isfinite(r) else None


def ab_distributions(requests: pl.DataFrame, *, title: str = "Latency distributions: baseline and candidate (CDF)",
                     width: int = WIDTH // 2, height: int = 150) -> alt.FacetChart | alt.Chart:
    """Both sides of an A/B run as overlaid cumulative distributions, per endpoint and for all requests
    (``distributions_overlaid`` with the sides as its runs). Expects ``side, endpoint, latency_ms``
    (an A/B run's requests through ``results.with_ms``)."""
    df = _frame(requests, ["side", "endpoint", "latency_ms"], "ab_distributions",
                source="an A/B run's requests with latency_ms (results.with_ms)")
    if df is None or df.height == 0:
        return _empty("no requests", title, width)
    frames = {s: df.filter(pl.col("side") == s).select("endpoint", "latency_ms") for s in SIDE_COLOURS}
    return distributions_overlaid(frames, title=title, width=width, height=height, legend="side")

