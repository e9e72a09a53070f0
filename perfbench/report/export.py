"""What an executed notebook becomes before it is exported as a report (pure: a notebook in, a notebook out).

- the header: the verdict once and first (styled by its outcome), then the notebook's headline
  figures, then the run's metadata (folded under "Run details");
- the notebook's own copy of the verdict is dropped (the header has it), and so are console output
  (``print``, ``announce`` lines, warnings on stderr) and live progress lines: a report holds
  results, not the log of how they were made (the executed notebook keeps everything);
- GitHub-style callouts (``> [!WARNING]`` ...) in Markdown become callout blocks;
- charts (Vega-Lite specs, as JupyterLab shows them) become live vega-embed views, with the Vega JavaScript
  put into the page once, before the first of them (``charts.embed.report_outputs``).

``settled`` is what an executed notebook keeps once its kernel is gone: a widget's view (which needs the
kernel that held its model) is dropped from an output that has a chart to show instead, and so is the
widgets' saved state (anywidget's JavaScript), so the notebook reopens with its charts and no bundle.
"""

from __future__ import annotations

import html
import re
from typing import Any

from .charts.embed import MIME, WIDGET_MIME, report_outputs
from .nb import ROLE, callout_html, verdict_html

CALLOUT = re.compile(r"(?m)^> \[!(NOTE|TIP|IMPORTANT|WARNING|CAUTION)\][ \t]*\n((?:>.*(?:\n|$))*)")
CSS = """<style>
.jp-OutputArea-output pre, .jp-RenderedText pre { white-space: pre-wrap; overflow-wrap: anywhere; }
.jp-RenderedHTMLCommon table { max-width: 100%; }
.jp-RenderedHTMLCommon td, .jp-RenderedHTMLCommon code { overflow-wrap: break-word; }
.pb-meta summary { cursor: pointer; color: #555; }
.pb-meta table { margin-left: 0; }
</style>"""


def _inline(text: str) -> str:
    """The few inline Markdown marks callout texts use (bold, code), on escaped text."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def callouts_to_html(markdown: str) -> str:
    """Each ``> [!KIND]`` block (GitHub alert syntax) as an HTML callout; the rest unchanged."""
    def block(m: re.Match[str]) -> str:
        body = " ".join(line[1:].strip() for line in m.group(2).splitlines())
        return callout_html(m.group(1).lower(), _inline(body), markup=True) + "\n\n"
    return CALLOUT.sub(block, markdown)


def metadata_rows(meta: dict[str, Any]) -> list[tuple[str, str]]:
    """What ran where: run, date, target, load, end, versions, machine, commit, warm-up."""
    m = meta.get("machine") or {}
    shape = meta.get("shape") or {}
    params = shape.get("params") or {}
    shape_text = ", ".join(f"{k} {v}" for k, v in params.items() if v not in (None, 0, [], "")) or "-"
    exp = meta.get("experiment") or {}
    rows = [
        ("run", f"`{meta.get('run_id')}`" + (f" ({exp.get('name')})" if exp.get("name") else "")),
        ("date", str(meta.get("started_at") or "-")),
        ("target", f"`{meta.get('target', '-')}`"),
        ("load", f"{shape.get('model', meta.get('kind', '-'))} model, {shape.get('kind', '-')}: {shape_text}"
         if shape else str(meta.get("kind", "-"))),
        ("ended", str(meta.get("end_reason") or "-")),
        ("perfbench / Python", f"{m.get('perfbench', '-')} / {m.get('python', '-')}"),
        ("machine", f"{m.get('node', '-')}, {m.get('cpu_count', '-')} CPUs, {m.get('os', '-')}"),
        ("code under test", f"`{meta['code_commit']}`" if meta.get("code_commit") else "commit not recorded"),
    ]
    warm = (meta.get("verdict") or {}).get("warmup_s")
    if warm is not None:
        rows.append(("warm-up", f"the first {warm:g} s, left out of the verdict" if warm else "none left out"))
    return rows


def metadata_markdown(meta: dict[str, Any]) -> str:
    """The run's metadata as a table folded under "Run details" ("" for a report with no run of its own)."""
    if not meta.get("target"):
        return ""
    table = ["| | |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in metadata_rows(meta))]
    return '<details class="pb-meta" open><summary>Run details</summary>\n\n' + "\n".join(table) + "\n\n</details>"


def header_markdown(meta: dict[str, Any]) -> str:
    """The verdict as the report's first block ("" without one)."""
    v = meta.get("verdict")
    return verdict_html(v) if v else ""


def _role(output: dict[str, Any]) -> str | None:
    """The output's role: in its metadata, or (IPython's display objects put it there) under a MIME type."""
    meta = output.get("metadata") or {}
    role = meta.get(ROLE)
    if role is None:
        role = next((m.get(ROLE) for m in meta.values() if isinstance(m, dict) and ROLE in m), None)
    return role if isinstance(role, str) else None


def prepare(nb: Any, meta: dict[str, Any] | None) -> Any:
    """The notebook as its report shows it (see the module docstring); ``nb`` is changed and returned."""
    import nbformat

    headline_at = verdict_at = None
    bundled = False
    nb.metadata.pop("widgets", None)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            cell.source = callouts_to_html(cell.source)
            continue
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            role = _role(out)
            if out.get("output_type") == "stream" or role == "progress":
                continue  # console lines and progress: in the executed notebook, not in the report
            if role == "verdict":
                verdict_at = i if verdict_at is None else verdict_at
                continue  # the header states it, once
            if role == "headline" and headline_at is None:
                headline_at = i
            data = out.get("data") or {}
            if "text/markdown" in data:
                data["text/markdown"] = callouts_to_html(data["text/markdown"])
            kept.append(out)
        bundled = report_outputs(kept, bundled=bundled)
        cell.outputs = kept
    title = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
    meta = meta or {}
    details = metadata_markdown(meta)
    if details:
        after = headline_at if headline_at is not None else verdict_at
        at = (after + 1) if after is not None else title
        nb.cells.insert(at, nbformat.v4.new_markdown_cell(details))
    nb.cells.insert(title, nbformat.v4.new_markdown_cell(CSS + "\n\n" + header_markdown(meta)))
    return nb


def settled(nb: Any) -> Any:
    """The executed notebook as it is kept (see the module docstring); ``nb`` is changed and returned."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = out.get("data") or {}
            if WIDGET_MIME in data and MIME in data:
                del data[WIDGET_MIME]
    return nb
