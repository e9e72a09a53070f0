"""nb.setup(): interactive offline charts by default (each chart its Vega-Lite spec, which JupyterLab draws and
saves; the report's export puts the Vega bundle in once and makes each chart a small snippet with its
description), static SVG with static=True or $PERFBENCH_STATIC; what an executed notebook keeps."""

from __future__ import annotations

import json

import altair as alt
import nbformat
import polars as pl
import pytest

from perfbench.report import charts, nb
from perfbench.report.charts import embed
from perfbench.report.export import prepare, settled


@pytest.fixture
def shown(monkeypatch):
    """What setup() displays, and Altair's renderer put back afterwards."""
    import IPython.display

    out: list = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: out.extend(objs))
    before = alt.renderers.active
    yield out
    alt.renderers.enable(before)


def test_interactive_by_default_as_a_spec_jupyterlab_draws_and_saves(shown, monkeypatch):
    monkeypatch.delenv(nb.STATIC_ENV, raising=False)
    nb.setup()
    assert alt.renderers.active == nb.RENDERER
    assert shown == []  # no JavaScript in the notebook: JupyterLab has its own Vega renderer
    chart = charts.latency_over_time(TS)
    data, meta = alt.renderers.get()(chart.to_dict())
    assert set(data) == {embed.MIME, embed.VEGA_MIME, "text/plain"}
    assert data[embed.MIME] == chart.to_dict() and data["text/plain"] == chart.to_dict()["description"]
    vega = data[embed.VEGA_MIME]  # compiled here: what JupyterLab draws (its own Vega-Lite 5.6 fails on some)
    assert "/vega/" in vega["$schema"] and vega["marks"] and "Latency over time" in json.dumps(vega)
    assert meta[embed.VEGA_MIME]["embed_options"]["actions"]["editor"] is False  # no link that needs the network
    assert chart._repr_mimebundle_()[0][embed.MIME] == chart.to_dict()  # as IPython displays it
    nbformat.validate(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=[
        nbformat.v4.new_output("display_data", data=data, metadata=meta)])]))  # stored as JSON in an .ipynb


TS = pl.DataFrame({"t_s": [0.0, 1.0], "p50_ms": [1.0, 2.0], "p95_ms": [3.0, 4.0], "p99_ms": [5.0, 6.0],
                   "max_ms": [7.0, 8.0]})


def executed(*cells_outputs: list[dict]) -> nbformat.NotebookNode:
    """A notebook as papermill leaves it: one code cell per list of outputs, widgets' state in its metadata."""
    book = nbformat.v4.new_notebook()
    book.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"m1": {"_esm": "x" * 100}}}}
    for outputs in cells_outputs:
        cell = nbformat.v4.new_code_cell("...")
        cell.outputs = [nbformat.from_dict(o) for o in outputs]
        book.cells.append(cell)
    nbformat.validate(book)
    return book


def chart_output(spec: dict, widget: bool = False) -> dict:
    data, meta = embed.lab_bundle(spec)
    if widget:
        data[embed.WIDGET_MIME] = {"model_id": "m1", "version_major": 2, "version_minor": 0}
    return {"output_type": "display_data", "data": data, "metadata": meta}


def test_the_report_gets_the_javascript_once_before_its_first_chart_and_each_chart_live():
    a, b = charts.latency_over_time(TS).to_dict(), charts.throughput_over_time(
        pl.DataFrame({"t_s": [0.0, 1.0], "outcome": ["ok", "ok"], "rps": [5.0, 6.0]})).to_dict()
    book = prepare(executed([{"output_type": "stream", "name": "stdout", "text": "hi"}],
                            [chart_output(a)], [chart_output(b, widget=True)]), None)
    outputs = [o for c in book.cells if c.cell_type == "code" for o in c.outputs]
    pages = [o.data["text/html"] for o in outputs]
    assert [p.count("window.vegaEmbed=") for p in pages] == [1, 0]  # the bundle once, before the first chart
    assert embed.specs_in("".join(pages)) == [a, b]
    assert all(set(o.data) == {"text/html", "text/plain"} for o in outputs)  # no widget view, no raw spec
    assert "widgets" not in book.metadata


def test_an_executed_notebook_keeps_its_charts_and_drops_what_dies_with_the_kernel():
    a = charts.latency_over_time(TS).to_dict()
    book = settled(executed([chart_output(a)], [chart_output(a, widget=True)],
                            [{"output_type": "display_data", "metadata": {},
                              "data": {embed.WIDGET_MIME: {"model_id": "m2", "version_major": 2,
                                                           "version_minor": 0}, "text/plain": "w"}}]))
    nbformat.validate(book)
    first, second, other = (c.outputs[0] for c in book.cells)
    assert first.data[embed.MIME] == second.data[embed.MIME] == a  # what JupyterLab draws on reopening
    assert embed.WIDGET_MIME not in second.data  # a widget with a chart to show instead: the chart
    assert embed.WIDGET_MIME in other.data  # a widget with nothing else to show is left as it is
    assert "widgets" not in book.metadata and "vegaEmbed" not in nbformat.writes(book)


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_static_keeps_svg(shown, monkeypatch, how):
    if how == "argument":
        nb.setup(static=True)
    else:
        monkeypatch.setenv(nb.STATIC_ENV, "1")
        nb.setup()
    assert alt.renderers.active == "svg" and shown == []


def test_a_spec_cannot_close_its_script_element():
    spec = {"description": "x", "data": {"values": [{"sql": "SELECT '</script><script>alert(1)</script>'"}]},
            "mark": "point"}
    html = embed.chart_html(spec)
    assert "</script><script>alert" not in html and html.count("</script>") == 1
    assert embed.specs_in(html) == [spec]


def test_a_combination_without_a_description_is_described_by_its_parts():
    a = {"description": "Memory grew by 2 MiB.", "mark": "point"}
    b = {"title": {"text": "RSS growth"}, "mark": "line"}
    assert embed.description({"vconcat": [a, b]}) == "Memory grew by 2 MiB. RSS growth."
    empty = charts.errors_over_time(pl.DataFrame({"t_s": [], "error": [], "errors": []}))
    assert embed.description(empty.to_dict()) == "No request failed in this run."
    nothing = charts.latency_histogram(pl.DataFrame({"bin_start": [], "bin_end": [], "count": []}))
    assert embed.description(nothing.to_dict()) == "Latency distribution (ms): no requests, so nothing to draw."
