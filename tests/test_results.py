import math
import random

import polars as pl
import pytest

from perfbench.analysis import results


def frame(latencies_ms, endpoint="a", errors=None, lag_ns=0):
    n = len(latencies_ms)
    intended = [i * 1_000_000 for i in range(n)]
    lat = [round(v * 1e6) for v in latencies_ms]
    return pl.DataFrame({
        "request_id": list(range(n)), "endpoint": [endpoint] * n, "method": ["GET"] * n,
        "intended_ns": intended, "start_ns": [t + lag_ns for t in intended],
        "end_ns": [t + v for t, v in zip(intended, lat, strict=False)], "latency_ns": lat,
        "service_ns": [v - lag_ns for v in lat], "status": [200] * n,
        "error": errors or [None] * n, "error_detail": [None] * n, "bytes": [10] * n,
        "worker": [0] * n, "vu": [None] * n, "stage": [0] * n,
    }, schema_overrides={"status": pl.Int16, "vu": pl.Int32, "error": pl.String, "error_detail": pl.String})


def inverted_cdf(values, p):
    s = sorted(values)
    return s[max(0, math.ceil(p * len(s)) - 1)]


@pytest.mark.parametrize("n", [1, 2, 10, 99, 100, 1001])
def test_percentiles_are_exact_inverted_cdf(n):
    rng = random.Random(n)
    vals = [round(rng.lognormvariate(1, 1), 3) for _ in range(n)]
    df = frame(vals).lazy()
    got = results.endpoint_stats(df, duration_s=1).row(0, named=True)
    for name, p in results.PERCENTILES.items():
        assert got[f"{name}_ms"] == pytest.approx(inverted_cdf(vals, p), abs=1e-6), name
    assert got["max_ms"] == pytest.approx(max(vals), abs=1e-6)


def test_summary_counts_errors_and_throughput():
    errs = [None] * 8 + ["timeout", "http_5xx"]
    s = results.summarize(frame([1.0] * 10, errors=errs).lazy(), duration_s=2.0, planned=10)
    o = s["overall"]
    assert o["count"] == 10 and o["errors"] == 2 and o["rps"] == 5.0
    assert o["errors_by_kind"] == {"http_5xx": 1, "timeout": 1}
    assert s["generator"]["saturated"] is False


def test_summary_flags_generator_saturation_with_the_reason():
    s = results.summarize(frame([50.0] * 10, lag_ns=40_000_000).lazy(), duration_s=1, planned=12,
                          engine={"capped": 3, "max_in_flight": 5})
    g = s["generator"]
    assert g["saturated"]
    text = " ".join(g["saturation_reasons"])
    assert "lag p99 40.0 ms" in text and "3 arrivals waited" in text and "2 planned requests were not sent" in text


def test_closed_model_summary_carries_the_warning():
    s = results.summarize(frame([1.0]).lazy(), duration_s=1, model="closed")
    assert any("hide the stall" in n for n in s["notes"])


def test_timeseries_and_histogram_shapes():
    df = frame([float(i % 50 + 1) for i in range(3000)]).lazy()  # 3 s at 1000/s
    ts = results.latency_timeseries(df, 1.0)
    assert ts["t_s"].to_list() == [0.0, 1.0, 2.0] and ts["requests"].to_list() == [1000, 1000, 1000]
    h = results.latency_histogram(df, bins=20)
    assert h["count"].sum() == 3000 and h.height <= 20
    curve = results.percentile_curve(df)
    assert curve.filter(pl.col("percentile") == 50)["value_ms"].item() == pytest.approx(25.0)


def test_notebook_progress_bar():
    from perfbench.report.nb import progress_bar

    line = progress_bar({"elapsed_s": 9, "duration_s": 20, "completed_rps": 199.4, "p95_ms": 12.34,
                         "errors": {"timeout": 3}, "total": 1790}, width=20)
    assert line.startswith("[#########...........]  45%") and "p95 12.3 ms" in line and "timeout 3" in line
    assert progress_bar({"elapsed_s": 20.4, "duration_s": 20, "errors": {}, "final": True}).startswith("[" + "#" * 30)


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

