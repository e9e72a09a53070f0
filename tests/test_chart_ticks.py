"""Every chart, rendered to SVG by vl-convert, has axis tick labels that do not run into each other, and a
one-sentence description made from its data.

A label's box is estimated from its text, font size and anchor (Vega's SVG carries the position, not the
measured width), with Helvetica/Arial advance widths (digits 0.556 em, separators 0.278 em, other glyphs
0.6 em, which over-estimates most letters and so errs towards reporting an overlap).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import polars as pl
import pytest
import vl_convert as vlc
from test_charts import ENDPOINTS, make_requests

from perfbench.analysis import results
from perfbench.report import charts

SVG = "{http://www.w3.org/2000/svg}"
TRANSLATE = re.compile(r"translate\(([-\d.e]+),\s*([-\d.e]+)\)")


def text_em(text: str) -> float:
    """The width of ``text`` in em, in Helvetica/Arial advance widths (a little more for unknown glyphs)."""
    return sum(0.556 if c.isdigit() else 0.278 if c in ",. " else 0.584 if c in "−-+" else 0.6 for c in text)


def label_boxes(svg: str) -> list[list[tuple[str, float, float, float, float]]]:
    """Per axis, its visible tick labels as ``(text, x0, x1, y0, y1)`` boxes."""
    root = ET.fromstring(svg)
    axes = []
    for g in root.iter(f"{SVG}g"):
        if "role-axis-label" not in (g.get("class") or ""):
            continue
        boxes = []
        for t in g.iter(f"{SVG}text"):
            text = "".join(t.itertext())
            m = TRANSLATE.search(t.get("transform") or "")
            if not text or not m or t.get("opacity") == "0":  # opacity 0: a label Vega dropped to avoid overlap
                continue
            x, y = float(m.group(1)), float(m.group(2))
            size = float(re.sub("px", "", t.get("font-size") or "10"))
            w, h = size * text_em(text), size
            anchor = t.get("text-anchor") or "start"
            x0 = x - w / 2 if anchor == "middle" else (x - w if anchor == "end" else x)
            rot = re.search(r"rotate\(([-\d.]+)", t.get("transform") or "")
            if rot and abs(float(rot.group(1))) % 180 == 90:  # vertical label: swap the box's sides
                boxes.append((text, x - h / 2, x + h / 2, y - w, y))
            else:
                boxes.append((text, x0, x0 + w, y - h, y))
        axes.append(boxes)
    return axes


def overlaps(svg: str) -> list[str]:
    found = []
    for boxes in label_boxes(svg):
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                if a[1] < b[2] and b[1] < a[2] and a[3] < b[4] and b[3] < a[4]:
                    found.append(f"{a[0]!r} and {b[0]!r}")
    return found


@pytest.fixture(scope="module")
def lf() -> pl.LazyFrame:
    return make_requests(4000, duration_s=30.0).lazy()


def every_chart(lf: pl.LazyFrame) -> dict[str, object]:
    """One of each chart, on synthetic runs with wide-ranging values (latency 0.1 ms to 10 s, 1 to 50,000 req/s)."""
    ts, tp = results.latency_timeseries(lf, 1.0), results.throughput_timeseries(lf, 1.0)
    meta = {"shape": {"model": "open", "duration_s": 30.0,
                      "stages": [{"duration_s": 30.0, "start_rps": 133.0, "end_rps": 133.0}]},
            "warmup": {"end_s": 3.0}}
    domain, warm = charts.run_domain(meta, 30.0), charts.warmup_end_s(meta)
    wide = pl.DataFrame({"endpoint": ["a"] * 5 + ["b"] * 5,
                         "latency_ms": [0.1, 1.0, 10.0, 1500.0, 10000.0, 0.2, 3.0, 40.0, 1200.0, 9000.0]})
    steps = pl.DataFrame({"offered_rps": [100.0, 1000.0, 10000.0, 50000.0], "achieved_rps": [99.0, 990.0, 9000.0,
                                                                                             12000.0],
                          "ok_rps": [99.0, 990.0, 8000.0, 9000.0], "p50_ms": [1.0, 2.0, 30.0, 900.0],
                          "p95_ms": [2.0, 5.0, 80.0, 2000.0], "p99_ms": [3.0, 9.0, 150.0, 5000.0],
                          "error_rate": [0.0, 0.0, 0.01, 0.3]})
    stats = results.endpoint_stats(lf, 30.0)
    res = pl.DataFrame({"t_s": [float(t) for t in range(-5, 31)], "rss_mb": [100.0 + t for t in range(36)],
                        "uss_mb": [80.0 + t for t in range(36)], "cpu_percent": [float(t % 100) for t in range(36)]})
    comparison = pl.DataFrame({"endpoint": ["a", "a", "b"], "stat": ["p50", "p95", "p50"], "ratio": [1.5, 0.9, 1.01],
                               "low": [1.3, 0.8, 0.95], "high": [1.7, 1.0, 1.08],
                               "verdict": ["regression", "improvement", "no significant change"]})
    return {
        "latency_histogram": charts.latency_histogram(results.latency_histogram(lf), percentiles={"p50": 5.0}),
        "percentile_curve": charts.percentile_curve(results.percentile_curve(lf, by="endpoint"), by="endpoint",
                                                    overall=results.percentile_curve(lf)),
        "latency_over_time": charts.latency_over_time(ts, domain=domain, warmup_end_s=warm),
        "throughput_over_time": charts.throughput_over_time(tp, planned=charts.planned_rate(meta), domain=domain),
        "errors_over_time": charts.errors_over_time(results.error_timeseries(lf, 1.0), domain=domain),
        "status_over_time": charts.status_over_time(charts.status_timeseries(lf, 1.0), domain=domain),
        "endpoint_latency_over_time": charts.endpoint_latency_over_time(charts.endpoint_timeseries(lf, 1.0),
                                                                        domain=domain),
        "endpoint_latency_bars": charts.endpoint_latency_bars(stats),
        "timeline": charts.timeline(ts, tp, planned=charts.planned_rate(meta), status=charts.status_timeseries(lf),
                                    err=results.error_timeseries(lf), resources=res, domain=domain, warmup_end_s=warm),
        "overview": charts.overview(results.latency_histogram(lf), ts, tp, results.error_timeseries(lf)),
        "resources_over_time": charts.resources_over_time(res, tp, domain=domain, warmup_end_s=warm),
        "stress_throughput": charts.stress_throughput(steps, verdict={"breaking_rps": 50000.0, "cause": "generator"}),
        "stress_latency": charts.stress_latency(steps, limit_ms=1000.0, breaking_rps=10000.0),
        "error_rate_steps": charts.error_rate_steps(steps),
        "spike_timeline": charts.spike_timeline(ts, spike_start_s=10, spike_end_s=15, limit_ms=20.0,
                                                recovered_at_s=18.0, domain=domain, warmup_end_s=warm),
        "drift_fit": charts.drift_fit(ts, {"slope_ms_per_h": 120.0, "intercept_ms": 5.0}, domain=domain),
        "ecdf_overlay": charts.ecdf_overlay(results.percentile_curve(
            pl.concat([lf.with_columns(label=pl.lit("cold")), lf.with_columns(label=pl.lit("warm"))]), by="label")),
        "compare_endpoint_bars": charts.compare_endpoint_bars(pl.concat([
            stats.with_columns(label=pl.lit("cold")), stats.with_columns(label=pl.lit("warm"))]), by="label"),
        "ratio_forest": charts.ratio_forest(comparison),
        "distributions_overlaid": charts.distributions_overlaid({"baseline": wide, "current": wide.with_columns(
            pl.col("latency_ms") * 1.7)}),
        "ab_ratio_over_time": charts.ab_ratio_over_time(pl.DataFrame({
            "endpoint": ["a"] * 4 + ["b"] * 4, "unit": [0, 1, 2, 3] * 2, "t_s": [0.0, 15.0, 30.0, 45.0] * 2,
            "pairs": [1, 1, 2, 1] * 2, "baseline_ms": [0.1, 0.3, 2.0, 0.2, 900.0, 3000.0, 10000.0, 1200.0],
            "candidate_ms": [0.12, 0.33, 2.4, 0.21, 1000.0, 3300.0, 12000.0, 1500.0],
            "ratio": [1.2, 1.1, 1.2, 1.05, 1.11, 1.1, 1.2, 1.25], "stat": ["p50"] * 8})),
        "ab_distributions": charts.ab_distributions(pl.concat([
            wide.with_columns(side=pl.lit("baseline")),
            wide.with_columns(side=pl.lit("candidate"), latency_ms=pl.col("latency_ms") * 1.3)])),
        "trend": charts.trend(pl.DataFrame({"started_at": ["2026-01-01T00:00:00", "2026-01-02T00:00:00"],
                                            "run_id": ["a", "b"], "p95_ms": [1200.0, 15000.0],
                                            "rps": [1000.0, 20000.0]})),
        "leak_growth": charts.leak_growth(pl.DataFrame({"requests": [0, 10000, 20000, 30000],
                                                        "bytes": [1e8, 1.2e8, 1.4e8, 1.6e8]}),
                                          slope=2000.0, intercept=1e8),
        "memory_diff_bars": charts.memory_diff_bars(pl.DataFrame({"file": ["/app/x.py", "/app/y.py"],
                                                                  "line": [10, 20], "size_diff": [2_000_000, -5000]})),
        "queries_per_request": charts.queries_per_request(pl.DataFrame({
            "endpoint": ENDPOINTS, "min": [1, 1, 2], "p50": [1, 10, 2], "p90": [1, 100, 3], "p99": [2, 1000, 3],
            "max": [2, 1500, 4]})),
        "bench_histograms": charts.bench_histograms(pl.DataFrame({
            "benchmark": ["sort[10]"] * 3 + ["sort[1000]"] * 3, "bin_start_us": [1.0, 1.5, 2.0, 900.0, 1200.0, 1500.0],
            "bin_end_us": [1.5, 2.0, 2.5, 1200.0, 1500.0, 1800.0], "rounds": [5, 12, 3, 4, 10, 6]})),
        "bench_scaling": charts.bench_scaling(pl.DataFrame({
            "n": [10.0, 100.0, 1000.0, 10000.0], "median_us": [1.2, 15.0, 180.0, 2300.0],
            "q1_us": [1.1, 14.0, 170.0, 2200.0], "q3_us": [1.3, 16.0, 190.0, 2400.0]}), fit_text="time grows as n^1.1"),
        "latency_vs_queries": charts.latency_vs_queries(pl.DataFrame({
            "endpoint": ["a", "b", "a"], "queries": [1, 150, 1200], "latency_ms": [0.5, 40.0, 2500.0]})),
    }


def test_no_two_tick_labels_of_an_axis_overlap(lf):
    problems = {}
    for name, chart in every_chart(lf).items():
        svg = vlc.vegalite_to_svg(chart.to_dict())  # type: ignore[attr-defined]
        assert label_boxes(svg), f"{name}: no axis labels found in its SVG"
        if found := overlaps(svg):
            problems[name] = found[:4]
    assert not problems, problems


def test_the_overlap_check_sees_overlapping_labels():
    svg = ('<svg xmlns="http://www.w3.org/2000/svg"><g class="mark-text role-axis-label">'
           '<text text-anchor="middle" transform="translate(10,20)" font-size="10px">1,000</text>'
           '<text text-anchor="middle" transform="translate(30,20)" font-size="10px">1,500</text>'
           '<text text-anchor="middle" transform="translate(40,20)" font-size="10px" opacity="0">1,750</text>'
           '<text text-anchor="middle" transform="translate(80,20)" font-size="10px">2,000</text></g></svg>')
    assert overlaps(svg) == ["'1,000' and '1,500'"]  # the hidden 1,750 is not drawn, so it cannot overlap


def test_every_chart_says_in_one_sentence_what_its_data_shows(lf):
    for name, chart in every_chart(lf).items():
        text = chart.to_dict()["description"]  # type: ignore[attr-defined]
        assert 20 < len(text) < 400 and text.endswith("."), (name, text)
        assert re.search(r"\d", text), (name, text)  # a figure from the data, not a stock phrase


def test_descriptions_name_the_figures_they_come_from(lf):
    curve = results.percentile_curve(lf, by="endpoint")
    text = charts.percentile_curve(curve, by="endpoint").to_dict()["description"]
    top = curve.sort("value_ms", descending=True).row(0, named=True)
    assert top["endpoint"] in text and f"{top['value_ms']:.3g}".rstrip("0").rstrip(".") in text
    steps = pl.DataFrame({"offered_rps": [10.0, 20.0], "achieved_rps": [10.0, 19.0], "ok_rps": [10.0, 19.0]})
    generator = charts.stress_throughput(steps, verdict={"breaking_rps": 20.0, "cause": "generator"}).to_dict()
    assert "generator saturated at 20 req/s" in generator["description"]
    assert "generator limit at 20" in str(generator) and "breaks at" not in str(generator)
    assert generator["title"]["text"].endswith("the load generator's limit, not the service's")
    held = charts.stress_throughput(steps, verdict={"breaking_rps": None, "highest_ok_rps": 20.0}).to_dict()
    assert "held to 20 req/s" in held["description"] and "breaks at" not in str(held)


def test_jupyterlab_gets_every_chart_compiled_to_vega(lf):
    """JupyterLab draws a notebook's charts from their Vega, compiled by the report's Vega-Lite (its own 5.6 fails
    on a selection over a line with points); every chart, the brushable one included, has it."""
    from perfbench.report.charts import embed
    from perfbench.report.selection import brush_chart

    every = {**every_chart(lf), "brush_chart": brush_chart(lf, domain=(0.0, 30.0), max_points=500)}
    for name, chart in every.items():
        data, _ = embed.lab_bundle(chart.to_dict())  # type: ignore[attr-defined]
        assert data[embed.VEGA_MIME]["marks"], name
