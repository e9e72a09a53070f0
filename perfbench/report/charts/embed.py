"""Interactive charts that work with no network.

In a notebook a chart is its spec (:func:`lab_bundle`): the Vega-Lite spec (``application/vnd.vegalite.v5+json``)
and the same compiled to Vega by vl-convert (``application/vnd.vega.v5+json``), which JupyterLab draws with its
own Vega renderer, live (tooltips, zoom, brushing). Both are saved in the .ipynb, so a reopened notebook shows
its charts without re-running and carries no JavaScript. JupyterLab is given the compiled Vega because its own
Vega-Lite (5.6) fails on some of these specs ("Duplicate signal name" for a selection on a line with points);
compiled here, a chart in JupyterLab is the chart of the report. In an HTML report (:func:`report_outputs`, at
export), the Vega, Vega-Lite and vega-embed JavaScript comes from the vl-convert package
(``vl_convert.javascript_bundle()``), is put into the page once, and every chart after it is a ``<div>`` and a
few lines of script that call ``vegaEmbed`` on its Vega-Lite spec.

    bundle_html()          # once per report, before the first chart (about 0.9 MB)
    chart_html(spec)       # per chart: the spec inline, its description as the element's label

The bundle is wrapped in a function scope so its top-level ``const`` names cannot clash with anything else on
the page; it leaves ``window.vegaEmbed`` behind. Rendering is SVG (so a page's charts can be counted and
printed) and the action menu offers only the exports that need no network (SVG and PNG, no editor link).
"""

from __future__ import annotations

import functools
import html
import json
import re
import uuid
from typing import Any

from ...errors import ExperimentError

EMBED_OPTIONS: dict[str, Any] = {
    "mode": "vega-lite",
    "renderer": "svg",
    "actions": {"export": True, "source": False, "compiled": False, "editor": False},
}
MARK = "perfbench-chart"  # class of every chart's element: what a page's test counts


@functools.cache
def javascript_bundle() -> str:
    """vega + vega-lite + vega-embed as one script (vl-convert's copy; computed once per process, ~2 s)."""
    import vl_convert as vlc

    return vlc.javascript_bundle()  # type: ignore[call-arg]  # the stub misses the snippet's default


def _script_safe(text: str) -> str:
    """JSON text that cannot end the ``<script>`` element it sits in (``</script>`` inside a spec's data, e.g.
    SQL): ``<`` as its JSON escape, which parses back to the same string."""
    return text.replace("<", "\\u003c")


def _bundle_safe(text: str) -> str:
    """The bundle, checked to hold nothing that would end its ``<script>`` element early."""
    if re.search(r"(?i)</script|<!--", text):
        raise ExperimentError("the vl-convert JavaScript bundle holds '</script' or '<!--': it cannot be inlined")
    return text


def bundle_html() -> str:
    """The ``<script>`` element that defines ``window.vegaEmbed``; put it once in a page, before any chart."""
    return ("<script>/* vega, vega-lite and vega-embed, bundled by vl-convert: no network needed */\n"
            "(function(){\n" + _bundle_safe(javascript_bundle()) + "\n})();</script>")


def description(spec: dict[str, Any]) -> str:
    """The one-sentence description of a chart spec: its ``description``; for a concatenation or layering
    without one, those of its parts; else its title."""
    text = spec.get("description")
    if not text:
        parts = [description(p) for key in ("vconcat", "hconcat", "concat", "layer") for p in spec.get(key, [])
                 if isinstance(p, dict) and (p.get("description") or p.get("title"))]
        text = " ".join(p if p.endswith(".") else p + "." for p in parts)
    if not text:
        title = spec.get("title")
        text = title.get("text") if isinstance(title, dict) else title
    return str(text or "chart")


