"""What a report shows a reader: the table formatter, the header and export of a notebook, the verdicts'
rules (soak drift with its tolerance, a stress search stopped by the generator), the index (newest
first, every verdict, trends only across comparable runs) and where notebooks find the data."""

from __future__ import annotations

import base64
import json
import re

import nbformat
import polars as pl

from perfbench.analysis.trends import drift, drift_verdict, warmup_for
from perfbench.experiments.coldwarm import phase_warning
from perfbench.experiments.stress import _verdict
from perfbench.report import export, nb
from perfbench.report.index import collect_reports, trend_key, write_index
from perfbench.report.tables import EM_DASH, cell_text, csv_text, header, table_html

LONG_SQL = ("SELECT posts.id, posts.title, posts.body, users.name FROM posts JOIN users ON users.id = posts.author_id "
            "WHERE posts.published = 1 AND users.active = 1 AND posts.created_at > ? ORDER BY posts.created_at DESC")


def cells(html: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", html, re.S)]


def test_a_table_has_no_quotes_nulls_or_empty_lists():
    df = pl.DataFrame({"endpoint": ["posts_naive", "health"], "errors": [["timeout", "http_5xx"], []],
                       "detail": [None, ""], "count": [1200, 3]})
    html = table_html(df)
    shown = cells(html)
    assert shown[:4] == ["posts_naive", "timeout, http_5xx", EM_DASH, "1,200"]
    assert shown[4:] == ["health", EM_DASH, EM_DASH, "3"]
    for raw in ('"posts_naive"', "null", '""', "[]", "None"):
        assert raw not in re.sub(r'href="[^"]*"', "", html), raw


def test_rates_and_shares_show_as_percent_with_units_in_headers():
    df = pl.DataFrame({"endpoint": ["a"], "p95_ms": [12.3456], "error_rate": [0.0123], "db_share": [0.5],
                       "offered_rps": [1500.0], "p99_9_ms": [20.0]})
    html = table_html(df)
    heads = re.findall(r"<th(?: [^>]*)?>(.*?)</th>", html)
    assert heads == ["endpoint", "p95 (ms)", "error rate (%)", "db share (%)", "offered (req/s)", "p99.9 (ms)"]
    assert cells(html) == ["a", "12.35", "1.23 %", "50.00 %", "1,500.0", "20.00"]
    assert header("ratio_low", percent=True) == "ratio low (%)"
    median = table_html(pl.DataFrame({"db_share_p50": [0.08]}))  # a percentile of a share is a share
    assert "db share p50 (%)" in median and cells(median) == ["8.00 %"]


def test_long_sql_is_folded_never_cut_and_every_table_downloads_as_csv():
    df = pl.DataFrame({"statement": [LONG_SQL], "count": [3], "endpoints": [["a", "b"]]})
    html = table_html(df, name="slowest statements")
    assert "<details>" in html and LONG_SQL.replace(">", "&gt;") in html  # the whole text, WHERE clause included
    link = re.search(r'<a download="slowest_statements.csv" href="data:text/csv;charset=utf-8;base64,([^"]+)"', html)
    assert link, html[-400:]
    back = pl.read_csv(base64.b64decode(link.group(1)))
    assert back["statement"].to_list() == [LONG_SQL] and back["count"].to_list() == [3]
    assert back["endpoints"].to_list() == ["a; b"]
    assert "http" not in html.replace("data:text/csv", "")  # nothing fetched from anywhere


def test_cell_text_and_csv_keep_raw_values():
    assert cell_text(None) == cell_text("") == cell_text([]) == cell_text(float("nan")) == EM_DASH
    assert cell_text(True) == "yes" and cell_text(1234567) == "1,234,567" and cell_text(0.5, percent=True) == "50.00 %"
    assert csv_text(pl.DataFrame({"x": [0.123456789]})).splitlines() == ["x", "0.123456789"]


def test_drift_says_no_drift_only_when_the_whole_interval_is_within_the_tolerance():
    flat = pl.DataFrame({"t_s": [float(t) for t in range(60)], "p95_ms": [100.0 + (t % 2) * 0.1 for t in range(60)]})
    fit = drift(flat, tolerance=0.1)
    assert fit["outcome"] == "no drift"
    lo, hi = fit["ci"]
    assert -fit["tolerance_ms_per_h"] <= lo and hi <= fit["tolerance_ms_per_h"]
    rising = pl.DataFrame({"t_s": [float(t) for t in range(60)], "p95_ms": [100.0 + 2 * t for t in range(60)]})
    assert drift(rising)["outcome"] == "drift" and not drift_verdict(drift(rising))[0]
    # a noisy short run: the interval is far wider than the tolerance -> inconclusive, not "no drift"
    noisy = pl.DataFrame({"t_s": [0.0, 1.0, 2.0, 3.0, 4.0], "p95_ms": [10.0, 900.0, 5.0, 1200.0, 8.0]})
    fit = drift(noisy)
    assert fit["outcome"] == "inconclusive"
    ok, outcome, text = drift_verdict(fit)
    assert ok and outcome == "inconclusive" and text.startswith("no verdict on drift") and "tolerance" in text
    assert drift(noisy.head(2))["outcome"] == "inconclusive"


def test_drift_leaves_out_the_warm_up():
    # a slow first 10 s (warm-up), then flat: with the warm-up left out there is no drift
    ts = pl.DataFrame({"t_s": [float(t) for t in range(60)],
                       "p95_ms": [500.0 - 40 * t if t < 10 else 100.0 + (t % 2) * 0.1 for t in range(60)]})
    assert drift(ts, warmup_s=0)["outcome"] != "no drift"
    assert drift(ts, warmup_s=10)["outcome"] == "no drift"
    assert warmup_for(30, 20) == 5 and warmup_for(2, 60) == 2


def test_a_stress_search_stopped_by_the_generator_says_so_in_its_verdict():
    step = {"offered_rps": 100.0, "broken": [], "saturated": False, "saturation_reasons": []}
    sat = {"offered_rps": 200.0, "broken": [], "saturated": True, "saturation_reasons": ["send lag p99 40 ms"]}
    v = _verdict([step, sat], "saturated")
    assert v["limit"] == "generator" and v["generator_limit_rps"] == 200 and v["breaking_rps"] is None
    assert v["text"].startswith("the load generator saturated at 200 req/s") and v["highest_ok_rps"] == 100
    assert "generator limit" not in v["text"]  # the verdict's label says it (nb.verdict_html), not twice
    assert "at least 0" not in _verdict([sat], "saturated")["text"]  # no step held: said so, not "0 req/s"
    broke = {"offered_rps": 200.0, "broken": ["p99<1s"], "saturated": False, "saturation_reasons": []}
    assert _verdict([step, broke], "broken")["limit"] == "service"


def test_cold_warm_warnings_speak_of_the_cold_and_the_warm_run():
    w = phase_warning("the load generator saturated in the baseline run: part of its latency is the generator's")
    assert w == "the load generator saturated in the cold run: part of its latency is the generator's"
    assert "baseline" not in phase_warning("machine unknown for the current (perfbench output does not record it)")


def _notebook():
    nbk = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("x")
    code.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="perfbench: constant load ... p95 29.2 ms\n"),
        nbformat.v4.new_output("display_data", data={"text/plain": "[####] p95 29.2 ms"},
                               metadata={nb.ROLE: "progress"}),
        nbformat.v4.new_output("display_data", data={"text/html": "<div>Verdict</div>", "text/plain": "Verdict: x"},
                               metadata={nb.ROLE: "verdict"}),
        nbformat.v4.new_output("display_data", data={"text/markdown": "**run**: 1,000 requests"},
                               metadata={"text/markdown": {nb.ROLE: "headline"}}),  # as IPython's Markdown puts it
    ]
    warn = nbformat.v4.new_code_cell("y")
    warn.outputs = [nbformat.v4.new_output("display_data", data={
        "text/markdown": "> [!WARNING]\n> **different machines**: `a` vs `b`\n"})]
    nbk.cells = [nbformat.v4.new_markdown_cell("# Load test"), code, nbformat.v4.new_markdown_cell("## Per endpoint"),
                 warn]
    return nbk


