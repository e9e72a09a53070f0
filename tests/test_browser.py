"""The Chromium harness of tests/browser.py sees what it must: charts drawn or not, console errors, network
requests and overflowing text; and a window dragged on the linked timeline zooms the charts below it.

Every experiment's report is opened the same way by the tests that make it (test_notebooks.py,
test_experiments.py, test_memory_soak_notebook.py)."""

from __future__ import annotations

import json

import browser
import polars as pl
import pytest
from test_charts import make_requests

from perfbench.analysis import results
from perfbench.report import charts
from perfbench.report.charts import embed

pytestmark = pytest.mark.slow


def page(tmp_path, *parts: str, name: str = "page.html"):
    path = tmp_path / name
    path.write_text("<!doctype html><html><head><meta charset='utf-8'></head><body style='margin:8px'>"
                    + "".join(parts) + "</body></html>")
    return path


@pytest.fixture(scope="module")
def lf() -> pl.LazyFrame:
    return make_requests(3000, duration_s=20.0).lazy()


def test_charts_render_offline_with_their_descriptions(tmp_path, lf):
    curve = charts.percentile_curve(results.percentile_curve(lf, by="endpoint"), by="endpoint",
                                    overall=results.percentile_curve(lf))
    hist = charts.latency_histogram(results.latency_histogram(lf))
    path = page(tmp_path, embed.bundle_html(), embed.chart_html(curve.to_dict()), embed.chart_html(hist.to_dict()))
    shot = tmp_path / "shot.png"
    found = browser.check_report(path, screenshot=shot, min_charts=2)
    assert (found.charts, found.rendered, found.failed) == (2, 2, 0)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_chart_without_the_bundle_or_with_a_bad_spec_is_caught(tmp_path, lf):
    good = charts.latency_over_time(results.latency_timeseries(lf)).to_dict()
    no_bundle = browser.open_report(page(tmp_path, embed.chart_html(good), name="a.html"))
    assert (no_bundle.charts, no_bundle.rendered, no_bundle.failed) == (1, 0, 1)
    assert any("charting script is missing" in e for e in no_bundle.errors)
    bad = {**good, "mark": "no-such-mark"}
    broken = browser.open_report(page(tmp_path, embed.bundle_html(), embed.chart_html(bad), name="b.html"))
    assert broken.rendered == 0 and broken.errors
    with pytest.raises(AssertionError, match="0 of 1 charts rendered"):
        browser.check_report(tmp_path / "b.html")


def test_network_requests_and_overflowing_text_are_caught(tmp_path):
    found = browser.open_report(page(
        tmp_path, "<img src='http://198.51.100.1/x.png'>",
        "<div style='width:200px;overflow:visible;white-space:nowrap'>" + "SELECT * FROM posts WHERE " * 20 + "</div>",
        "<div style='width:200px;overflow-x:auto;white-space:nowrap'>" + "scrolls inside its box " * 20 + "</div>"))
    assert found.external == ["http://198.51.100.1/x.png"]  # asked for, never reached: the network is off
    assert len(found.overflow) >= 1 and any("SELECT" in o for o in found.overflow)
    assert not any("scrolls inside" in o for o in found.overflow)


def test_a_window_dragged_on_the_timeline_zooms_the_charts_below(tmp_path, lf):
    chart = charts.timeline(results.latency_timeseries(lf), results.throughput_timeseries(lf),
                            status=charts.status_timeseries(lf), domain=(0.0, 20.0))
    path = page(tmp_path, embed.bundle_html(), embed.chart_html(chart.to_dict()))
    labels = """JSON.stringify([...document.querySelectorAll('svg.marks g.role-axis')].map(
        a => [...a.querySelectorAll('.role-axis-label text')].filter(t => t.getAttribute('opacity') !== '0')
              .map(t => t.textContent)))"""
    drag = browser.Drag(start=("svg.marks", 0.2, 0.15), end=("svg.marks", 0.5, 0.15))
    before, after = browser.evaluate_around(path, labels, drag)
    before, after = json.loads(before), json.loads(after)
    x_axes_before = [a for a in before if "20" in a]  # the time axes over the whole run, 0 to 20 s
    assert len(x_axes_before) >= 3
    assert after != before and sum("20" in a for a in after) < len(x_axes_before)  # the charts below zoomed in