def chart_html(spec: dict[str, Any]) -> str:
    """A ``<figure>`` that renders ``spec`` with vega-embed once the bundle is on the page. Its label is the
    chart's description; a failure to render shows as a message in the page and on the console."""
    div = "pb-" + uuid.uuid4().hex[:12]
    label = html.escape(description(spec), quote=True)
    payload = _script_safe(json.dumps(spec, allow_nan=False))
    options = json.dumps(EMBED_OPTIONS)
    return (f'<figure class="{MARK}" role="img" aria-label="{label}" style="margin:0">'
            f'<div id="{div}"></div><figcaption style="position:absolute;left:-10000px">{label}</figcaption>'
            f"</figure><script>(function(){{var el=document.getElementById('{div}');"
            f"if(!window.vegaEmbed){{el.textContent='chart not rendered: the charting script is missing "
            f"(run perfbench.report.nb.setup() first)';console.error(el.textContent);return;}}"
            f"window.vegaEmbed(el,{payload},{options}).catch(function(e){{"
            f"el.textContent='chart not rendered: '+e;console.error(e);}});}})();</script>")


MIME = "application/vnd.vegalite.v5+json"  # the chart's Vega-Lite spec (nbformat stores a +json type as JSON)
VEGA_MIME = "application/vnd.vega.v5+json"  # the same compiled to Vega: what JupyterLab draws
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
# for JupyterLab's renderer: no editor link or source views (they need the network or add nothing offline)
LAB_OPTIONS = {"embed_options": {"renderer": "svg", "actions": EMBED_OPTIONS["actions"]}}


def vega_spec(spec: dict[str, Any]) -> dict[str, Any] | None:
    """``spec`` compiled to Vega by vl-convert's Vega-Lite (the report's), or None when it cannot be."""
    import vl_convert as vlc

    try:
        return dict(vlc.vegalite_to_vega(spec))  # type: ignore[call-arg]  # the stub misses the version's default
    except Exception:  # noqa: BLE001 - vl-convert raises ValueError or its own errors; the Vega-Lite spec remains
        return None


def lab_bundle(spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A chart's output in a notebook: its Vega-Lite spec, its Vega (what JupyterLab draws) and its description
    as plain text, with vega-embed's options as the output's metadata."""
    data: dict[str, Any] = {MIME: spec, "text/plain": description(spec)}
    meta: dict[str, Any] = {MIME: LAB_OPTIONS}
    vega = vega_spec(spec)
    if vega is not None:
        data[VEGA_MIME], meta[VEGA_MIME] = vega, LAB_OPTIONS
    return data, meta


def renderer(spec: dict[str, Any], **_: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """An Altair renderer: :func:`lab_bundle`."""
    return lab_bundle(spec)


def report_outputs(outputs: list[dict[str, Any]], *, bundled: bool) -> bool:
    """Outputs of a notebook cell as a report shows them, changed in place: each chart (an output holding a
    Vega-Lite spec, a widget's among them) becomes :func:`chart_html`, the first one after :func:`bundle_html`
    unless ``bundled`` (the page has the bundle already). Whether the page has the bundle afterwards."""
    for out in outputs:
        data = out.get("data") or {}
        spec = data.get(MIME)
        if not isinstance(spec, dict):
            continue
        page = chart_html(spec) if bundled else bundle_html() + chart_html(spec)
        bundled = True
        out["data"] = {"text/html": page, "text/plain": data.get("text/plain") or description(spec)}
        out["metadata"] = {}
    return bundled


_OPTIONS_JSON = json.dumps(EMBED_OPTIONS)


def specs_in(page: str) -> list[dict[str, Any]]:
    """The chart specs of a page made with ``chart_html``, in page order (for tests and checks of reports)."""
    out = []
    start = "window.vegaEmbed(el,"
    i = page.find(start)
    while i >= 0:
        j = page.find("," + _OPTIONS_JSON + ")", i)
        if j < 0:
            break
        out.append(json.loads(page[i + len(start):j]))
        i = page.find(start, j)
    return out
