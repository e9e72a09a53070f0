"""The warm-up: recorded like the rest of the run, left out of the summary, the SLOs and comparisons."""

from __future__ import annotations

import json

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from perfbench import importers, shapes
from perfbench.analysis.results import Run
from perfbench.analysis.slo import parse_all
from perfbench.cli import main
from perfbench.errors import ConfigError
from perfbench.load import run_load
from perfbench.rundir import REQUEST_SCHEMA, REQUESTS, RunDir
from perfbench.scenario import Request, Scenario
from perfbench.scenario_toml import load_toml
from perfbench.shapes.warmup import Warmup


@pytest.mark.parametrize("value, seconds, requests", [
    ("30s", 30.0, None), ("500ms", 0.5, None), ("2m", 120.0, None), (" 1h ", 3600.0, None),
    (500, None, 500), ("500", None, 500), (500.0, None, 500),
])
def test_parse(value, seconds, requests):
    w = Warmup.parse(value)
    assert (w.seconds, w.requests) == (seconds, requests)


@pytest.mark.parametrize("value", [0, "0", "0s", None])
def test_no_warmup(value):
    assert Warmup.parse(value) is None


@pytest.mark.parametrize("value", ["abc", "3q", "-5s", "nans", True, 2.5, -1])
def test_bad_warmup_is_explained(value):
    with pytest.raises(ConfigError, match="warmup"):
        Warmup.parse(value)


