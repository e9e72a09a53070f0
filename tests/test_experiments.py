"""The load_test notebook run by papermill, and its HTML report: offline, with rendered charts."""

import base64
import json
import re
from pathlib import Path

import browser
import pytest

from perfbench.errors import ConfigError, ExperimentError, RunDirError
from perfbench.experiments.runner import list_experiments, run_experiment
from perfbench.report.charts import embed

pytestmark = pytest.mark.slow

# any reference to another host: attributes, CSS url(), script import()/fetch of an http(s) URL
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|import\(\s*["'`]https?:|["'`]https?://[^"'`\s]*\.m?js["'`]""", re.I)


def svgs(html: str) -> list[str]:
    """A report's charts as text: its interactive chart specs (or its SVG images, in a static report)."""
    return [json.dumps(s) for s in embed.specs_in(html)] + [
        base64.b64decode(m).decode() for m in re.findall(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", html)]


@pytest.fixture(scope="module")
def experiment(http_server, tmp_path_factory):
    base = tmp_path_factory.mktemp("exp")
    return run_experiment("load_test", {"target": http_server.url, "rate": 40, "duration": 2, "scenario": "",
                                        "paths": ["/", "slow=GET /delay/30", "missing=GET /status/404"]},
                          runs_dir=base / "runs", reports_dir=base / "reports")


def test_notebook_runs_and_leaves_the_run_directory(experiment):
    rd = experiment.run_dir
    assert (rd / "meta.json").exists() and (rd / "requests.parquet").exists() and (rd / "summary.json").exists()
    assert (rd / "load_test.ipynb") == experiment.notebook and experiment.notebook.exists()
    summary = json.loads((rd / "summary.json").read_text())
    assert summary["overall"]["count"] == 80
    assert summary["overall"]["errors_by_kind"] == {"http_4xx": summary["endpoints"]["missing"]["count"]}


def test_report_is_offline_and_holds_rendered_charts(experiment):
    html = experiment.report.read_text()
    assert experiment.report.name == f"{experiment.run_id}-load_test.html"
    assert not EXTERNAL.search(html), EXTERNAL.search(html).group(0)
    charts = svgs(html)
    assert len(charts) >= 5
    text = " ".join(charts)
    for title in ("Latency distribution", "Latency by percentile", "Latency over time", "Throughput"):
        assert title in text
    assert html.count("window.vegaEmbed=") == 1  # the charting script once, every chart after it uses it
    shots = browser.screenshot_dir()
    page = browser.check_report(experiment.report, screenshot=shots / "report-load_test.png" if shots else None,
                                min_charts=5)  # in Chromium, offline: every chart drawn, no error, no overflow
    assert page.charts == len(embed.specs_in(html))
    assert "Traceback" not in html
    assert "req/s" in html and "p99" in html  # the headline and the endpoint table


def test_executed_notebook_has_no_errors_or_stderr(experiment):
    nb = json.loads(experiment.notebook.read_text())
    outputs = [o for c in nb["cells"] for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert not [o for o in outputs if o.get("name") == "stderr"], "warnings leak into the report"


def test_report_can_be_rebuilt_from_an_existing_run_without_rewriting_its_meta(experiment, tmp_path):
    meta_before = (experiment.run_dir / "meta.json").read_bytes()
    again = run_experiment("load_test", {"run_dir": str(experiment.run_dir)}, reports_dir=tmp_path)
    assert again.run_id == experiment.run_id and again.report.exists()
    assert again.notebook.parent == tmp_path and not list(tmp_path.glob(".*"))  # no hidden file left
    record = json.loads(again.report.with_suffix(".json").read_text())
    assert record["experiment"] == "load_test" and record["reanalysed"] is True
    explored = run_experiment("explore", {"run_dir": str(experiment.run_dir)}, reports_dir=tmp_path)
    details = explored.report.read_text().split("Run details", 1)[1]
    assert f"{experiment.run_id}</code> (load_test)" in details  # the run's own experiment, not the report's
    assert "(explore)" not in details
    assert (experiment.run_dir / "meta.json").read_bytes() == meta_before  # re-reporting never rewrites meta.json
    with pytest.raises(ExperimentError, match=r"endpoint 'nope' is not in run .*its endpoints are: GET /, missing, slow"):
        run_experiment("explore", {"run_dir": str(experiment.run_dir), "endpoint": "nope"}, reports_dir=tmp_path)


def test_unknown_experiment_and_bad_parameters_are_refused():
    with pytest.raises(ConfigError, match="unknown experiment 'nope'.*load_test"):
        run_experiment("nope")
    with pytest.raises(ConfigError, match="parameter 'rate' must be float"):
        run_experiment("load_test", {"rate": "fast"})
    with pytest.raises(ConfigError, match="unknown parameter 'colour'"):
        run_experiment("load_test", {"colour": "red"})


def test_list_experiments_shows_parameters_with_types():
    params = list_experiments()["load_test"]
    assert params["rate"]["type"] == "float" and params["target"]["type"] == "str"


def test_every_notebook_is_valid_nbformat_without_warnings():
    """Every notebook validates as it is stored (a 4.5 notebook's cells carry ids): no warning
    today that becomes nbformat's hard error tomorrow."""
    import warnings

    import nbformat

    for path in sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            nbformat.validate(nbformat.read(path, as_version=nbformat.NO_CONVERT))


def test_a_failing_notebook_is_an_experiment_error_with_the_notebook_kept(tmp_path):
    # the notebook refuses a target off loopback (UnsafeTargetError in a cell): it fails, and is kept
    with pytest.raises(ExperimentError, match=r"failed in cell .*UnsafeTargetError.*kept at (\S+)") as info:
        run_experiment("load_test", {"target": "http://192.0.2.1:9"}, reports_dir=tmp_path,
                       runs_dir=tmp_path / "runs")
    assert Path(str(info.value).rsplit("kept at ", 1)[1].rstrip(")")).is_file()


def test_a_corrupt_run_directory_is_refused_before_any_notebook_runs(tmp_path):
    bad = tmp_path / "bad-run"
    bad.mkdir()
    (bad / "meta.json").write_text(json.dumps({"schema_version": 99, "run_id": "bad-run"}))
    with pytest.raises(RunDirError, match=r"meta.json: schema_version 99"):
        run_experiment("load_test", {"run_dir": str(bad)}, reports_dir=tmp_path / "reports")
    assert [p.name for p in bad.iterdir()] == ["meta.json"]  # nothing written into it


def test_a_broken_slo_fails_the_experiment_with_exit_10_and_leads_the_report(http_server, tmp_path, capsys):
    from perfbench.cli import main

    code = main(["experiment", "load_test", "-p", "target", http_server.url, "-p", "rate", "20", "-p", "duration",
                 "1", "-p", "scenario", "", "-p", "paths", '["/delay/30"]', "-p", "slos", '["p99<1ms"]',
                 "--runs-dir", str(tmp_path / "runs"), "--reports-dir", str(tmp_path / "reports")])
    out = capsys.readouterr().out
    assert code == 10 and re.search(r"verdict:       FAILED: SLO broken( after the first [\d.]+ s)?: p99<1ms", out)
    run_dir = next((tmp_path / "runs").iterdir())
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["verdict"]["ok"] is False and meta["experiment"]["outcome"] == "failed"
    assert meta["experiment"]["parameters"]["slos"] == ["p99<1ms"]
    html = next((tmp_path / "reports").glob("*-load_test.html")).read_text()
    first_chart = html.index('class="perfbench-chart"')
    verdict = html.index('class="pb-verdict pb-verdict-failed"')
    assert verdict < html.index("p99&lt;1ms") < first_chart  # the verdict comes first
    assert html.count('class="pb-verdict ') == 1  # and only once
    # then the headline figures, then the run's metadata
    assert verdict < html.index("Latency (from the planned send time)") < html.index("Run details")
    assert "perfbench / Python" in html and "code under test" in html  # the header with the run's metadata
    assert "[#" not in html and "perfbench: constant load" not in html  # no progress bar or console lines


def test_the_report_header_carries_the_runs_metadata(experiment):
    html = experiment.report.read_text()
    assert f"<code>{experiment.run_id}</code> (load_test)" in html and "CPUs" in html
    meta = json.loads((experiment.run_dir / "meta.json").read_text())
    assert meta["experiment"]["name"] == "load_test" and meta["experiment"]["outcome"] == "ok"


def test_a_missing_run_dir_is_named_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError, match="parameter 'run_dir'.*is not a run directory"):
        run_experiment("load_test", {"run_dir": str(tmp_path / "nope")}, reports_dir=tmp_path)


def test_reports_index_lists_every_report_with_figures_and_a_trend(http_server, tmp_path, capsys):
    from perfbench.cli import main
    from perfbench.report.index import collect_runs

    runs, reports = tmp_path / "runs", tmp_path / "reports"
    for _ in range(2):
        run_experiment("load_test", {"target": http_server.url, "rate": 20, "duration": 1, "scenario": "",
                                     "paths": ["/"]}, runs_dir=runs, reports_dir=reports)
    (reports / "orphan.html").write_text("<html></html>")
    regression = run_experiment("regression", {"baseline": str(next(runs.iterdir())),
                                               "current": str(sorted(runs.iterdir())[-1])}, reports_dir=reports)
    assert regression.run_dir is None and regression.notebook == reports / f"{regression.run_id}-regression.ipynb"
    assert not list(reports.glob(".*"))  # nothing hidden left behind
    assert main(["reports", "--runs-dir", str(runs), "--reports-dir", str(reports)]) == 0
    index = (reports / "index.html").read_text()
    table = collect_runs(runs)
    assert table.height == 2 and set(table["experiment"]) == {"load_test"}
    for run_id in table["run_id"]:
        assert f'href="{run_id}-load_test.html"' in index and (reports / f"{run_id}-load_test.html").exists()
    assert index.count("<svg") == 1 and "p95 latency and throughput across runs" in index  # the trend
    assert "orphan.html" in index and not EXTERNAL.search(index)
    assert f'href="{regression.report.name}"' in index  # listed with its verdict, newest first
    assert index.index(regression.report.name) < min(index.index(r) for r in table["run_id"])
    assert regression.verdict["text"] in index


def test_a_static_report_has_svg_images_and_no_script(experiment, tmp_path):
    again = run_experiment("load_test", {"run_dir": str(experiment.run_dir)}, reports_dir=tmp_path, static=True)
    html = again.report.read_text()
    images = [s for s in svgs(html) if s.lstrip().startswith("<svg")]
    assert len(images) >= 5 and "Latency by percentile" in " ".join(images)
    assert "vegaEmbed" not in html and not EXTERNAL.search(html)


def test_load_test_shows_the_cpu_profile_when_the_run_has_one(experiment, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(experiment.run_dir, run)
    (run / "cpu").mkdir()
    (run / "cpu" / "py-spy.txt").write_text("main (app.py:1);handler (app.py:10);render (app.py:42) 30\n"
                                            "main (app.py:1);handler (app.py:10) 10\n")
    html = run_experiment("load_test", {"run_dir": str(run)}, reports_dir=tmp_path / "reports").report.read_text()
    assert "render (app.py:42)" in html and "Download as CSV" in html
    assert "py-spy was off" in run_experiment("load_test", {"run_dir": str(experiment.run_dir)},
                                              reports_dir=tmp_path / "r2").report.read_text()


def _tables(html: str) -> list[tuple[list[str], list[list[str]]]]:
    """Each formatted table of a report: its header texts and its rows' cell texts."""
    def text(s: str) -> str:
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", s)).strip()

    out = []
    for t in re.findall(r'<table class="pb-table">(.*?)</table>', html, re.S):
        head = [text(h) for h in re.findall(r"<th[^>]*>(.*?)</th>", t, re.S)]
        rows = [[text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
                for r in re.findall(r"<tr>(.*?)</tr>", t.split("</thead>", 1)[-1], re.S)]
        out.append((head, rows))
    return out


def test_the_headline_figures_are_the_endpoint_tables_cell_for_cell(experiment):
    from perfbench.report.tables import number_text

    html = experiment.report.read_text()
    head, rows = next((h, r) for h, r in _tables(html) if h[:2] == ["endpoint", "count"])
    overall = dict(zip(head, next(r for r in rows if r[0] == "ALL"), strict=True))
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))
    m = re.search(r"([\d,]+) requests in [\d.]+ s \(([\d,.]+) req/s", text)
    assert m and m.groups() == (overall["count"], overall["req/s"])
    lat = re.search(r"p50 (\S+) ms, p95 (\S+) ms, p99 (\S+) ms, p99\.9 (\S+) ms, max (\S+) ms", text)
    assert lat and lat.groups() == tuple(overall[f"{p} (ms)"] for p in ("p50", "p95", "p99", "p99.9", "max"))
    err = re.search(r"Errors: ([\d,]+) \(([\d.,]+ %)\)", text)
    assert err and err.groups() == (overall["errors"], overall["error rate (%)"])
    # both are summary.json's numbers (what CI reads), recomputed there from the rows
    summary = json.loads((experiment.run_dir / "summary.json").read_text())["overall"]
    assert overall["p99 (ms)"] == number_text(summary["latency_ms"]["p99"])
    assert overall["count"] == number_text(summary["count"]) and summary["errors"] > 0


def test_the_load_test_report_has_a_failures_table_with_example_requests(experiment):
    import polars as pl

    html = experiment.report.read_text()
    head, rows = next((h, r) for h, r in _tables(html) if "example request ids" in h)
    row = dict(zip(head, rows[0], strict=True))
    assert row["error"] == "http_4xx" and row["endpoint"] == "missing" and row["status"] == "404"
    ids = [int(x) for x in row["example request ids"].split(", ")]
    reqs = pl.read_parquet(experiment.run_dir / "requests.parquet")
    assert int(row["count"]) == reqs.filter(pl.col("error") == "http_4xx").height
    picked = reqs.filter(pl.col("request_id").is_in(ids))
    assert picked.height == len(ids) >= 1 and set(picked["status"]) == {404}