def test_the_report_header_is_the_verdict_once_then_the_headline_then_the_metadata():
    meta = {"run_id": "r1", "target": "http://127.0.0.1:1", "verdict": {"ok": False, "text": "SLO broken: p99<1ms",
                                                                          "outcome": "failed", "warmup_s": 2.0}}
    out = export.prepare(_notebook(), meta)
    kinds = [c.cell_type for c in out.cells]
    assert kinds == ["markdown", "markdown", "code", "markdown", "markdown", "code"]
    assert 'class="pb-verdict pb-verdict-failed"' in out.cells[1].source and "SLO broken" in out.cells[1].source
    outputs = out.cells[2].outputs
    assert [o["data"] for o in outputs] == [{"text/markdown": "**run**: 1,000 requests"}]  # no console, progress,
    # or second verdict
    assert "Run details" in out.cells[3].source and "the first 2 s" in out.cells[3].source  # after the headline
    md = out.cells[5].outputs[0]["data"]["text/markdown"]
    assert "[!WARNING]" not in md and 'class="pb-callout pb-callout-warning"' in md
    assert "<strong>different machines</strong>" in md and "<code>a</code>" in md


def test_verdict_html_is_styled_by_outcome_without_glyphs():
    for outcome in nb.OUTCOMES:
        html = nb.verdict_html({"ok": outcome != "failed", "text": "t", "outcome": outcome})
        assert f"pb-verdict-{outcome}" in html
        assert all(ord(ch) < 0x2000 for ch in html)  # no emoji or symbol a font may lack


