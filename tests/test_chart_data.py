"""The frames the run charts draw beyond perfbench.analysis.results: offered rate, warm-up end, the run's time
axis, status codes and per-endpoint latency over time, and the failures table, each against a recomputation
from the raw rows."""

from __future__ import annotations

import polars as pl
import pytest
from test_charts import make_requests

from perfbench.report import charts


@pytest.fixture(scope="module")
def requests() -> pl.DataFrame:
    return make_requests(3000, duration_s=12.0, error_share=0.1)


def test_the_offered_rate_follows_the_plans_stages():
    meta = {"shape": {"model": "open", "stages": [{"duration_s": 5, "start_rps": 0, "end_rps": 100},
                                                  {"duration_s": 10, "start_rps": 100, "end_rps": 100}]}}
    assert charts.planned_rate(meta).rows() == [(0.0, 0.0), (5.0, 100.0), (5.0, 100.0), (15.0, 100.0)]
    assert charts.planned_rate({"shape": {"model": "closed", "stages": [{"duration_s": 5}]}}) is None
    assert charts.planned_rate({}) is None


def test_warm_up_end_and_the_runs_time_axis():
    assert charts.warmup_end_s({"warmup": {"end_s": 4.5}}) == 4.5
    assert charts.warmup_end_s({"warmup": {"end_s": 0}}) is None and charts.warmup_end_s({}) is None
    assert charts.warmup_end_s({"warmup": {"end_s": True}}) is None
    assert charts.run_domain({"shape": {"duration_s": 30}}, 31.2) == (0.0, 31.2)  # responses after the plan
    assert charts.run_domain({"shape": {"duration_s": 30}}, None) == (0.0, 30.0)


def test_status_codes_over_time_count_every_response(requests):
    st = charts.status_timeseries(requests.lazy(), 2.0)
    assert (st["rps"] * 2.0).sum() == pytest.approx(requests.height)
    want = requests.with_columns(
        s=pl.when(pl.col("status").is_not_null()).then(pl.col("status").cast(pl.String)).otherwise(pl.col("error")))
    by = dict(st.group_by("status").agg((pl.col("rps") * 2.0).sum()).iter_rows())
    assert by == pytest.approx(dict(want.group_by("s").len().iter_rows()))
    assert {"200", "503", "timeout", "connect"} <= set(by)


def test_endpoint_latency_over_time_is_each_buckets_p95(requests):
    ets = charts.endpoint_timeseries(requests, 3.0)
    row = ets.filter((pl.col("t_s") == 3.0) & (pl.col("endpoint") == "GET /items")).row(0, named=True)
    bucket = requests.filter((pl.col("endpoint") == "GET /items") & (pl.col("intended_ns") >= 3e9)
                             & (pl.col("intended_ns") < 6e9))["latency_ns"] / 1e6
    assert row["requests"] == bucket.len()
    assert row["value_ms"] == pytest.approx(bucket.sort()[int(-(-0.95 * (bucket.len() - 1) // 1))])


def test_the_failures_table_ranks_error_details_with_example_requests(requests):
    table = charts.failures(requests, top=5, examples=2)
    failed = requests.filter(pl.col("error").is_not_null())
    groups = failed.group_by("error", "error_detail", "endpoint", "status").agg(pl.len().alias("n"),
                                                                              pl.col("request_id").min())
    assert table.height == 5
    assert table["count"].to_list() == sorted(groups["n"].to_list(), reverse=True)[:5]
    first = table.row(0, named=True)
    match = failed.filter((pl.col("error") == first["error"]) & (pl.col("endpoint") == first["endpoint"]))
    assert first["count"] == match.filter(pl.col("status").eq_missing(first["status"])).height
    assert first["share"] == pytest.approx(first["count"] / requests.height)
    assert len(first["example_ids"]) == 2 and set(first["example_ids"]) <= set(match["request_id"])
    assert first["first_s"] <= first["last_s"]
    assert charts.failures(make_requests(100, error_share=0)).height == 0


def test_a_frame_without_the_columns_is_refused():
    with pytest.raises(ValueError, match="status_timeseries.*end_ns"):
        charts.status_timeseries(pl.DataFrame({"status": [200]}))


def test_status_codes_are_coloured_by_family():
    st = pl.DataFrame({"t_s": [0.0] * 5, "status": ["200", "201", "404", "503", "timeout"], "rps": [1.0] * 5})
    spec = charts.status_over_time(st).to_dict()
    scale = spec["encoding"]["color"]["scale"]
    colour = dict(zip(scale["domain"], scale["range"], strict=True))
    assert colour["200"] != colour["201"] and colour["200"] in charts.load.STATUS_SHADES["2"]
    assert colour["201"] in charts.load.STATUS_SHADES["2"] and colour["404"] in charts.load.STATUS_SHADES["4"]
    assert colour["timeout"] == charts.PALETTE["timeout"]
    assert scale["domain"] == ["200", "201", "404", "503", "timeout"]
