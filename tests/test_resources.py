"""The resource sampler: samples cover the run at the asked interval; a missing process is a clear message."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest

from perfbench import shapes
from perfbench.errors import ProfilerError
from perfbench.load import run_load
from perfbench.profilers.resources import ResourceSampler, read_resources
from perfbench.scenario import single


@pytest.fixture
def child():
    """A Python child that lives at most 60 s (its own limit), stopped by its PID."""
    proc = subprocess.Popen([sys.executable, "-c", "import time\nt=time.monotonic()\n"
                             "while time.monotonic()-t<60: time.sleep(0.01)"])
    yield proc
    proc.kill()
    proc.wait(10)


def test_samples_cover_the_run_at_the_interval(http_server, runs_dir, child):
    interval = 0.05
    sampler = ResourceSampler(child.pid, interval_s=interval)
    result = run_load(http_server.url, shapes.constant(rate=50, duration=1.0), single("/"), runs_dir=runs_dir,
                      progress=False, collectors=[sampler])
    res = read_resources(result.path)
    ends = pl.read_parquet(result.path / "requests.parquet")["end_ns"]
    assert res["t_ns"].min() <= 0  # a baseline before the first request
    assert res["t_ns"].max() >= ends.max()  # and a last sample after the last response
    gaps = res["t_ns"].diff().drop_nulls() / 1e9
    # the grid is fixed; a starved thread skips ticks rather than bunching them, so the median gap is the interval
    assert 0.5 * interval <= gaps.median() <= 3 * interval
    assert res["rss"].min() > 0 and res["threads"].min() >= 1 and res["fds"].min() >= 3
    assert res.filter(pl.col("slow"))["connections"].null_count() == 0
    assert res["cpu_percent"].drop_nulls().len() == res.height - 1
    meta = json.loads((result.path / "meta.json").read_text())["collectors"]["resources"]
    assert meta["samples"] == res.height and meta["pid"] == child.pid
    cost = meta["cost"]
    assert cost["fast"]["samples"] > 0 and cost["fast"]["mean_ms"] is not None
    assert cost["slow"]["samples"] >= 1 and cost["share_of_one_core"] is not None


def test_missing_process_is_a_clear_message_and_the_run_goes_on(http_server, runs_dir):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(30)  # reaped: its PID no longer exists
    result = run_load(http_server.url, shapes.constant(rate=20, duration=0.3), single("/"), runs_dir=runs_dir,
                      progress=False, announce=lambda line: None, collectors=[ResourceSampler(gone.pid)])
    meta = json.loads((result.path / "meta.json").read_text())
    err = meta["collectors"]["resources"]["error"]
    assert f"no process with PID {gone.pid}" in err
    assert pl.read_parquet(result.path / "requests.parquet").height > 0


def test_target_exiting_mid_run_is_reported(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    sampler = ResourceSampler(proc, interval_s=0.01)
    try:
        sampler.start_sync()
    except RuntimeError as exc:  # it may be gone already (exited before the first read)
        assert "exited" in str(exc) or "no process" in str(exc)
        return
    finally:
        proc.wait(30)
    out = sampler.stop_sync(tmp_path)
    assert out["samples"] >= 1
    assert "target_exited_at_s" in out
    assert (tmp_path / "resources.parquet").exists()


def test_no_pid_is_refused():
    class NotStarted:
        pid = None

    with pytest.raises(ProfilerError, match="no process to watch"):
        ResourceSampler(NotStarted()).start_sync()
