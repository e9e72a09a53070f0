"""perfbench.report.charts: chart specs (``to_dict``), SVG rendering with vl-convert, input checks, payload size.

Frames come both hand-built and from a synthetic requests frame run through perfbench.analysis.results.
"""

from __future__ import annotations

import json
import math

import altair as alt
import polars as pl
import pytest
import vl_convert as vlc

from perfbench.analysis import results
from perfbench.report import charts
from perfbench.rundir import ERROR_KINDS

ENDPOINTS = ["GET /items", "GET /items/{id}", "POST /orders"]


def make_requests(n: int, *, duration_s: float = 10.0, error_share: float = 0.03, seed: int = 0) -> pl.DataFrame:
    """A requests.parquet-like frame: lognormal latencies (median 5 ms), evenly planned sends, some errors."""
    def uniform(k: int) -> pl.Expr:
        return pl.int_range(0, n, dtype=pl.UInt64).hash(seed * 10 + k).cast(pl.Float64) / 2.0**64

    normal = ((-2 * uniform(1).clip(1e-12, 1).log()).sqrt() * (2 * math.pi * uniform(2)).cos())
    kinds = ["timeout", "http_5xx", "connect", "check"]
    kind_idx = (uniform(4) * len(kinds)).floor().cast(pl.Int64)
    error = pl.when(uniform(3) < error_share).then(
        pl.lit(pl.Series(kinds)).get(kind_idx)).otherwise(pl.lit(None, pl.String))
    df = pl.select(
        request_id=pl.int_range(0, n, dtype=pl.Int64),
        endpoint=pl.lit(pl.Series(ENDPOINTS)).get(pl.int_range(0, n) % len(ENDPOINTS)),
        intended_ns=(pl.int_range(0, n, dtype=pl.Int64) * int(duration_s * 1e9 / n)),
        latency_ns=((normal * 0.6).exp() * 5e6).cast(pl.Int64) + 1000,
        error=error,
    )
    df = df.with_columns(
        method=pl.when(pl.col("endpoint").str.starts_with("POST")).then(pl.lit("POST")).otherwise(pl.lit("GET")),
        service_ns=(pl.col("latency_ns") * 0.9).cast(pl.Int64),
    ).with_columns(
        start_ns=pl.col("intended_ns") + pl.col("latency_ns") - pl.col("service_ns"),
        end_ns=pl.col("intended_ns") + pl.col("latency_ns"),
        status=pl.when(pl.col("error").is_in(["timeout", "connect"])).then(None)
        .when(pl.col("error") == "http_5xx").then(503).otherwise(200).cast(pl.Int16),
        error_detail=pl.when(pl.col("error").is_not_null()).then(pl.lit("synthetic")).otherwise(None),
        bytes=pl.lit(512, pl.Int64),
        worker=pl.lit(0, pl.Int16),
        vu=pl.lit(None, pl.Int32),
        stage=pl.lit(0, pl.Int16),
    )
    return df.select("request_id", "endpoint", "method", "intended_ns", "start_ns", "end_ns", "latency_ns",
                     "service_ns", "status", "error", "error_detail", "bytes", "worker", "vu", "stage")


@pytest.fixture(scope="module")
def lf() -> pl.LazyFrame:
    return make_requests(4000).lazy()


@pytest.fixture(scope="module")
def frames(lf) -> dict[str, pl.DataFrame]:
    return {
        "hist": results.latency_histogram(lf, bins=40),
        "curve": results.percentile_curve(lf),
        "curve_by": results.percentile_curve(lf, by="endpoint"),
        "ts": results.latency_timeseries(lf, 1.0),
        "tp": results.throughput_timeseries(lf, 1.0),
        "err": results.error_timeseries(lf, 1.0),
        "stats": results.endpoint_stats(lf, 10.0),
    }


def render(chart) -> str:
    svg = vlc.vegalite_to_svg(chart.to_dict(), show_warnings=True)
    assert "<svg" in svg
    return svg