def _run(root, run_id, started, experiment, params, p95, verdict=None):
    d = root / run_id
    d.mkdir(parents=True)
    meta = {"run_id": run_id, "started_at": started, "target": "http://127.0.0.1:8080",
            "experiment": {"name": experiment, "parameters": params, "report": f"{run_id}-{experiment}.html"}}
    if verdict:
        meta["verdict"] = verdict
    (d / "meta.json").write_text(json.dumps(meta))
    (d / "summary.json").write_text(json.dumps({"overall": {"count": 10, "rps": 5.0, "error_rate": 0.0,
                                                            "latency_ms": {"p50": 1.0, "p95": p95, "p99": 3.0}}}))
    return d


def test_the_index_is_newest_first_with_every_verdict_and_trends_of_comparable_runs(tmp_path):
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    _run(runs, "a-old", "2026-01-01T00:00:00", "load_test", {"rate": 10}, 5.0, {"ok": True, "text": "held"})
    _run(runs, "b-mid", "2026-01-02T00:00:00", "load_test", {"rate": 10}, 6.0)
    _run(runs, "c-new", "2026-01-03T00:00:00", "load_test", {"rate": 99}, 7.0)
    _run(runs, "z-stress", "2026-01-04T00:00:00", "stress", {}, 1.0,
         {"ok": True, "text": "generator limit: the load generator saturated at 200 req/s", "outcome": "generator_limit"})
    reports.mkdir()
    long_text = "REGRESSION: " + ", ".join(f"endpoint_{i} p95 +{i}%" for i in range(30))
    (reports / "x-regression.html").write_text("<html></html>")
    (reports / "x-regression.json").write_text(json.dumps({
        "experiment": "regression", "run_id": "x", "run_dir": None, "report": "x-regression.html",
        "verdict": {"ok": False, "text": long_text, "outcome": "failed"}, "created_at": "2026-01-05T00:00:00"}))
    before = {p: p.read_bytes() for p in runs.rglob("meta.json")}
    table = collect_reports(reports, runs)
    assert table["run_id"].to_list() == ["x", "z-stress", "c-new", "b-mid", "a-old"]
    index = write_index(runs, reports).read_text()
    assert long_text in index  # the whole verdict, not cut mid-word
    assert '<span class="generator_limit">generator limit</span>' in index
    assert '<span class="failed">failed</span>' in index
    assert index.count("<svg") == 1  # a-old and b-mid share a trend; c-new's rate differs
    assert index.index("x-regression.html") < index.index("z-stress") < index.index("a-old")
    assert {p: p.read_bytes() for p in runs.rglob("meta.json")} == before  # the index only reads
    assert trend_key("load_test", "http://127.0.0.1:1/", {"rate": 1, "run_id": "q"}) == trend_key(
        "load_test", "http://127.0.0.1:2/", {"rate": 1, "run_id": "r"})


