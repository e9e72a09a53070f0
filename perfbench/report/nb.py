"""Helpers for experiment notebooks: offline charts, live progress, the headline of a run."""

from __future__ import annotations

import os
from typing import Any

STATIC_ENV = "PERFBENCH_STATIC"
RENDERER = "perfbench"


def static_requested() -> bool:
    """Whether ``$PERFBENCH_STATIC`` asks for static charts (``perfbench experiment --static`` sets it)."""
    return os.environ.get(STATIC_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def setup(static: bool | None = None) -> None:
    """Set up a notebook's charts and tables.

    Charts are interactive (tooltips, zoom, brushing) and need no network: the Vega JavaScript, from the
    vl-convert package, is put into this cell's output once (about 0.9 MB) and every chart after it uses it,
    in JupyterLab and in the exported report alike. ``static=True`` (or ``$PERFBENCH_STATIC=1``) renders
    inline SVG instead, for print and e-mail. Polars tables show enough rows with sensible float formatting.
    """
    import altair as alt
    import polars as pl

    if static is None:
        static = static_requested()
    if static:
        alt.renderers.enable("svg")
    else:
        from IPython.display import HTML, display

        from .charts import embed

        if RENDERER not in alt.renderers.names():
            alt.renderers.register(RENDERER, embed.renderer)
        display(HTML(embed.bundle_html()))
        alt.renderers.enable(RENDERER)
    pl.Config.set_tbl_rows(40)
    pl.Config.set_float_precision(2)
    pl.Config.set_tbl_hide_dataframe_shape(True)
    pl.Config.set_tbl_hide_column_data_types(True)  # a report's reader needs values, not dtypes


class LiveProgress:
    """Progress in a notebook cell: one line, updated in place, so the saved notebook (and the
    report) keeps only the final state rather than a line per second."""

    def __init__(self) -> None:
        self._handle = None

    def __call__(self, p: dict[str, Any]) -> None:
        from IPython.display import display

        text = {"text/plain": progress_bar(p)}
        if self._handle is None:
            self._handle = display(text, raw=True, display_id=True)
        else:
            self._handle.update(text, raw=True)


def progress_bar(p: dict[str, Any], width: int = 30) -> str:
    """``[#########.........]  45%  9.0/20 s  199 req/s  p95 12.3 ms  errors: none  total 1,790``."""
    total = p.get("duration_s") or 0
    share = 1.0 if p.get("final") else (min(1.0, p["elapsed_s"] / total) if total else 0.0)
    done = int(share * width)
    p95 = "-" if p.get("p95_ms") is None else f"{p['p95_ms']:.1f} ms"
    errors = ", ".join(f"{k} {v}" for k, v in sorted(p.get("errors", {}).items())) or "none"
    return (f"[{'#' * done}{'.' * (width - done)}] {share:4.0%}  {p['elapsed_s']:.1f}/{total:g} s  "
            f"{p.get('completed_rps', 0):,.0f} req/s  p95 {p95}  errors: {errors}  total {p.get('total', 0):,}")


def headline(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    """A Markdown paragraph with the numbers a reader wants first."""
    o = summary.get("overall", {})
    lat = o.get("latency_ms", {})
    gen = summary.get("generator", {})
    shape = meta.get("shape", {})

    def ms(v):
        return "-" if v is None else f"{v:,.1f} ms"

    planned = (f"planned {shape['expected_requests']:,.0f}" if shape.get("expected_requests") is not None
               else f"closed model, {shape.get('max_users', '?')} users")
    lines = [
        f"**{meta.get('run_id')}**: {shape.get('kind', '?')} load on `{meta.get('target')}`, "
        f"{o.get('count', 0):,} requests in {summary.get('duration_s', 0):.1f} s "
        f"(**{o.get('rps', 0) or 0:,.1f} req/s**, {planned}); ended: {meta.get('end_reason')}.",
        "",
        f"Latency (from the planned send time): p50 **{ms(lat.get('p50'))}**, p95 **{ms(lat.get('p95'))}**, "
        f"p99 **{ms(lat.get('p99'))}**, p99.9 {ms(lat.get('p99_9'))}, max {ms(lat.get('max'))}.",
        "",
        f"Errors: **{o.get('errors', 0):,}** ({(o.get('error_rate') or 0) * 100:.2f} %)"
        + (": " + ", ".join(f"{k} {v:,}" for k, v in o.get("errors_by_kind", {}).items())
           if o.get("errors_by_kind") else "") + ".",
    ]
    if gen.get("saturated"):
        lines += ["", "**Warning: the load generator saturated**, so part of this latency may be the "
                  "generator's, not the server's: " + "; ".join(gen.get("saturation_reasons", [])) + "."]
    else:
        lag = gen.get("lag_ms", {})
        lines += ["", f"The generator kept its schedule (send lag p99 {ms(lag.get('p99'))})."]
    for note in summary.get("notes", []):
        lines += ["", f"Note: {note}."]
    return "\n".join(lines)


VERDICT_FILE_ENV = "PERFBENCH_VERDICT_FILE"


def verdict(run_dir, ok: bool, text: str):
    """Record the experiment's verdict and return it as Markdown to display.

    It goes into the run's meta.json (when ``run_dir`` is given) and into the file
    ``perfbench experiment`` names in ``$PERFBENCH_VERDICT_FILE``; the runner then puts it first
    in the report and exits with code 10 when ``ok`` is False (a broken SLO, a regression, a leak).
    """
    import json
    import os
    from pathlib import Path

    from IPython.display import Markdown

    from ..rundir import RunDir

    record = {"ok": bool(ok), "text": text}
    if run_dir and not RunDir(Path(run_dir)).in_progress:  # a run in progress is never written into
        RunDir(Path(run_dir)).update_meta(verdict=record)
    if os.environ.get(VERDICT_FILE_ENV):
        Path(os.environ[VERDICT_FILE_ENV]).write_text(json.dumps(record))
    return Markdown(f"**{'Verdict' if ok else 'FAILED'}: {text}**")