def units(spec: dict) -> list[dict]:
    """The single-view specs of a chart (itself, or its layers)."""
    return spec.get("layer", [spec])


def rows(spec: dict) -> list[dict]:
    """All data rows a spec carries in its datasets."""
    return [r for values in spec.get("datasets", {}).values() for r in values]


def colour(unit: dict) -> tuple[list, list]:
    scale = unit["encoding"]["color"]["scale"]
    return scale["domain"], scale["range"]


def mark(unit: dict) -> str:
    m = unit["mark"]
    return m["type"] if isinstance(m, dict) else m


def axis_title(channel: dict) -> str:
    """An encoding channel's axis title (given on the channel or on its axis)."""
    return channel.get("title") or channel["axis"]["title"]


def data_unit(spec: dict) -> dict:
    """The one layer of a chart that carries an encoding on t_s or value_ms (not a warm-up band or a rule)."""
    return [u for u in units(spec) if "encoding" in u and u["encoding"].get("x", {}).get("field") not in ("a", "x")][0]


def title(spec: dict) -> str:
    t = spec["title"]
    return t["text"] if isinstance(t, dict) else t


# --- the palette ------------------------------------------------------------------------------------------

def test_palette_names_every_series_outcome_and_error_kind():
    for name in ("p50", "p95", "p99", "max", "ok", "error", "planned", *ERROR_KINDS):
        assert charts.PALETTE[name].startswith("#")
    kinds = [charts.PALETTE[k] for k in ERROR_KINDS]
    assert len(set(kinds)) == len(kinds), "two error kinds share a colour"


# --- latency histogram ------------------------------------------------------------------------------------

def test_histogram_of_log_bins_has_a_log_axis(frames):
    spec = charts.latency_histogram(frames["hist"]).to_dict()
    assert mark(spec) == "bar"
    enc = spec["encoding"]
    assert enc["x"]["field"] == "bin_start" and enc["x"]["bin"] == "binned"
    assert enc["x"]["scale"]["type"] == "log"
    assert enc["x2"]["field"] == "bin_end"
    assert enc["y"]["field"] == "count"
    assert "ms" in title(spec) and "ms" in axis_title(enc["x"])
    assert (spec["width"], spec["height"]) == (charts.WIDTH, charts.HEIGHT)
    assert len(rows(spec)) == frames["hist"].height
    render(charts.latency_histogram(frames["hist"]))


def test_histogram_of_linear_bins_has_a_linear_axis(lf):
    hist = results.latency_histogram(lf, bins=30, log=False)
    spec = charts.latency_histogram(hist, width=300, height=100).to_dict()
    assert spec["encoding"]["x"]["scale"].get("type") != "log"
    assert (spec["width"], spec["height"]) == (300, 100)


def test_histogram_marks_percentiles_with_rules():
    hist = pl.DataFrame({"bin_start": [1.0, 2.0, 4.0], "bin_end": [2.0, 4.0, 8.0], "count": [5, 20, 3],
                         "share": [5 / 28, 20 / 28, 3 / 28]})
    chart = charts.latency_histogram(hist, percentiles={"p50": 3.1, "p99": 7.5})
    spec = chart.to_dict()
    assert [mark(u) for u in units(spec)] == ["bar", "rule", "text"]
    rule = units(spec)[1]
    assert rule["encoding"]["x"]["field"] == "value_ms"
    assert colour(rule) == (["p50", "p99"], [charts.PALETTE["p50"], charts.PALETTE["p99"]])
    assert {r["series"] for r in rows(spec) if "series" in r} == {"p50", "p99"}
    assert "p99 7.5 ms" in render(chart)


def test_histogram_of_an_empty_run_says_so():
    empty = results.latency_histogram(make_requests(10).clear().lazy())
    spec = charts.latency_histogram(empty).to_dict()
    assert mark(spec) == "text" and rows(spec) == [{"message": "no requests"}]