def test_notebooks_find_the_projects_data_from_any_directory(tmp_path, monkeypatch):
    project = tmp_path / "proj"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname='x'\n")
    monkeypatch.delenv(nb.DATA_ENV, raising=False)
    monkeypatch.chdir(project / "notebooks")
    assert nb.data_path("data/runs") == str(project / "data" / "runs")
    assert nb.data_path("/abs/runs") == "/abs/runs" and nb.data_path("elsewhere/runs") == "elsewhere/runs"
    monkeypatch.setenv(nb.DATA_ENV, str(tmp_path / "shared"))
    assert nb.data_path("data/runs") == str(tmp_path / "shared" / "runs")


def test_the_spike_baseline_leaves_out_the_warm_up():
    from perfbench.analysis.trends import spike_recovery

    # 0-12 s slow warm-up (500 ms), a 10 ms baseline until the spike at 20 s, 300 ms during it, 10 ms after
    p95 = [500.0 if t < 12 else 10.0 if t < 20 else 300.0 if t < 25 else 10.0 for t in range(40)]
    ts = pl.DataFrame({"t_s": [float(t) for t in range(40)], "p95_ms": p95, "errors": [0] * 40, "requests": [5] * 40})
    assert spike_recovery(ts, spike_start_s=20, spike_end_s=25, warmup_s=0)["baseline_ms"] == 500.0
    warm = spike_recovery(ts, spike_start_s=20, spike_end_s=25, warmup_s=12)
    assert warm["warmup_s"] == 10 and warm["baseline_ms"] == 10.0  # at most half the time before the spike
    assert warm["recovered"] and warm["recovery_s"] == 0


def test_a_comparison_side_leaves_out_its_warm_up():
    from perfbench.analysis.trends import side_without_warmup
    from perfbench.importers.base import Measurements, samples_frame

    reqs = samples_frame(["a"] * 8, [int(t * 1e9) for t in range(8)], [int(5e6)] * 8)
    side = Measurements("x", "k6", requests=reqs, duration_s=8.0)
    warm = side_without_warmup(side, 5.0)  # at most a quarter of 8 s
    assert warm.requests["intended_ns"].min() == int(2e9) and warm.duration_s == 6.0
    assert warm.notes[-1] == "the first 2 s (warm-up) left out" and side.requests.height == 8
    assert side_without_warmup(Measurements("y", "locust"), 5.0).notes[-1].startswith("no raw samples")
    short = side_without_warmup(Measurements("s", "k6", requests=reqs, duration_s=1.985), 5.0)
    assert short.notes[-1] == "the first 0.5 s (warm-up) left out"  # 0.49625 s, written as a reader reads it
    own = Measurements("z", "perfbench", requests=reqs, duration_s=8.0, notes=["the warm-up (the first 1 s, 1 "
                                                                                  "requests) is left out"])
    assert side_without_warmup(own, 5.0) is own  # its own warm-up is out already: nothing more


def test_a_runs_own_warm_up_is_the_one_its_verdict_leaves_out():
    from types import SimpleNamespace

    from perfbench.analysis.trends import effective_warmup, summary_after_warmup

    own = SimpleNamespace(meta={"warmup": {"until_ns": 3_000_000_000}}, duration_s=100.0, summary=lambda: {"own": 1})
    assert effective_warmup(own, 5.0) == 3.0
    assert summary_after_warmup(own, 3.0) == {"own": 1}  # summary.json already leaves it out: not twice
    assert effective_warmup(SimpleNamespace(meta={}, duration_s=8.0), 5.0) == 2.0


# --- headline figures: computed by the function the tables use, written as the tables write them ----------------

def _requests(n: int = 400) -> pl.DataFrame:
    """Rows of requests.parquet's columns: two endpoints, a few failures, latencies spread over a range."""
    ns = [int(1e6 * (1 + (i * 37) % 97)) for i in range(n)]
    return pl.DataFrame({
        "request_id": list(range(n)), "endpoint": ["a" if i % 3 else "b" for i in range(n)],
        "intended_ns": [i * 25_000_000 for i in range(n)], "start_ns": [i * 25_000_000 + 1000 for i in range(n)],
        "end_ns": [i * 25_000_000 + ns[i] for i in range(n)], "latency_ns": ns, "service_ns": ns,
        "status": [500 if i % 40 == 0 else 200 for i in range(n)], "bytes": [100] * n,
        "error": ["http_5xx" if i % 40 == 0 else None for i in range(n)],
        "error_detail": ["boom" if i % 40 == 0 else None for i in range(n)], "stage": [0] * n})


