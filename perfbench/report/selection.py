"""Brush a chart in JupyterLab, get the requests back in Python: a time window and a latency band picked with
the mouse become a Polars frame of those requests, slowest first, with their SQL when the run has it.

    from perfbench import select
    pick = select(run)        # shows each request's latency over the run's time; drag a box over some of them
    pick.requests()           # those requests as a Polars frame (with their SQL statements, if any)

The chart is Altair's ``JupyterChart`` (an anywidget: ``pip install 'perfbench[lab]'``), whose JavaScript comes
from vl-convert, so it works with no network. Its output also holds the chart's Vega-Lite spec, which
JupyterLab draws when the widget is gone (a notebook reopened, or settled by ``perfbench experiment``): the
chart stays, the selection needs the cell run again. The work itself is the pure :func:`brushed` (a brush's
interval to rows), which needs no widget.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import altair as alt
import polars as pl

from ..analysis.results import Run, with_ms
from ..errors import ConfigError
from .charts.base import PALETTE, WIDTH, _colours, _title, describe, latency_axis, latency_scale, time_x

BRUSH = "pick"  # the name of the brush on select()'s chart: its value is {"t_s": [a, b], "latency_ms": [lo, hi]}
COLUMNS = ("request_id", "endpoint", "t_s", "latency_ms", "service_ms", "status", "error")


def _interval(value: Any, field: str) -> tuple[float, float] | None:
    if value is None:
        return None
    if not (isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
        raise ConfigError(f"brush: {field} must be a [from, to] pair of numbers, got {value!r}")
    lo, hi = sorted((float(value[0]), float(value[1])))
    return lo, hi


def brushed(requests: pl.LazyFrame | pl.DataFrame, interval: Mapping[str, Any] | None, *,
            queries: pl.LazyFrame | pl.DataFrame | None = None) -> pl.DataFrame:
    """The requests inside a brush: ``t_s`` (planned send time, s since the run's start) within
    ``interval["t_s"]`` and ``latency_ms`` within ``interval["latency_ms"]``, both ends included, either left
    out for no limit; an empty or None interval selects every request. Slowest first.

    Columns ``request_id, endpoint, t_s, latency_ms, service_ms, status, error``; with ``queries`` (a run's
    queries.parquet) also ``queries`` (statements run), ``db_ms`` and ``sql`` (its distinct statements, in
    the order they first ran).
    """
    interval = dict(interval or {})
    unknown = sorted(set(interval) - {"t_s", "latency_ms"})
    if unknown:
        raise ConfigError(f"brush: unknown field(s) {', '.join(unknown)}; a brush gives t_s and/or latency_ms")
    lf = with_ms(requests.lazy())
    for field in ("t_s", "latency_ms"):
        span = _interval(interval.get(field), field)
        if span is not None:
            lf = lf.filter(pl.col(field).is_between(span[0], span[1], closed="both"))
    names = lf.collect_schema().names()
    cols = [c for c in COLUMNS if c in names]
    picked = lf.select(cols).sort("latency_ms", "request_id", descending=[True, False]).collect()
    if queries is None:
        return picked
    q = (queries.lazy().filter(pl.col("request_id").is_in(picked["request_id"].implode()))
         .sort("t_ns").group_by("request_id", maintain_order=True)
         .agg(pl.len().alias("queries"), (pl.col("duration_ns").sum() / 1e6).alias("db_ms"),
              pl.col("statement").unique(maintain_order=True).alias("sql")).collect())
    return picked.join(q, on="request_id", how="left", maintain_order="left").with_columns(
        pl.col("queries").fill_null(0).cast(pl.Int64), pl.col("db_ms").fill_null(0.0),
        pl.col("sql").fill_null(pl.lit([], pl.List(pl.String))))


def points(requests: pl.LazyFrame | pl.DataFrame, *, max_points: int = 5000) -> pl.DataFrame:
    """At most ``max_points`` requests to draw, ``t_s, latency_ms, endpoint``: all of them when few, else the
    slowest fifth of the budget and every k-th of the rest (so the tail is always there to brush)."""
    df = with_ms(requests.lazy()).select("request_id", "t_s", "latency_ms",
                                         pl.col("endpoint").cast(pl.String)).collect()
    if df.height <= max_points:
        return df
    slow = df.sort("latency_ms", descending=True).head(max_points // 5)
    rest = df.join(slow.select("request_id"), on="request_id", how="anti")
    return pl.concat([rest.gather_every(math.ceil(rest.height / (max_points - slow.height))), slow]).sort("t_s")


def brush_chart(requests: pl.LazyFrame | pl.DataFrame, *, domain: tuple[float, float] | None = None,
                max_points: int = 5000, width: int = WIDTH, height: int = 300) -> alt.Chart:
    """Each request's latency (ms, log axis) at its planned send time, by endpoint, with a box brush named
    ``pick`` over time and latency."""
    df = points(requests, max_points=max_points).filter(pl.col("latency_ms") > 0)
    endpoints = sorted(df["endpoint"].unique().to_list())
    brush = alt.selection_interval(name=BRUSH, encodings=["x", "y"])
    chart = alt.Chart(df).mark_circle(size=14, opacity=0.6).encode(
        x=time_x(domain=domain), y=alt.Y("latency_ms:Q", axis=latency_axis(), scale=latency_scale()),
        color=alt.when(brush).then(alt.Color("endpoint:N", scale=alt.Scale(domain=endpoints,
                                                                          range=_colours(endpoints)),
                                             legend=alt.Legend(title="endpoint"))).otherwise(
            alt.value(PALETTE["max"])),
        tooltip=[alt.Tooltip("request_id:Q"), alt.Tooltip("endpoint:N"), alt.Tooltip("t_s:Q", title="t (s)"),
                 alt.Tooltip("latency_ms:Q", title="latency (ms)", format=".3~f")],
    ).add_params(brush).properties(width=width, height=height,
                                   title=_title("Requests: drag a box over a time window and a latency band"))
    return describe(chart, f"Latency of {df.height:,} requests over the run by endpoint ({len(endpoints)}), "
                           "to pick some with a box.")


class Selection:
    """A brushable chart of a run's requests (``widget``, shown when this is the cell's value) and the requests
    currently picked on it (:meth:`requests`)."""

    def __init__(self, run: Run, widget: Any, spec: dict[str, Any] | None = None):
        self.run, self.widget, self.spec = run, widget, spec

    @property
    def interval(self) -> dict[str, list[float]]:
        """The brush's current value: ``{"t_s": [a, b], "latency_ms": [lo, hi]}``, ``{}`` before any brush."""
        value = getattr(getattr(self.widget.selections, BRUSH, None), "value", None)
        return dict(value or {})

    def requests(self) -> pl.DataFrame:
        """The picked requests, slowest first, with their SQL when the run recorded it (every request when
        nothing is picked)."""
        has_sql = (Path(self.run.path) / "queries.parquet").exists()
        return brushed(self.run.requests, self.interval, queries=self.run.queries if has_sql else None)

    def _repr_mimebundle_(self, **kwargs):
        """The widget's view and, for when its model is gone, the chart as JupyterLab draws it alone."""
        from .charts import embed

        shown = self.widget._repr_mimebundle_(**kwargs)
        data, meta = shown if isinstance(shown, tuple) else (shown, {})
        if self.spec is None:
            return data, meta
        chart, chart_meta = embed.lab_bundle(self.spec)
        return {**data, **chart}, {**(meta or {}), **chart_meta}


def select(run: Run | str | Path, chart: alt.Chart | None = None, *, max_points: int = 5000) -> Selection:
    """Show a run's requests (or ``chart``, which must carry an interval selection named ``pick`` over t_s and
    latency_ms) as a live widget, and give back a :class:`Selection` whose ``requests()`` are the brushed ones."""
    if not isinstance(run, Run):
        run = Run.load(run)
    if importlib.util.find_spec("anywidget") is None:
        raise ConfigError("selecting requests with the mouse needs the anywidget package: "
                          "pip install 'perfbench[lab]'")
    from altair import JupyterChart

    JupyterChart.enable_offline()  # its JavaScript from vl-convert: no network
    if chart is None:
        from .charts.data import run_domain

        chart = brush_chart(run.requests, domain=run_domain(run.meta, run.duration_s), max_points=max_points)
    from .charts import embed

    options = embed.LAB_OPTIONS["embed_options"]  # SVG, and no menu entry that needs the network
    return Selection(run, JupyterChart(chart, embed_options=options), chart.to_dict())
