"""The memory_soak notebook runs under papermill with small parameters and shows a verdict."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_memory_soak_notebook_runs(tmp_path):
    import papermill

    from perfbench.experiments import default_notebooks_dir, notebook_parameters

    path = default_notebooks_dir() / "memory_soak.ipynb"
    declared = notebook_parameters(path)
    assert declared["duration"]["type"] == "float" and declared["memray"]["type"] == "bool"
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(path), str(out), parameters={
        "duration": 5.0, "rate": 80.0, "sample_interval": 0.2, "snapshot_interval": 0.5,
        "runs_dir": str(tmp_path / "runs")}, kernel_name="python3", progress_bar=False)
    text = out.read_text()
    assert "Verdict: leak" in text, [ln for ln in text.splitlines() if "Verdict" in ln][:2]
    assert "perfbench/demo/leak.py" in text