# --- percentile curve -------------------------------------------------------------------------------------

def test_percentile_curve_has_a_nines_axis_labelled_as_percentiles(frames):
    chart = charts.percentile_curve(frames["curve"])
    spec = chart.to_dict()
    assert mark(spec) == "line"
    x = spec["encoding"]["x"]
    assert x["field"] == "nines" and x["type"] == "quantitative"
    values = x["axis"]["values"]
    assert values[0] == 0 and {1.0, 2.0, 3.0} <= set(values)  # 4000 rows resolve p99.9, not p99.99
    assert "datum.value" in x["axis"]["labelExpr"]
    assert spec["encoding"]["y"]["field"] == "value_ms" and "ms" in axis_title(spec["encoding"]["y"])
    assert spec["encoding"]["y"]["scale"]["type"] == "log"  # the latency axis convention
    assert "ms" in title(spec)
    svg = render(chart)
    for label in (">0<", ">50<", ">90<", ">99<", ">99.9<"):
        assert label in svg


def test_percentile_curve_by_endpoint_has_one_coloured_line_each_and_log_option(frames):
    spec = charts.percentile_curve(frames["curve_by"], by="endpoint", log_y=True).to_dict()
    assert spec["encoding"]["color"]["field"] == "endpoint"
    assert colour(spec)[0] == sorted(ENDPOINTS)
    assert spec["encoding"]["y"]["scale"]["type"] == "log"
    render(charts.percentile_curve(frames["curve_by"], by="endpoint"))


def test_percentile_curve_of_groups_without_by_asks_for_by(frames):
    with pytest.raises(ValueError, match="by=.*endpoint"):
        charts.percentile_curve(frames["curve_by"])


def test_percentile_curve_of_an_empty_run_says_so():
    curve = results.percentile_curve(make_requests(10).clear().lazy())  # a frame with no columns
    spec = charts.percentile_curve(curve).to_dict()
    assert mark(spec) == "text"


# --- latency over time ------------------------------------------------------------------------------------

def test_latency_over_time_is_long_form_lines_per_percentile(frames):
    chart = charts.latency_over_time(frames["ts"])
    spec = chart.to_dict()
    assert mark(spec) == "line"
    enc = spec["encoding"]
    assert enc["x"]["field"] == "t_s" and axis_title(enc["x"]) == "time since start (s)"
    assert enc["y"]["field"] == "value_ms" and "ms" in axis_title(enc["y"])
    assert enc["y"]["scale"]["type"] == "log"
    assert colour(spec) == (["p50", "p95", "p99", "max"], [charts.PALETTE[s] for s in ("p50", "p95", "p99", "max")])
    (faint,) = enc["opacity"]["condition"]  # max is lighter
    assert "max" in faint["test"] and faint["value"] < enc["opacity"]["value"]
    data = rows(spec)
    assert {r["series"] for r in data} == {"p50", "p95", "p99", "max"}
    assert len(data) == 4 * frames["ts"].height
    assert "ms" in title(spec)
    render(chart)


def test_latency_over_time_turns_nan_into_null():
    ts = pl.DataFrame({"t_s": [0.0, 1.0], "p50_ms": [1.0, 2.0], "p95_ms": [3.0, float("nan")],
                       "p99_ms": [4.0, 5.0], "max_ms": [9.0, 9.5]})
    spec = charts.latency_over_time(ts).to_dict()
    assert "NaN" not in json.dumps(spec)
    render(charts.latency_over_time(ts))


# --- throughput -------------------------------------------------------------------------------------------

def test_throughput_is_a_stacked_area_by_outcome(frames):
    chart = charts.throughput_over_time(frames["tp"])
    spec = chart.to_dict()
    assert mark(spec) == "area"
    assert spec["encoding"]["y"]["stack"] == "zero"
    assert colour(spec) == (["ok", "error"], [charts.PALETTE["ok"], charts.PALETTE["error"]])
    assert axis_title(spec["encoding"]["x"]) == "time since start (s)"
    render(chart)