def test_the_headline_is_the_overall_row_of_the_endpoint_table_cell_for_cell():
    from perfbench.analysis.results import pct, summarize
    from perfbench.analysis.summary_table import summary_table
    from perfbench.report.tables import number_text

    df = _requests()
    summary = summarize(df.lazy(), duration_s=10.0)
    table = summary_table(summary)
    assert table["endpoint"].to_list() == ["a", "b", "ALL"]
    overall = table.row(-1, named=True)
    lat = df["latency_ns"] / 1e6  # recomputed from the raw rows: the exact inverted-CDF percentile
    for col, q in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
        assert overall[col] == pl.DataFrame({"x": lat}).select(pct("x", q)).item()
    assert overall["count"] == 400 and overall["errors"] == 10 and overall["rps"] == 40.0
    text = nb.headline(summary, {"run_id": "r", "target": "http://127.0.0.1:1", "shape": {"kind": "constant"}})
    shown = cells(table_html(table))[-table.width:]  # the ALL row as the report's table writes it
    for col, cell in zip(table.columns, shown, strict=True):
        if col in ("p50_ms", "p95_ms", "p99_ms", "p99_9_ms", "max_ms"):
            assert f"{cell} ms" in text, (col, cell)
        elif col in ("count", "rps", "errors", "error_rate"):
            assert cell in text, (col, cell)
    assert f"**{number_text(overall['rps'])} req/s**" in text and "(2.50 %)" in text


def test_stress_and_regression_headlines_are_cells_of_their_tables():
    from perfbench.report import headlines

    steps = pl.DataFrame({"step": [0, 1, 2], "offered_rps": [50.0, 100.0, 200.0], "duration_s": [7.5] * 3,
                          "achieved_rps": [49.87, 99.2, 151.333], "p99_ms": [12.345, 40.0, 1234.5],
                          "error_rate": [0.0, 0.001, 0.2], "saturated": [False, False, False],
                          "broken": ["", "", "p99<1s"]})
    text = headlines.stress(steps, {"warmup_s": 2.5})
    row = dict(zip(steps.columns, cells(table_html(steps))[steps.width:2 * steps.width], strict=True))
    assert f"**{row['offered_rps']} req/s** offered, {row['achieved_rps']} req/s achieved" in text
    assert f"p99 **{row['p99_ms']} ms**" in text and "Highest rate that held: step 1" in text
    broke = dict(zip(steps.columns, cells(table_html(steps))[2 * steps.width:], strict=True))
    assert f"Ended the search (broke p99<1s): step 2: **{broke['offered_rps']} req/s**" in text
    assert f"errors {broke['error_rate']}" in text and broke["error_rate"] == "20.00 %"

    shown = pl.DataFrame({"endpoint": ["a", "a"], "stat": ["p95", "rps"], "baseline": [10.0, 100.0],
                          "current": [13.456, 99.0], "change": [0.3456, -0.01], "change_low": [0.2, -0.05],
                          "change_high": [0.5, 0.03], "verdict": ["regression", "no significant change"],
                          "interval": ["bootstrap CI", "Poisson CI"], "note": ["", ""]})
    text = headlines.comparison(shown)
    first = cells(table_html(shown, percent=("change", "change_low", "change_high")))[:shown.width]
    assert (f"`a` p95: {first[2]} ms → {first[3]} ms, change **{first[4]}** (interval {first[5]} to {first[6]}): "
            "regression") in text
    assert "rps" not in text  # only what changed beyond the threshold
    calm = headlines.comparison(shown.with_columns(pl.lit("no significant change").alias("verdict")))
    assert calm.startswith("No statistic changed beyond the threshold") and "req/s" in calm


