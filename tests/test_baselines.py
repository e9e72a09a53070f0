"""Baselines: saved small, loaded faithfully, listed, compared by name; the CLI around them."""

from __future__ import annotations

import json
import random
from pathlib import Path

import polars as pl
import pytest

from perfbench import compare as cmp
from perfbench.cli import main
from perfbench.compare import baselines
from perfbench.errors import ConfigError
from perfbench.importers import Measurements, samples_frame
from perfbench.rundir import RunDir

DATA = Path(__file__).parent / "data" / "importers"


def make_run(root: Path, run_id: str, scale: float = 1.0, node: str = "vm", seed: int = 0) -> Path:
    """A run directory written through the real contract (meta.json, requests.parquet)."""
    rng = random.Random(seed)
    names = [e for e in ("fast", "slow") for _ in range(1500)]
    lat = [round(rng.lognormvariate(0, 0.4) * 4e6 * (scale if e == "slow" else 1)) for e in names]
    starts = [i * 5_000_000 for i in range(len(names))]
    frame = samples_frame(names, starts, lat)
    rd = RunDir.create(root, run_id)
    rd.write_meta({"target": "http://127.0.0.1:1", "shape": {"model": "open", "kind": "constant"},
                   "machine": {"node": node, "python": "3.11.7", "perfbench": "0.1.0", "cpu_count": 2},
                   "elapsed_s": 7.5})
    frame.write_parquet(rd.path / "requests.parquet")
    return rd.path


def test_save_load_roundtrip_is_exact(tmp_path):
    run = make_run(tmp_path / "runs", "r1")
    path = baselines.save(run, "main", root=tmp_path / "bl")
    size = sum(f.stat().st_size for f in path.iterdir())
    assert size < 60_000  # 3000 requests
    info = json.loads((path / "baseline.json").read_text())
    assert info["meta"]["machine"]["node"] == "vm" and info["requests"]["kept"] == 3000
    m = baselines.load("main", root=tmp_path / "bl")
    orig = pl.read_parquet(run / "requests.parquet")
    assert sorted(m.requests["latency_ns"].to_list()) == sorted(orig["latency_ns"].to_list())
    assert m.duration_s == 7.5
    with pytest.raises(ConfigError):
        baselines.save(run, "main", root=tmp_path / "bl")
    with pytest.raises(ConfigError):
        baselines.save(run, "../evil", root=tmp_path / "bl")
    [row] = baselines.list_baselines(tmp_path / "bl")
    assert row["name"] == "main" and row["requests"] == 3000


def test_subsampled_baseline_keeps_true_counts(tmp_path):
    run = make_run(tmp_path / "runs", "r1")
    baselines.save(run, "small", root=tmp_path / "bl", max_requests=1000)
    m = baselines.load("small", root=tmp_path / "bl")
    assert 1000 <= m.requests.height <= 1002
    assert m.counts == {"fast": 1500, "slow": 1500}
    c = cmp.compare(m, cmp.load_side(run))
    rps = [r for r in c.rows if r.stat == "rps"]
    assert all(r.ratio == pytest.approx(1.0) for r in rps)


def test_summary_only_sources_are_kept_as_summaries(tmp_path):
    import shutil

    shutil.copy(DATA / "k6_base_summary.json", tmp_path / "k6.json")
    baselines.save(tmp_path / "k6.json", "k6", root=tmp_path / "bl")
    m = baselines.load("k6", root=tmp_path / "bl")
    assert not m.has_samples and m.summary["endpoint"].to_list() == ["ALL"]


def test_cli_baseline_and_compare(tmp_path, capsys):
    runs, bl = tmp_path / "runs", tmp_path / "bl"
    base = make_run(runs, "base", seed=1)
    same = make_run(runs, "same", seed=2)
    slow = make_run(runs, "slow", scale=1.5, seed=3, node="other")
    assert main(["baseline", "save", str(base), "--name", "main", "--baselines-dir", str(bl)]) == 0
    assert main(["baseline", "list", "--baselines-dir", str(bl)]) == 0
    assert "main" in capsys.readouterr().out
    assert main(["compare", "main", str(same), "--baselines-dir", str(bl), "--boot", "500"]) == 0
    junit, md, js = tmp_path / "r.xml", tmp_path / "r.md", tmp_path / "r.json"
    code = main(["compare", "main", str(slow), "--baselines-dir", str(bl), "--boot", "500", "--junit", str(junit),
                 "--markdown", str(md), "--json", str(js), "--fail-on", "p95:+10%"])
    out, errs = capsys.readouterr()
    assert code == 10
    assert "DIFFERENT MACHINES" in out and "DIFFERENT MACHINES" in errs
    assert "DIFFERENT MACHINES" in md.read_text() and "DIFFERENT MACHINES" in junit.read_text()
    doc = json.loads(js.read_text())
    assert {(r["endpoint"], r["stat"]) for r in doc["rows"] if r["verdict"] == "regression" and r["gating"]} == {
        ("slow", "p95")}
    assert main(["compare", "main", str(slow), "--baselines-dir", str(bl), "--fail-on", "p95:-10%"]) == 2
    assert main(["compare", "nope", str(slow), "--baselines-dir", str(bl)]) == 2


def test_measurements_pass_through_load_side():
    m = Measurements(label="x", source="perfbench")
    assert cmp.load_side(m) is m


def test_regression_notebook_parameters_are_typed():
    """papermill infers types only from annotations: every parameter of notebooks/regression.ipynb has one."""
    from perfbench.experiments.runner import notebook_parameters

    params = notebook_parameters(Path(__file__).parent.parent / "notebooks" / "regression.ipynb")
    assert {k: v["type"] for k, v in params.items()} == {
        "baseline": "str", "current": "str", "threshold": "float", "confidence": "float", "fail_on": "list",
        "min_change_ms": "float", "baselines_dir": "str", "seed": "int", "fail_notebook": "bool",
        "warmup_s": "float"}