def test_throughput_with_a_planned_rate_adds_a_dashed_line(frames):
    planned = pl.DataFrame({"t_s": [0.0, 10.0], "rps": [400.0, 400.0]})
    chart = charts.throughput_over_time(frames["tp"], planned=planned)
    spec = chart.to_dict()
    area, line = units(spec)
    assert (mark(area), mark(line)) == ("area", "line")
    assert line["mark"]["strokeDash"]
    assert colour(line)[0] == ["ok", "error", "planned"] == colour(area)[0]
    render(chart)


def test_throughput_draws_empty_buckets_as_zero():
    tp = pl.DataFrame({"t_s": [0.0, 0.0, 1.0, 4.0], "outcome": ["ok", "error", "ok", "ok"],
                       "rps": [10.0, 1.0, 12.0, 11.0]})
    data = pl.DataFrame(rows(charts.throughput_over_time(tp).to_dict()))
    ok = dict(data.filter(pl.col("outcome") == "ok").select("t_s", "rps").iter_rows())
    assert ok == {0.0: 10.0, 1.0: 12.0, 2.0: 0.0, 3.0: 0.0, 4.0: 11.0, 5.0: 11.0}  # 5.0 closes the last step
    assert data.filter(pl.col("outcome") == "error")["rps"].sum() == 1.0


# --- errors -----------------------------------------------------------------------------------------------

def test_errors_over_time_are_stacked_bars_per_kind(frames):
    chart = charts.errors_over_time(frames["err"])
    spec = chart.to_dict()
    assert mark(spec) == "bar"
    enc = spec["encoding"]
    assert enc["x"]["bin"] == "binned" and enc["x2"]["field"] == "t_end"
    assert enc["y"]["field"] == "rate" and enc["y"]["title"] == "errors per second"
    domain, rng = colour(spec)
    assert domain == ["timeout", "connect", "http_5xx", "check"]  # the order of rundir.ERROR_KINDS
    assert rng == [charts.PALETTE[k] for k in domain]
    render(chart)


def test_errors_over_time_divides_by_the_bucket_width():
    err = pl.DataFrame({"t_s": [0.0, 5.0], "error": ["timeout", "brand_new_kind"], "errors": [10, 4]})
    spec = charts.errors_over_time(err, every_s=5.0).to_dict()
    assert [(r["t_s"], r["t_end"], r["rate"]) for r in rows(spec)] == [(0.0, 5.0, 2.0), (5.0, 10.0, 0.8)]
    assert colour(spec)[0] == ["timeout", "brand_new_kind"]  # unknown kinds still get a colour


def test_a_run_without_errors_gives_a_no_errors_chart():
    err = results.error_timeseries(make_requests(500, error_share=0).lazy())
    assert err.height == 0
    chart = charts.errors_over_time(err)
    spec = chart.to_dict()
    assert mark(spec) == "text" and rows(spec) == [{"message": "no errors"}]
    assert "no errors" in render(chart)


# --- per endpoint -----------------------------------------------------------------------------------------

def test_endpoint_latency_dots_show_percentiles_per_endpoint_on_a_log_axis(frames):
    chart = charts.endpoint_latency_bars(frames["stats"])
    spec = chart.to_dict()
    rule, dots = units(spec)
    assert (mark(rule), mark(dots)) == ("rule", "point")
    enc = dots["encoding"]
    assert enc["y"]["field"] == "endpoint" and enc["y"]["sort"] == ENDPOINTS
    assert enc["x"]["field"] == "value_ms" and "ms" in axis_title(enc["x"]) and enc["x"]["scale"]["type"] == "log"
    assert colour(dots)[0] == ["p50", "p95", "p99"]
    assert len(rows(spec)) == 3 * len(ENDPOINTS)
    render(chart)


