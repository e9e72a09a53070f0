"""The memory_soak notebook runs under papermill with small parameters and gives a verdict: the
demo's leaking endpoint is a leak (the experiment fails, exit code 10 from the CLI), named by file."""

from __future__ import annotations

import browser
import pytest


@pytest.mark.slow
def test_memory_soak_notebook_runs(tmp_path):
    from perfbench.experiments.runner import default_notebooks_dir, notebook_parameters, run_experiment

    declared = notebook_parameters(default_notebooks_dir() / "memory_soak.ipynb")
    assert declared["duration"]["type"] == "float" and declared["memray"]["type"] == "bool"
    r = run_experiment("memory_soak", {"duration": 5.0, "rate": 80.0, "sample_interval": 0.2,
                                       "snapshot_interval": 0.5},
                       runs_dir=tmp_path / "runs", reports_dir=tmp_path / "reports")
    assert r.verdict and not r.ok and r.verdict["text"].startswith("leak"), r.verdict
    text = r.notebook.read_text()
    assert "perfbench/demo/leak.py" in text
    html = r.report.read_text()
    assert "FAILED: leak" in html  # the verdict leads the report
    assert html.count('class="perfbench-chart"') >= 3  # the memory timeline, growth and diff charts
    shots = browser.screenshot_dir()
    browser.check_report(r.report, screenshot=shots / "report-memory_soak.png" if shots else None, min_charts=3)
