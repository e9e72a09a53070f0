"""Chart building blocks shared by every chart module: the look (size, palette, axis titles) and the
helpers that check a frame's columns, pick colours, title a chart or say it has nothing to show.

Kept apart so that load, server and experiment charts share one look without importing each other.
"""

from __future__ import annotations

import math
from typing import cast

import altair as alt
import polars as pl
import polars.selectors as cs

from ...errors import ConfigError, FrameError
from ...scalars import number

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
    "incomplete": "#c49c94",
    "too_large": "#dbdb8d",
    "protocol": "#393b79",
    "http_4xx": "#e377c2",
    "http_5xx": "#9467bd",
    "check": "#1f77b4",
    "redirect": "#637939",
    "aborted": "#7f7f7f",
    "client": "#843c39",
    "slow": "#ad494a",
    # resources and memory (perfbench.profilers)
    "rss": "#4c78a8",
    "uss": "#72b7b2",
    "cpu": "#f58518",
    "growth": "#e45756",
    "shrink": "#54a24b",
    "fit": "#333333",
}
# For names the palette does not know (endpoints, new error kinds), in order of appearance.
EXTRA_COLOURS = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#ff9da6", "#9d755d",
                 "#eeca3b", "#bab0ac")

LATENCY_AXIS = "latency (ms)"
TIME_AXIS = "time since start (s)"


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
    if number(df["bin_start"].min()) <= 0:
        return False
    width = df["bin_end"] - df["bin_start"]
    ratio = df["bin_end"] / df["bin_start"]
    ratio_max, ratio_min = number(ratio.max()), number(ratio.min())
    width_max, width_min = number(width.max()), number(width.min())
    equal_ratios = ratio_max - ratio_min <= 1e-6 * ratio_max
    equal_widths = width_max - width_min <= 1e-6 * width_max
    return bool(equal_ratios and not equal_widths)


def _check_every(every_s: float, func: str) -> None:
    if not every_s or every_s <= 0 or not math.isfinite(every_s):
        raise ConfigError(f"charts.{func}: every_s must be the positive bucket width (s) the frame was made "
                         f"with, got {every_s!r}")


def _spacing(t: pl.Series) -> float:
    """The bucket width of a time series: the smallest gap between its distinct times (1.0 for one bucket)."""
    gaps = t.drop_nulls().unique().sort().diff().drop_nulls()
    gaps = gaps.filter(gaps > 0)
    return float(number(gaps.min())) if gaps.len() else 1.0


def _layer(*charts: alt.Chart | alt.LayerChart) -> alt.LayerChart:
    """``alt.layer(*charts)``, typed as what it is here: alt.layer makes a FacetChart only when every layer
    shares a facet encoding (row/column/facet), which no chart in this package has."""
    return cast(alt.LayerChart, alt.layer(*charts))


def _vrule(x: float, label: str, colour: str = PALETTE["error"]) -> alt.LayerChart:
    d = pl.DataFrame({"x": [x], "label": [label]})
    rule = alt.Chart(d).mark_rule(strokeDash=[4, 3], color=colour).encode(x="x:Q")
    text = alt.Chart(d).mark_text(align="left", dx=4, dy=-4, color=colour, baseline="top").encode(
        x="x:Q", y=alt.value(0), text="label:N")
    return _layer(rule, text)