def test_endpoint_latency_bars_take_the_endpoint_table_too():
    table = pl.DataFrame({"endpoint": ["GET /a", "ALL"], "count": [10, 10], "p50_ms": [1.0, 1.0],
                          "p95_ms": [2.0, 2.0], "p99_ms": [3.0, 3.0], "max_ms": [4.0, 4.0]})
    spec = charts.endpoint_latency_bars(table, series=("p50", "p99", "max")).to_dict()
    assert colour(units(spec)[1])[0] == ["p50", "p99", "max"]
    render(charts.endpoint_latency_bars(table))


# --- overview, input checks, size, purity -----------------------------------------------------------------

def test_overview_stacks_the_main_charts(frames):
    chart = charts.overview(frames["hist"], frames["ts"], frames["tp"], frames["err"],
                            percentiles={"p50": 5.0, "p99": 20.0})
    spec = chart.to_dict()
    assert len(spec["vconcat"]) == 4
    render(chart)


def test_overview_takes_the_bucket_width_from_the_throughput_frame(lf):
    tp, err = results.throughput_timeseries(lf, 5.0), results.error_timeseries(lf, 5.0)
    spec = charts.overview(results.latency_histogram(lf), results.latency_timeseries(lf, 5.0), tp, err).to_dict()
    assert all(r["t_end"] - r["t_s"] == 5.0 for r in rows(spec) if "t_end" in r)
    total = sum(r["rate"] for r in rows(spec) if "rate" in r) * 5.0
    assert total == pytest.approx(err["errors"].sum())


def test_a_bucket_width_must_be_positive(frames):
    with pytest.raises(ValueError, match="every_s"):
        charts.errors_over_time(frames["err"], every_s=0)
    with pytest.raises(ValueError, match="every_s"):
        charts.throughput_over_time(frames["tp"], every_s=-1.0)


@pytest.mark.parametrize(("call", "frame", "missing", "producer"), [
    (charts.latency_histogram, {"bin_start": [1.0], "count": [1]}, "bin_end", "latency_histogram"),
    (charts.percentile_curve, {"percentile": [50.0], "value_ms": [1.0]}, "nines", "percentile_curve"),
    (charts.latency_over_time, {"t_s": [0.0], "p50_ms": [1.0], "p95_ms": [1.0], "max_ms": [1.0]}, "p99_ms",
     "latency_timeseries"),
    (charts.throughput_over_time, {"t_s": [0.0], "rps": [1.0]}, "outcome", "throughput_timeseries"),
    (charts.errors_over_time, {"t_s": [0.0], "error": ["timeout"]}, "errors", "error_timeseries"),
    (charts.endpoint_latency_bars, {"p50_ms": [1.0], "p95_ms": [1.0], "p99_ms": [1.0]}, "endpoint",
     "endpoint_stats"),
])
def test_a_missing_column_names_itself_and_the_producer(call, frame, missing, producer):
    with pytest.raises(ValueError, match=rf"missing column\(s\) {missing}\b.*results\.{producer}"):
        call(pl.DataFrame(frame))


def test_the_wrong_frame_is_refused(frames, lf):
    with pytest.raises(ValueError, match="p50_ms.*latency_timeseries"):
        charts.latency_over_time(frames["tp"])
    with pytest.raises(TypeError, match="collect"):
        charts.latency_histogram(lf)
    with pytest.raises(ValueError, match="planned"):
        charts.throughput_over_time(frames["tp"], planned=pl.DataFrame({"t_s": [0.0]}))


