"""Profiling the target while the load runs, from the command line; and the profilers' charts."""

import polars as pl
import pytest
import vl_convert as vlc

from perfbench.analysis.results import Run
from perfbench.cli import main
from perfbench.demo.process import DemoProcess
from perfbench.report import charts


@pytest.mark.slow
def test_run_profiles_the_demo_resources_pyspy_and_tracemalloc(seeded_demo_db, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PERFBENCH_MEMORY_TOKEN", "memory-token-0123456789")
    with DemoProcess(db_path=seeded_demo_db, max_seconds=300) as demo:  # its own: the leak endpoint grows it
        code = main(["run", demo.url, "--path", "leak=POST /api/leak", "--path", "/health", "--rate", "40",
                     "--duration", "3", "--runs-dir", str(tmp_path / "runs"), "--quiet", "--pid", str(demo.pid),
                     "--resources", "--resources-interval", "0.25", "--pyspy", "--tracemalloc",
                     "--snapshot-interval", "1"])
    assert code == 0
    run_dir = next((tmp_path / "runs").iterdir())
    meta = Run.load(run_dir).meta
    assert not [c for c in meta["collectors"].values() if "error" in c], meta["collectors"]
    res = pl.read_parquet(run_dir / "resources.parquet")
    assert res.height >= 8 and (res["rss"] > 0).all()
    assert (run_dir / "cpu").is_dir() and any((run_dir / "cpu").iterdir())
    diffs = list((run_dir / "memory").glob("tracemalloc_diff_*.parquet"))
    assert diffs
    site = pl.read_parquet(run_dir / "memory" / "tracemalloc_diff_site.parquet").sort("size_diff", descending=True)
    assert site["file"][0].endswith("perfbench/demo/leak.py")  # the leaking line is the top growing site
    assert "memory-token-0123456789" not in (run_dir / "meta.json").read_text()


def test_profiling_flags_need_a_pid(capsys, tmp_path):
    assert main(["run", "http://127.0.0.1:1", "--resources", "--runs-dir", str(tmp_path)]) == 2
    assert "--pid PID" in capsys.readouterr().err


def test_tracemalloc_flag_needs_the_token(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("PERFBENCH_MEMORY_TOKEN", raising=False)
    assert main(["run", "http://127.0.0.1:1", "--tracemalloc", "--runs-dir", str(tmp_path)]) == 2
    assert "PERFBENCH_MEMORY_TOKEN" in capsys.readouterr().err


def _svg(chart) -> str:
    return vlc.vegalite_to_svg(chart.to_dict())


def test_resources_chart():
    res = pl.DataFrame({"t_s": [0.0, 0.5, 1.0], "rss_mb": [50.0, 51.0, 53.0], "cpu_percent": [10.0, 40.0, 35.0]})
    tp = pl.DataFrame({"t_s": [0.0, 1.0], "outcome": ["ok", "ok"], "rps": [20.0, 25.0]})
    c = charts.resources_over_time(res, tp)
    assert "<svg" in _svg(c) and "MiB" in str(c.to_dict())
    with pytest.raises(ValueError, match="rss_mb"):
        charts.resources_over_time(res.drop("rss_mb"))


def test_memory_diff_bars_rank_sites():
    diff = pl.DataFrame({"file": ["a.py", "b.py", "c.py"], "line": [1, 2, 3], "size_diff": [10_000, -50_000, 900_000]})
    spec = charts.memory_diff_bars(diff, n=2).to_dict()
    values = str(spec)
    assert "c.py:3" in values and "b.py:2" in values and "a.py:1" not in values  # top 2 by |change|
    assert "<svg" in _svg(charts.memory_diff_bars(diff))


def test_leak_growth_chart_with_fit():
    pts = pl.DataFrame({"requests": [0, 100, 200, 300], "bytes": [0, 1_000_000, 2_100_000, 2_900_000]})
    try:
        c = charts.leak_growth(pts, slope=10_000.0, intercept=0.0)
    except ValueError as exc:  # the frame's columns are named in the error
        pytest.fail(str(exc))
    assert "<svg" in _svg(c)
