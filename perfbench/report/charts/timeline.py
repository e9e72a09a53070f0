"""The linked timeline of a run: latency, throughput, status codes, errors and the target's resources on one
time axis, where a window dragged on the latency chart zooms every chart below it."""

from __future__ import annotations

from typing import Any

import altair as alt
import polars as pl

from ...scalars import number
from .base import WIDTH, _spacing, describe
from .load import Domain, errors_over_time, latency_over_time, status_over_time, throughput_over_time
from .server import resources_panels

BRUSH = "time_window"  # the brush's name: its signal holds {"t_s": [from, to]} while a window is picked


def timeline(ts: pl.DataFrame, tp: pl.DataFrame, *, planned: pl.DataFrame | None = None,
             status: pl.DataFrame | None = None, err: pl.DataFrame | None = None,
             resources: pl.DataFrame | None = None, every_s: float | None = None, domain: Domain = None,
             warmup_end_s: float | None = None, width: int = WIDTH) -> alt.VConcatChart:
    """Latency, throughput (offered and achieved), status codes, errors and the target's memory/CPU stacked on
    one time axis, linked: drag across the top (latency) chart to pick a time window and every chart below
    zooms to it (a click outside it clears). Frames as for the single charts; ``resources`` from
    ``perfbench.profilers.resources.read_resources``; optional ones are left out when None or empty.
    """
    brush = alt.selection_interval(name=BRUSH, encodings=["x"])
    if every_s is None and isinstance(tp, pl.DataFrame) and "t_s" in tp.columns and tp.height:
        every_s = _spacing(tp["t_s"])
    top = latency_over_time(ts, domain=domain, warmup_end_s=warmup_end_s, zoom=False, width=width,
                            title="Latency over time (ms): drag to pick a window")
    top = _with_brush(top, brush)
    parts: list = [top]
    detail: dict[str, Any] = {"domain": None, "warmup_end_s": warmup_end_s, "zoom": False, "width": width}
    below = [throughput_over_time(tp, planned=planned, every_s=every_s, height=160, **detail)]
    if status is not None and status.height:
        below.append(status_over_time(status, every_s=every_s, **detail))
    if err is not None and err.height:
        below.append(errors_over_time(err, every_s=every_s or 1.0, height=140, **detail))
    if resources is not None and resources.height:
        below += resources_panels(resources, width=width, height=140, warmup_end_s=warmup_end_s)
    t_max = max([float(number(f["t_s"].max())) + (every_s or 1.0) for f in (ts, tp) if isinstance(f, pl.DataFrame)
                 and "t_s" in f.columns and f.height] or [1.0])
    parts += [_window_domain(c, domain, t_max) for c in below]
    text = ("Linked timeline: " + str(getattr(top, "description", "latency over time")).rstrip(".")
            + f"; below it {len(below)} chart{'s' if len(below) != 1 else ''} of throughput"
            + (", status codes" if status is not None and status.height else "")
            + (", errors" if err is not None and err.height else "")
            + (" and the target's memory and CPU" if resources is not None and resources.height else "")
            + " that follow a window dragged on it.")
    return describe(alt.vconcat(*parts, spacing=14).resolve_scale(color="independent").resolve_legend(
        color="independent"), text)


def _units(chart) -> list:
    return list(chart.layer) if isinstance(chart, alt.LayerChart) else [chart]


def _with_brush(chart, brush: alt.Parameter):
    """``chart`` with the brush on its data layer (the one after the warm-up band, if any)."""
    if isinstance(chart, alt.LayerChart):
        layers = list(chart.layer)
        layers[-1] = layers[-1].add_params(brush)
        chart.layer = layers
        return chart
    return chart.add_params(brush)


def _window_domain(chart, domain: Domain, t_max: float):
    """Every time x encoding of ``chart`` takes the brush's window as its domain, and the run's (``domain``, else
    0 to ``t_max``) while nothing is brushed."""
    lo, hi = domain if domain is not None else (0.0, t_max)
    expr = f"{BRUSH}.t_s ? {BRUSH}.t_s : [{float(lo)!r}, {float(hi)!r}]"
    for unit in _units(chart):
        x = getattr(getattr(unit, "encoding", None), "x", None)
        if isinstance(x, alt.X) and str(x.shorthand).split(":")[0] == "t_s":
            x["scale"] = alt.Scale(domain=alt.ExprRef(expr), nice=False, zero=False)
    return chart