values_st = st.lists(st.one_of(st.integers(0, 10**12), st.sampled_from([0, 1, 7, 1000, 10**9])), min_size=1,
                     max_size=400)


@pytest.mark.slow  # 100 examples of up to 1200 values, each sorted and compared in Python
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), values_st), min_size=1, max_size=3),
       st.sampled_from([0.0001, 0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0]))
def test_exact_percentiles_equal_the_sorted_definition(groups, p):
    rows = [(g, v) for g, vs in groups for v in vs]
    df = pl.DataFrame({"g": [g for g, _ in rows], "x": [v for _, v in rows]}, schema={"g": pl.String, "x": pl.Int64})
    got = results.exact_percentiles(df.lazy(), "x", {"q": p}, ["g"])
    for g, q in got.iter_rows():
        assert q == inverted_cdf([v for gg, v in rows if gg == g], p)
    whole = results.exact_percentiles(df.lazy(), "x", {"q": p}).item()
    assert whole == inverted_cdf([v for _, v in rows], p)
    # the in-memory strategy (one sort per group) gives the same answers
    sorted_ = results.exact_percentiles(df.lazy(), "x", {"q": p}, ["g"], in_memory=True)
    assert dict(sorted_.iter_rows()) == dict(got.iter_rows())
    assert results.exact_percentiles(df.lazy(), "x", {"q": p}, in_memory=True).item() == whole
    # ... and so does its one-group shortcut, on the rows of any one group
    for g in {g for g, _ in groups}:
        one = df.filter(pl.col("g") == g)
        fast = results.exact_percentiles(one.lazy(), "x", {"q": p}, ["g"], in_memory=True,
                                         one_group=pl.DataFrame({"g": [g]}))
        assert fast.rows() == [(g, dict(got.iter_rows())[g])] and fast.schema == sorted_.schema


def test_in_memory_and_streaming_summaries_agree():
    lat = [float(v) for v in range(1, 400)] + [5000.0, 7.5]
    df = pl.concat([frame(lat, errors=[None] * (len(lat) - 3) + ["timeout", "http_5xx", "timeout"], lag_ns=123_456),
                    frame(lat[::3], endpoint="b")]).lazy()
    streamed = results.summarize(df, duration_s=3.0, planned=len(lat))
    in_memory = results.summarize(df, duration_s=3.0, planned=len(lat), in_memory=True)
    assert in_memory == streamed and set(in_memory["endpoints"]) == {"a", "b"}
    one = frame(lat, errors=[None] * (len(lat) - 1) + ["timeout"], lag_ns=99).lazy()  # one endpoint
    assert results.summarize(one, duration_s=2.0, in_memory=True) == results.summarize(one, duration_s=2.0)
    from perfbench.rundir import REQUEST_SCHEMA

    empty = pl.from_arrow(REQUEST_SCHEMA.empty_table()).lazy()
    assert results.summarize(empty, duration_s=1, in_memory=True) == results.summarize(empty, duration_s=1)


def test_a_run_without_requests_summarises():
    from perfbench.rundir import REQUEST_SCHEMA

    s = results.summarize(pl.from_arrow(REQUEST_SCHEMA.empty_table()).lazy(), duration_s=1)
    assert s["overall"] == {"count": 0, "errors": 0} and s["endpoints"] == {}
    assert s["generator"]["recorded"] == 0 and not s["generator"]["saturated"]


def test_one_endpoint_overall_is_that_endpoint_and_matches_a_grouped_computation():
    df = frame([float(v) for v in range(1, 300)], errors=[None] * 298 + ["timeout"], lag_ns=5).lazy()
    s = results.summarize(df, duration_s=2.0)
    assert s["overall"] == s["endpoints"]["a"]
    # the same figures as computing the overall row on its own
    alone = results.endpoint_stats(df.with_columns(pl.lit("*").alias("endpoint")), 2.0).row(0, named=True)
    assert s["overall"]["latency_ms"]["p99"] == alone["p99_ms"] and s["overall"]["count"] == alone["count"] == 299
