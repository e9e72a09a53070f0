"""nb.setup(): interactive offline charts by default (the Vega bundle displayed once, each chart a small
snippet with its description), static SVG with static=True or $PERFBENCH_STATIC."""

from __future__ import annotations

import altair as alt
import polars as pl
import pytest

from perfbench.report import charts, nb
from perfbench.report.charts import embed


@pytest.fixture
def shown(monkeypatch):
    """What setup() displays, and Altair's renderer put back afterwards."""
    import IPython.display

    out: list = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: out.extend(objs))
    before = alt.renderers.active
    yield out
    alt.renderers.enable(before)


def test_interactive_by_default_with_the_bundle_once(shown, monkeypatch):
    monkeypatch.delenv(nb.STATIC_ENV, raising=False)
    nb.setup()
    assert alt.renderers.active == nb.RENDERER
    (bundle,) = shown
    assert bundle.data.count("window.vegaEmbed=") == 1 and "http" not in bundle.data[:200]
    ts = pl.DataFrame({"t_s": [0.0, 1.0], "p50_ms": [1.0, 2.0], "p95_ms": [3.0, 4.0], "p99_ms": [5.0, 6.0],
                       "max_ms": [7.0, 8.0]})
    chart = charts.latency_over_time(ts)
    bundle_out = alt.renderers.get()(chart.to_dict())
    html = bundle_out["text/html"]
    assert "window.vegaEmbed(el," in html and "vegaEmbed=" not in html  # uses the bundle, does not repeat it
    assert f'aria-label="{chart.to_dict()["description"]}"' in html
    assert embed.specs_in(html) == [chart.to_dict()]
    assert bundle_out["text/plain"] == chart.to_dict()["description"]


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