def test_charting_a_200k_request_run_carries_only_aggregates():
    big = make_requests(200_000, duration_s=60.0, seed=7).lazy()
    built = [
        charts.latency_histogram(results.latency_histogram(big), percentiles={"p50": 5.0, "p99": 20.0}),
        charts.percentile_curve(results.percentile_curve(big, by="endpoint"), by="endpoint"),
        charts.latency_over_time(results.latency_timeseries(big)),
        charts.throughput_over_time(results.throughput_timeseries(big)),
        charts.errors_over_time(results.error_timeseries(big)),
        charts.endpoint_latency_bars(results.endpoint_stats(big, 60.0)),
    ]
    for chart in built:
        spec = chart.to_dict()
        text = json.dumps(spec)
        assert len(rows(spec)) < 500
        assert len(text) < 100_000
        assert "request_id" not in text and "intended_ns" not in text
    render(alt.vconcat(*built).resolve_scale(color="independent"))


def test_vega_lite_compiles_every_chart_without_warnings(frames, capfd):
    planned = pl.DataFrame({"t_s": [0.0, 10.0], "rps": [400.0, 400.0]})
    for chart in (
        charts.overview(frames["hist"], frames["ts"], frames["tp"], frames["err"], planned=planned,
                        percentiles={"p50": 5.0, "p99": 20.0}),
        charts.percentile_curve(frames["curve_by"], by="endpoint", log_y=True),
        charts.latency_over_time(frames["ts"], log_y=True),
        charts.endpoint_latency_bars(frames["stats"]),
        charts.errors_over_time(frames["err"].clear()),
    ):
        render(chart)
    assert "WARN" not in capfd.readouterr().err


def test_charts_leave_altair_global_state_alone(frames):
    before = (alt.renderers.active, alt.data_transformers.active)
    charts.overview(frames["hist"], frames["ts"], frames["tp"], frames["err"]).to_dict()
    charts.percentile_curve(frames["curve"]).to_dict()
    charts.endpoint_latency_bars(frames["stats"]).to_dict()
    assert (alt.renderers.active, alt.data_transformers.active) == before


def test_percentile_curves_per_endpoint_and_overall_reach_as_far_as_their_counts_allow():
    lf = make_requests(1500).lazy()  # 500 per endpoint
    by, overall = results.percentile_curve(lf, by="endpoint"), results.percentile_curve(lf)
    ends = by.sort("nines").group_by("endpoint").last()
    maxima = lf.group_by("endpoint").agg((pl.col("latency_ns").max() / 1e6).alias("max_ms")).collect()
    joined = ends.join(maxima, on="endpoint")
    assert (joined["value_ms"] == joined["max_ms"]).all()  # each curve ends at its slowest request...
    assert joined["percentile"].to_list() == pytest.approx([100 * (1 - 1 / 500)] * 3)  # ...at p99.8 for 500
    assert overall["percentile"].max() == pytest.approx(100 * (1 - 1 / 1500))
    spec = charts.percentile_curve(by, by="endpoint", overall=overall).to_dict()
    assert colour(spec)[0] == [*sorted(ENDPOINTS), "all requests"]
    assert colour(spec)[1][-1] == "#333333"  # all requests: the dark, thick line
    assert "all requests" in spec["encoding"]["strokeWidth"]["condition"][0]["test"]
    assert {r["endpoint"] for r in rows(spec)} == {*ENDPOINTS, "all requests"}
    assert 3.0 in spec["encoding"]["x"]["axis"]["values"]  # 1,500 requests resolve p99.9, so it is a tick
    assert ">99.9<" in render(charts.percentile_curve(by, by="endpoint", overall=overall))


def test_ecdf_curves_close_at_100_percent_at_their_slowest_request():
    both = pl.concat([make_requests(13).lazy().with_columns(label=pl.lit("cold")),
                      make_requests(40, seed=3).lazy().with_columns(label=pl.lit("warm"))])
    spec = charts.ecdf_overlay(results.percentile_curve(both, by="label")).to_dict()
    data = pl.DataFrame(rows(spec))
    tops = data.filter(pl.col("percentile") == 100.0).sort("label")
    maxima = both.group_by("label").agg(pl.col("latency_ns").max() / 1e6).sort("label").collect()
    assert tops["value_ms"].to_list() == maxima["latency_ns"].to_list()
