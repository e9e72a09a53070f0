"""Helpers for experiment notebooks: offline charts, live progress, the headline of a run, the verdict,
callouts, tables for people (``perfbench.report.tables``), embedded profiles and where the data is."""

from __future__ import annotations

import os
from typing import Any

STATIC_ENV = "PERFBENCH_STATIC"
RENDERER = "perfbench"

# output metadata key: what an output is (verdict, headline, progress), for the report's export
ROLE = "perfbench"


def static_requested() -> bool:
    """Whether ``$PERFBENCH_STATIC`` asks for static charts (``perfbench experiment --static`` sets it)."""
    return os.environ.get(STATIC_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def setup(static: bool | None = None) -> None:
    """Set up a notebook's charts and tables.

    Charts are interactive (tooltips, zoom, brushing) and need no network: each is its Vega-Lite spec, which
    JupyterLab draws with its own Vega renderer and saves in the notebook, so a reopened notebook shows its
    charts without re-running and holds no JavaScript. The exported report puts the Vega JavaScript (from the
    vl-convert package, about 0.9 MB) into the page once, before its first chart. ``static=True`` (or
    ``$PERFBENCH_STATIC=1``) renders inline SVG instead, for print and e-mail. Polars tables show enough rows
    with sensible float formatting.
    """
    import altair as alt
    import polars as pl

    if static is None:
        static = static_requested()
    if static:
        alt.renderers.enable("svg")
    else:
        from .charts import embed

        if RENDERER not in alt.renderers.names():
            alt.renderers.register(RENDERER, embed.renderer)
        alt.renderers.enable(RENDERER)
    pl.Config.set_tbl_rows(40)
    pl.Config.set_float_precision(2)
    pl.Config.set_tbl_hide_dataframe_shape(True)
    pl.Config.set_tbl_hide_column_data_types(True)  # a report's reader needs values, not dtypes


class LiveProgress:
    """Progress in a notebook cell: one line, updated in place while the run goes, and cleared when
    the run ends, so the saved notebook (and the report) keeps no progress bar at all: the run's
    figures come from its rows, not from the live estimate."""

    def __init__(self) -> None:
        self._handle = None

    def __call__(self, p: dict[str, Any]) -> None:
        from IPython.display import display

        text = {"text/plain": "" if p.get("final") else progress_bar(p)}
        meta = {ROLE: "progress"}
        if self._handle is None:
            self._handle = display(text, raw=True, display_id=True, metadata=meta)
        else:
            self._handle.update(text, raw=True, metadata=meta)


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
    """A Markdown paragraph with the numbers a reader wants first: the overall row of the run's endpoint
    table (``analysis.summary_table``, over summary.json), written as the table writes them."""
    from ..analysis.summary_table import overall
    from .tables import number_text

    o = overall(summary)
    gen = summary.get("generator", {})
    shape = meta.get("shape", {})

    def ms(v):
        return "-" if v is None else f"{number_text(v)} ms"

    planned = (f"planned {shape['expected_requests']:,.0f}" if shape.get("expected_requests") is not None
               else f"closed model, {shape.get('max_users', '?')} users")
    kinds = (summary.get("overall") or {}).get("errors_by_kind") or {}
    warm: dict[str, Any] = summary["warmup"] if isinstance(summary.get("warmup"), dict) else {}
    lines = [
        f"**{meta.get('run_id')}**: {shape.get('kind', '?')} load on `{meta.get('target')}`, "
        f"{number_text(o['count'])} requests in {summary.get('duration_s', 0):.1f} s "
        f"(**{'-' if o['rps'] is None else number_text(o['rps'])} req/s**, {planned}); "
        f"ended: {meta.get('end_reason')}."
        + (f" The first {warm['until_s']:g} s (warm-up, {number_text(warm.get('rows_excluded') or 0)} requests) "
           "are left out of every figure." if warm.get("until_s") is not None else ""),
        "",
        f"Latency (from the planned send time): p50 **{ms(o['p50_ms'])}**, p95 **{ms(o['p95_ms'])}**, "
        f"p99 **{ms(o['p99_ms'])}**, p99.9 {ms(o['p99_9_ms'])}, max {ms(o['max_ms'])}.",
        "",
        f"Errors: **{number_text(o['errors'])}** ({number_text(o['error_rate'] or 0, percent=True)})"
        + (": " + ", ".join(f"{k} {number_text(v)}" for k, v in kinds.items()) if kinds else "") + ".",
    ]
    if gen.get("saturated"):
        lines += ["", callout_html("warning", "The load generator saturated, so part of this latency may be the "
                                   "generator's, not the server's: " + "; ".join(gen.get("saturation_reasons", []))
                                   + ".")]
    else:
        lag = gen.get("lag_ms", {})
        lines += ["", f"The generator kept its schedule (send lag p99 {ms(lag.get('p99'))})."]
    for note in summary.get("notes", []):
        lines += ["", f"Note: {note}."]
    return "\n".join(lines)


VERDICT_FILE_ENV = "PERFBENCH_VERDICT_FILE"
OUTCOMES = ("ok", "failed", "inconclusive", "generator_limit")


def verdict(run_dir, ok: bool, text: str, *, outcome: str | None = None, **extra: Any) -> Verdict:
    """The experiment's verdict, to display (once, styled by its outcome) and to record.

    ``outcome``: "ok", "failed", "inconclusive" (the evidence does not decide) or "generator_limit"
    (the load generator, not the service, set the limit); default from ``ok``. ``extra`` goes into the
    record as it is (e.g. ``warmup_s``, ``limit``), for the report's header and the index. The record
    goes into the file ``perfbench experiment`` names in ``$PERFBENCH_VERDICT_FILE``: the runner puts it
    first in the report, writes it into a run it has just made, and exits with code 10 when ``ok`` is
    False. ``run_dir`` is not written into: re-reporting or exploring a run never changes its meta.json.
    """
    import json
    import os
    from pathlib import Path

    outcome = outcome or ("ok" if ok else "failed")
    if outcome not in OUTCOMES:
        from ..errors import ConfigError

        raise ConfigError(f"verdict outcome {outcome!r}: one of {', '.join(OUTCOMES)}")
    record = {"ok": bool(ok), "text": text, "outcome": outcome, **extra}
    if os.environ.get(VERDICT_FILE_ENV):
        Path(os.environ[VERDICT_FILE_ENV]).write_text(json.dumps(record, default=str))
    return Verdict(record)


LABELS = {"ok": "Verdict", "failed": "Failed", "inconclusive": "Inconclusive",
          "generator_limit": "Generator limit"}
COLOURS = {"ok": ("#e8f5e9", "#2e7d32"), "failed": ("#ffebee", "#c62828"), "inconclusive": ("#fff8e1", "#8d6e00"),
           "generator_limit": ("#e3f2fd", "#1565c0")}


def verdict_html(record: dict[str, Any]) -> str:
    """The verdict as one block styled by its outcome (a CSS class, and inline colours for JupyterLab)."""
    import html

    outcome = record.get("outcome") or ("ok" if record.get("ok") else "failed")
    bg, fg = COLOURS.get(outcome, COLOURS["inconclusive"])
    return (f'<div class="pb-verdict pb-verdict-{outcome}" style="background:{bg};border-left:6px solid {fg};'
            f'padding:0.6em 1em;margin:0.5em 0;font-size:1.15em">'
            f'<strong style="color:{fg}">{LABELS.get(outcome, "Verdict")}:</strong> '
            f"{html.escape(str(record.get('text', '')))}</div>")


class Verdict:
    """A verdict in a notebook: shown as :func:`verdict_html`; its output is tagged so the report's
    header (which states the verdict first) does not repeat it."""

    def __init__(self, record: dict[str, Any]):
        self.record = record

    @property
    def ok(self) -> bool:
        return bool(self.record["ok"])

    def _repr_mimebundle_(self, include=None, exclude=None):
        text = f"{LABELS.get(self.record['outcome'], 'Verdict')}: {self.record['text']}"
        return {"text/html": verdict_html(self.record), "text/plain": text}, {ROLE: "verdict"}


CALLOUTS = {"note": ("Note", "#e3f2fd", "#1565c0"), "tip": ("Tip", "#e8f5e9", "#2e7d32"),
            "important": ("Important", "#f3e5f5", "#6a1b9a"), "warning": ("Warning", "#fff8e1", "#8d6e00"),
            "caution": ("Caution", "#ffebee", "#c62828")}


def callout_html(kind: str, text: str, *, markup: bool = False) -> str:
    """A GitHub-style callout (note, tip, important, warning, caution) as an HTML block; ``markup``:
    ``text`` is HTML already (else it is escaped)."""
    import html

    title, bg, fg = CALLOUTS.get(kind.lower(), CALLOUTS["note"])
    body = text if markup else html.escape(text)
    return (f'<div class="pb-callout pb-callout-{kind.lower()}" style="background:{bg};border-left:4px solid {fg};'
            f'padding:0.5em 1em;margin:0.5em 0;overflow-wrap:anywhere">'
            f'<p style="color:{fg};font-weight:bold;margin:0 0 0.3em">{title}</p><div>{body}</div></div>')


def callout(kind: str, text: str):
    """A callout to display in a notebook (rendered as a callout in JupyterLab and in the report)."""
    from IPython.display import HTML

    return HTML(callout_html(kind, text))


def figures(summary: dict[str, Any], meta: dict[str, Any]):
    """:func:`headline` to display: tagged as the report's headline figures (the run's metadata follows it)."""
    from IPython.display import Markdown

    return Markdown(headline(summary, meta), metadata={ROLE: "headline"})


def figures_text(markdown: str):
    """Headline figures written by an experiment's own function (a stress search, a comparison), to display:
    tagged as the report's headline, which the run's metadata follows."""
    from IPython.display import Markdown

    return Markdown(markdown, metadata={ROLE: "headline"})


def failures_table(requests, *, top: int = 10, examples: int = 3):
    """The most frequent failures of a run (``charts.failures``: error, detail, endpoint, status, how many,
    their share, first and last time, example request ids) as a table for people; a line when none failed."""
    from IPython.display import Markdown

    from .charts.data import failures

    frame = failures(requests, top=top, examples=examples)
    if not frame.height:
        return Markdown("No request failed.")
    return table(frame.rename({"example_ids": "example_request_ids"}), "failures")


def failures(requests, over_time=None, *, top: int = 10, examples: int = 3) -> None:
    """Display a run's failures, said once: when some request failed, ``over_time`` (e.g. a
    ``charts.errors_over_time`` chart) and then their table (:func:`failures_table`); when none failed,
    one line, and no empty chart saying it again."""
    from IPython.display import display

    from .tables import Table

    shown = failures_table(requests, top=top, examples=examples)
    if over_time is not None and isinstance(shown, Table):
        display(over_time)
    display(shown)


def table(df, name: str = "table", percent: tuple[str, ...] = ()):
    """A frame as a table for people (``perfbench.report.tables``): no quotes or nulls, units and %,
    long text folded, a CSV download."""
    from .tables import Table

    return Table(df, name=name, percent=percent)


def message(text: str, kind: str = "note"):
    """A long message (a profiler's error, an explanation) wrapped to the page, never running off it."""
    return callout(kind, text)


def project_root(start=None):
    """The project directory: ``$PERFBENCH_DATA``'s parent when set, else the nearest directory at or
    above ``start`` (default: the working directory) holding ``pyproject.toml``; None outside a project."""
    import os
    from pathlib import Path

    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser().resolve().parent
    here = Path(start or os.getcwd()).resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file():
            return d
    return None


DATA_ENV = "PERFBENCH_DATA"


def data_path(relative: str, start=None) -> str:
    """A notebook's data path (``data/runs``, ``data/baselines``...) from any working directory.

    An absolute path is kept. A relative one starting with ``data/`` resolves under ``$PERFBENCH_DATA``
    when set, else under the project's ``data/`` (:func:`project_root`: JupyterLab starts kernels in
    ``notebooks/``, where ``data/runs`` would not be the project's). Anything else is kept as given."""
    import os
    from pathlib import Path

    p = Path(relative).expanduser()
    if p.is_absolute() or not p.parts or p.parts[0] != "data":
        return str(p)
    rest = Path(*p.parts[1:]) if len(p.parts) > 1 else Path()
    if os.environ.get(DATA_ENV):
        return str(Path(os.environ[DATA_ENV]).expanduser() / rest)
    root = project_root(start)
    return str(root / p) if root is not None else str(p)


def embed_html(page: str, *, title: str, height: int = 600) -> str:
    """A whole HTML page (memray's flame graph, py-spy's SVG) inside the report: an ``<iframe srcdoc>``,
    so it renders offline, keeps its own scripts and styles apart from the report's, and needs no file
    beside the report."""
    import html

    return (f'<iframe title="{html.escape(title)}" srcdoc="{html.escape(page, quote=True)}" '
            f'style="width:100%;height:{int(height)}px;border:1px solid #ddd" sandbox="allow-scripts"></iframe>')


def embed_file(path, *, title: str, height: int = 600):
    """:func:`embed_html` of a file (an ``.svg`` is wrapped in a page), to display in a notebook."""
    from pathlib import Path

    from IPython.display import HTML

    text = Path(path).read_text(encoding="utf-8", errors="replace")
    if Path(path).suffix == ".svg":
        text = f"<!DOCTYPE html><html><body style='margin:0'>{text}</body></html>"
    return HTML(embed_html(text, title=title, height=height))
