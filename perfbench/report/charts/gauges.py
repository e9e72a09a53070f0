"""The service's pools and queues over the run: the gauges the agent sampled (gauges.parquet).

    g = pl.read_parquet(run.path / "gauges.parquet")
    gauges_over_time(g, domain=charts.run_domain(run.meta))

Stacked panels on the run's time axis, as many as the gauges allow: connections checked out of each
SQLAlchemy pool (the most at once in each sample interval) against its capacity, the longest wait for a
connection, and the asyncio loop's ready-queue depth. A pool whose line meets its capacity while waits
rise is exhausted: requests queue for a connection.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import polars as pl

from ...scalars import number
from .base import (
    WIDTH,
    _empty,
    _frame,
    _layer,
    _title,
    count_axis,
    describe,
    shared_params,
    time_x,
    warmup_band,
    zoom_x,
)

SERIES = {"pool.checked_out_max": "checked out (max)", "pool.capacity": "capacity", "pool.size": "size"}


def _panel(df: pl.DataFrame, y_title: str, colour_field: str, *, dash: bool = False,
           domain: tuple[float, float] | None, warmup_end_s: float | None, zoom: alt.Parameter, width: int,
           height: int) -> alt.Chart | alt.LayerChart:
    domain_names = sorted(set(df[colour_field].to_list()))
    enc = {"strokeDash": alt.StrokeDash("kind:N", legend=alt.Legend(title="series"))} if dash else {}
    unit = alt.Chart(df).mark_line(interpolate="step-after", clip=True).encode(
        x=time_x(domain=domain), y=alt.Y("value:Q", axis=count_axis(y_title)),
        color=alt.Color(f"{colour_field}:N", sort=domain_names, legend=alt.Legend(title=colour_field)),
        tooltip=[alt.Tooltip("t_s:Q", title="t (s)", format=".2f"), alt.Tooltip(f"{colour_field}:N"),
                 alt.Tooltip("value:Q", format=",.2f")], **enc,
    ).add_params(zoom)
    band = warmup_band(warmup_end_s, domain)
    chart = _layer(band, unit) if band is not None else unit
    return chart.properties(width=width, height=height)


def gauges_over_time(gauges: pl.DataFrame, *, domain: tuple[float, float] | None = None,
                     warmup_end_s: float | None = None, title: str = "Pools and queues in the service",
                     width: int = WIDTH, height: int = 140) -> alt.VConcatChart:
    """Connections checked out per pool against its capacity, the longest wait for a connection per sample,
    and the loop's ready queue, over the run's time axis (``domain``), zoomed together.

    ``gauges``: gauges.parquet's rows (``t_ns, name, target, value``; ``perfbench.agent.pools``)."""
    df = _frame(gauges, ["t_ns", "name", "target", "value"], "gauges_over_time",
                source="gauges.parquet (perfbench.agent.pools)")
    if df is None or df.height == 0:
        return describe(alt.vconcat(_empty("no gauges (a run without the agent, or no pool or loop seen)", title,
                                           width)), "No gauges were sampled.")
    df = df.with_columns((pl.col("t_ns") / 1e9).alias("t_s")).sort("t_s")
    zoom = zoom_x()
    kw: dict[str, Any] = {"domain": domain, "warmup_end_s": warmup_end_s, "zoom": zoom, "width": width,
                          "height": height}
    charts: list = []
    text: list[str] = []
    conns = (df.filter(pl.col("name").is_in(list(SERIES)))
             .with_columns(pl.col("name").replace_strict(SERIES).alias("kind"))
             .with_columns(pl.format("{} {}", pl.col("target"), pl.col("kind")).alias("pool")))
    if conns.height:
        charts.append(_panel(conns, "connections", "pool", dash=True, **kw))
        for (target,), g in sorted(conns.group_by("target"), key=lambda x: str(x[0][0])):
            peak = g.filter(pl.col("name") == "pool.checked_out_max")["value"].max()
            cap = g.filter(pl.col("name") == "pool.capacity")["value"].max()
            text.append(f"Pool {target}: at most {number(peak or 0):,.0f}"
                        + (f" of {number(cap):,.0f}" if cap is not None else "") + " connections checked out.")
    waits = df.filter(pl.col("name") == "pool.wait_max_ms").rename({"target": "pool"})
    if waits.height:
        charts.append(_panel(waits, "longest wait (ms)", "pool", **kw))
        text.append(f"Waits for a connection up to {number(waits['value'].max() or 0):,.1f} ms.")
    ready = df.filter(pl.col("name") == "loop.ready").rename({"target": "loop"})
    if ready.height:
        charts.append(_panel(ready, "ready callbacks", "loop", **kw))
        text.append(f"The event loop's ready queue held up to {number(ready['value'].max() or 0):,.0f} "
                    f"callbacks (mean {number(ready['value'].mean() or 0):,.1f}).")
    if not charts:
        return describe(alt.vconcat(_empty("no pool or loop gauges", title, width)), "No pool or loop gauges.")
    charts[0] = charts[0].properties(title=_title(title))
    return describe(shared_params(lambda: alt.vconcat(*charts).resolve_scale(color="independent")), " ".join(text))