def test_the_spike_stage_table_puts_the_warm_up_in_a_row_of_its_own():
    from perfbench.analysis.trends import stage_table
    from perfbench.report import headlines

    df = _requests(400).with_columns(stage=pl.when(pl.col("intended_ns") < int(4e9)).then(0)
                                     .when(pl.col("intended_ns") < int(6e9)).then(1).otherwise(2))
    meta = {"shape": {"stages": [{"name": "baseline", "duration_s": 4, "start_rps": 40, "end_rps": 40},
                                 {"name": "spike", "duration_s": 2, "start_rps": 40, "end_rps": 40},
                                 {"name": "recovery", "duration_s": 4, "start_rps": 40, "end_rps": 40}]}}
    table = stage_table(df.lazy(), meta, warmup_s=1.0)
    assert table["name"].to_list() == ["baseline (warm-up)", "baseline", "spike", "recovery"]
    assert table["requests"].sum() == 400 and table["errors"].sum() == 10  # every request in one row
    assert table["requests"].to_list()[:2] == [40, 120] and table["start_s"].to_list()[:2] == [0.0, 1.0]
    assert table["achieved_rps"].to_list()[:2] == [40.0, 40.0]
    rec = {"baseline_ms": 10.0, "recovered": True, "recovery_s": 2.0, "limit_ms": 12.0, "tolerance": 0.2, "hold": 3}
    text = headlines.spike(table, rec, 1.0)
    p95 = cells(table_html(table))[table.columns.index("p95_ms")::table.width]
    assert f"baseline {p95[1]} ms, spike {p95[2]} ms, recovery {p95[3]} ms" in text
    errors = table["errors"].to_list()
    assert f"errors baseline / spike / recovery: {errors[1]} / {errors[2]} / {errors[3]}" in text


def test_the_failures_table_names_the_top_errors_with_example_request_ids():
    table = nb.failures_table(_requests().lazy(), examples=2)
    html = table.html()
    assert "example request ids" in html and "40, 80" in html and "0, 120" in html and "boom" in html
    assert "1.50 %" in html and "1.00 %" in html  # 6 and 4 of 400 requests
    none = nb.failures_table(_requests().with_columns(pl.lit(None, pl.String).alias("error")).lazy())
    assert none.data == "No request failed."


def test_failures_are_said_once_a_chart_and_a_table_or_one_line(monkeypatch):
    import IPython.display

    shown: list = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
    chart = object()  # the errors-over-time chart, shown only above failures
    nb.failures(_requests().lazy(), chart)
    assert shown[0] is chart and "boom" in shown[1].html() and len(shown) == 2
    shown.clear()
    nb.failures(_requests().with_columns(pl.lit(None, pl.String).alias("error")).lazy(), chart)
    assert [getattr(o, "data", o) for o in shown] == ["No request failed."]  # no empty chart saying it again


def test_identifiers_show_as_written_without_thousands_separators():
    html = table_html(pl.DataFrame({"request_id": [12345], "example_ids": [[1000, 20001]], "count": [12345]}))
    assert cells(html) == ["12345", "1000, 20001", "12,345"]


def test_the_micro_benchmark_table_names_its_unit_and_leaves_out_what_was_not_measured():
    from perfbench.bench.render import table_frame
    from perfbench.bench.store import TABLE_SCHEMA

    row = {c: None for c in TABLE_SCHEMA} | {"benchmark": "sha", "min_us": 0.6275, "max_us": 0.645, "mean_us": 0.6315,
                                             "stddev_us": 0.004, "median_us": 0.63, "q1_us": 0.629, "q3_us": 0.632,
                                             "iqr_us": 0.003, "outliers": 2, "ops": 1583447.7, "rounds": 20, "loops": 33}
    frame = table_frame(pl.DataFrame([row], schema=TABLE_SCHEMA))
    assert frame.columns == ["benchmark", "min_ns", "max_ns", "mean_ns", "stddev_ns", "median_ns", "IQR_ns",
                             "outliers", "ops_per_s", "rounds", "loops"]  # no SQL or memory columns: not measured
    html = table_html(frame)
    assert "min (ns)" in html and "IQR (ns)" in html and "ops/s" in html
    assert cells(html)[1] == "627.5" and cells(html)[8] == "1,583,448"  # 0.6275 µs in ns, as the table writes it
