"""A request's ``max_latency``: a slower response that was otherwise a success is an error of kind ``slow``
(status kept), on both HTTP paths and in both load models; any other error stays what it was."""

from __future__ import annotations

import polars as pl
import pytest

from perfbench import shapes
from perfbench.engine.recorder import MemorySink, Recorder
from perfbench.errors import ConfigError
from perfbench.load import run_load
from perfbench.rundir import REQUESTS
from perfbench.scenario import Request, Scenario

PATHS = ("lean", "aiohttp")


def _scenario() -> Scenario:
    return Scenario([Request("fast", "GET", "/", max_latency="5s"),
                     Request("sleepy", "GET", "/delay/120", max_latency="30ms"),
                     Request("broken", "GET", "/status/503", max_latency=1e-6),
                     Request("free", "GET", "/delay/60")], seed=3)


def _check(rows: pl.DataFrame, summary: dict) -> None:
    by = {e: rows.filter(pl.col("endpoint") == e) for e in ("fast", "sleepy", "broken", "free")}
    assert all(by[e].height for e in by), {e: by[e].height for e in by}
    sleepy = by["sleepy"]
    assert sleepy["error"].to_list() == ["slow"] * sleepy.height  # 120 ms is always over 30 ms
    assert sleepy["status"].to_list() == [200] * sleepy.height  # the status is kept
    assert set(sleepy["error_detail"].to_list()) == {"over max_latency 30 ms"}
    assert (sleepy["latency_ns"] > 30_000_000).all()
    assert by["fast"]["error"].null_count() == by["fast"].height  # under its limit
    assert by["broken"]["error"].to_list() == ["http_5xx"] * by["broken"].height  # the status error wins
    assert by["free"]["error"].null_count() == by["free"].height  # no limit, however slow
    # every row against its limit, recomputed from the rows
    limits = {"fast": 5e9, "sleepy": 30e6, "broken": 1e3}
    for e, limit in limits.items():
        ok = by[e].filter(pl.col("error").is_null())
        assert (ok["latency_ns"] <= limit).all()
    kinds = summary["overall"]["errors_by_kind"]
    assert kinds.get("slow") == sleepy.height and summary["endpoints"]["sleepy"]["errors_by_kind"] == {"slow": sleepy.height}


@pytest.mark.parametrize("path", PATHS)
def test_slow_on_both_paths_open_model(http_server, tmp_path, path):
    res = run_load(http_server.url, shapes.constant(rate=40, duration=1.0), _scenario(), runs_dir=tmp_path,
                   progress=False, announce=lambda s: None, http_path=path)
    import json

    assert json.loads((res.path / "meta.json").read_text())["engine"]["path"] == path
    _check(pl.read_parquet(res.path / REQUESTS), res.summary)


@pytest.mark.parametrize("path", PATHS)
def test_slow_on_both_paths_closed_model(http_server, tmp_path, path):
    res = run_load(http_server.url, shapes.users(4, 1.0), _scenario(), runs_dir=tmp_path, progress=False,
                   announce=lambda s: None, http_path=path)
    _check(pl.read_parquet(res.path / REQUESTS), res.summary)


def test_the_recorder_marks_slow_rows_per_batch():
    sink = MemorySink()
    rec = Recorder(sink, max_latency={"a": 10})
    for i, (lat, status, error) in enumerate([(5, 200, None), (11, 200, None), (50, 500, "http_5xx"),
                                              (10, 200, None), (99, None, "timeout")]):
        rec.add(i, "a", "GET", 0, 0, lat, status, error, None, 0, None, 0)
    rec.add(9, "b", "GET", 0, 0, 10**9, 200, None, None, 0, None, 0)  # no limit
    rec.flush()
    t = sink.table()
    assert t["error"].to_pylist() == [None, "slow", "http_5xx", None, "timeout", None]
    assert t["status"].to_pylist() == [200, 200, 500, 200, None, 200]
    assert t["error_detail"].to_pylist()[1] == "over max_latency 1e-05 ms"


@pytest.mark.parametrize("value", ["soon", 0, -1, float("nan"), float("inf"), True, "0s"])
def test_a_bad_max_latency_is_refused(value):
    with pytest.raises(ConfigError, match=r"requests\[0\] \(a\): max_latency"):
        Scenario([Request("a", max_latency=value)])