def _synthetic(tmp_path, warmup: dict | None, n: int = 100, warm_error: str | None = "timeout"):
    """A run of n requests, one every 10 ms: those before 0.3 s fail with ``warm_error`` and take 500 ms,
    the others succeed in 1 + i % 7 ms."""
    rd = RunDir.create(tmp_path, "synthetic")
    rows = []
    for i in range(n):
        intended = i * 10_000_000
        warm = intended < 300_000_000
        lat = 500_000_000 if warm else (1 + i % 7) * 1_000_000
        rows.append({"request_id": i, "endpoint": "a" if i % 2 else "b", "method": "GET", "intended_ns": intended,
                     "start_ns": intended, "end_ns": intended + lat, "latency_ns": lat, "service_ns": lat,
                     "status": None if warm and warm_error else 200, "error": warm_error if warm else None,
                     "error_detail": None, "bytes": 10, "wire_bytes": 10, "worker": 0, "vu": None, "stage": 0,
                     "connect_ns": None, "ttfb_ns": lat // 2, "reused": True, "redirects": 0, "final_path": None})
    pq.write_table(pa.Table.from_pylist(rows, schema=REQUEST_SCHEMA), rd.path / REQUESTS)
    rd.write_meta({"target": "http://127.0.0.1:1", "shape": {"model": "open"}, "elapsed_s": 1.0, "parameters": {},
                   "engine_stats": {"planned": n}, "end_reason": "completed", "warmup": warmup})
    return rd.path


def test_a_timed_warmup_is_left_out_of_the_summary_and_slos(tmp_path):
    path = _synthetic(tmp_path, Warmup.parse("300ms").describe())
    slos = parse_all(["timeout==0", "errors==0", "p99<10ms", "max<10ms"])
    s = Run.load(path).write_summary(slos)
    rows = pl.read_parquet(path / REQUESTS)
    assert rows.height == 100  # the rows are kept
    measured = rows.filter(pl.col("intended_ns") >= 300_000_000)
    assert s["overall"]["count"] == measured.height == 70
    assert s["overall"]["rps"] == pytest.approx(70 / 0.7)  # over the span after the warm-up
    lat = sorted(measured["latency_ns"].to_list())
    assert s["overall"]["latency_ms"]["max"] == lat[-1] / 1e6
    assert s["overall"]["latency_ms"]["p99"] == lat[69] / 1e6 and s["overall"]["latency_ms"]["p50"] == lat[34] / 1e6
    assert s["warmup"] == {"seconds": 0.3, "requests": None, "until_s": 0.3, "rows_excluded": 30}
    assert all(r["ok"] for r in s["slo"]), s["slo"]
    assert not s["generator"]["saturated"], s["generator"]["saturation_reasons"]


def test_without_the_warmup_the_same_slos_break(tmp_path):
    path = _synthetic(tmp_path, None)
    s = Run.load(path).write_summary(parse_all(["timeout==0", "p99<10ms"]))
    assert s["overall"]["count"] == 100 and "warmup" not in s
    assert [r["ok"] for r in s["slo"]] == [False, False]
    assert s["slo"][0]["actual"] == 30


def test_a_warmup_of_n_requests_ends_at_the_next_requests_intended_time(tmp_path):
    path = _synthetic(tmp_path, Warmup.parse(25).describe(), warm_error=None)
    s = Run.load(path).write_summary()
    assert s["overall"]["count"] == 75 and s["warmup"]["rows_excluded"] == 25
    meta = json.loads((path / "meta.json").read_text())
    assert meta["warmup"]["until_ns"] == 25 * 10_000_000 and meta["warmup"]["until_s"] == 0.25
    assert meta["warmup"]["requests"] == 25


def test_a_warmup_over_every_request_says_nothing_was_measured(tmp_path):
    path = _synthetic(tmp_path, Warmup.parse(1000).describe())
    s = Run.load(path).write_summary(parse_all(["p99<1s"]))
    assert s["overall"]["count"] == 0 and any("warm-up took every request" in n for n in s["notes"])
    assert not s["slo"][0]["ok"] and s["slo"][0]["note"] == "no requests"


def test_comparisons_leave_the_warmup_out(tmp_path):
    path = _synthetic(tmp_path, Warmup.parse("300ms").describe())
    m = importers.from_run(path)
    assert m.requests.height == 70 and m.requests["intended_ns"].min() == 300_000_000
    assert m.duration_s == pytest.approx(0.7)
    assert any("warm-up" in n for n in m.notes)


def test_run_load_records_and_excludes_a_warmup_of_requests(http_server, tmp_path):
    res = run_load(http_server.url, shapes.constant(rate=40, duration=1.0), Scenario([Request("root", path="/")]),
                   runs_dir=tmp_path, progress=False, announce=lambda s: None, warmup=10)
    rows = pl.read_parquet(res.path / REQUESTS)
    meta = json.loads((res.path / "meta.json").read_text())
    assert meta["warmup"]["requests"] == 10
    until = meta["warmup"]["until_ns"]
    assert rows.filter(pl.col("intended_ns") < until).height == 10
    assert res.summary["overall"]["count"] == rows.height - 10
    assert res.summary["warmup"]["rows_excluded"] == 10


def test_cli_warmup_time_and_its_dry_run(http_server, tmp_path, capsys):
    base = ["run", http_server.url, "--rate", "40", "--duration", "1", "--runs-dir", str(tmp_path), "--quiet",
            "--path", "/"]
    assert main([*base, "--warmup", "400ms", "--dry-run"]) == 0
    assert "warm-up (left out of the figures): the first 0.4 s" in capsys.readouterr().out
    assert main([*base, "--warmup", "400ms", "--slo", "errors<1%"]) == 0
    run_dir = next(tmp_path.iterdir())
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["warmup"] == {"seconds": 0.4, "requests": None, "until_ns": 400_000_000, "until_s": 0.4}
    rows = pl.read_parquet(run_dir / REQUESTS)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["overall"]["count"] == rows.filter(pl.col("intended_ns") >= 400_000_000).height
    assert summary["overall"]["count"] < rows.height


@pytest.mark.parametrize("extra, fragment", [
    (["--warmup", "5s"], "not shorter than the run"),
    (["--warmup", "ten"], "warmup 'ten'"),
    (["--warmup", "40"], "not fewer than the 40 the plan sends"),
])
def test_cli_refuses_a_bad_warmup_before_the_load(http_server, tmp_path, capsys, extra, fragment):
    args = ["run", http_server.url, "--rate", "40", "--duration", "1", "--runs-dir", str(tmp_path), "--quiet",
            "--path", "/", *extra]
    assert main(args) == 2
    assert fragment in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_a_toml_scenario_sets_the_warmup(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('warmup = "2s"\n[[request]]\nname = "a"\npath = "/"\nmax_latency = "250ms"\n')
    s = load_toml(p)
    assert s.warmup == Warmup(seconds=2.0) and s.requests[0].max_latency_ns == 250_000_000
    p.write_text('warmup = "soon"\n[[request]]\nname = "a"\npath = "/"\nmax_latency = "x"\n')
    with pytest.raises(ConfigError, match="max_latency.*warmup 'soon'|warmup 'soon'.*max_latency") as e:
        load_toml(p)
    assert "request[0]" in str(e.value)
