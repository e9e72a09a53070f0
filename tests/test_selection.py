"""Requests picked with a brush: the pure interval-to-rows function against a recomputation, the SQL that
comes with them, the brushable chart, and the Selection over a stand-in widget (no browser, no anywidget)."""

from __future__ import annotations

import types

import polars as pl
import pytest
from test_charts import make_requests

from perfbench.report import selection
from perfbench.report.selection import Selection, brush_chart, brushed, points


@pytest.fixture(scope="module")
def requests() -> pl.DataFrame:
    return make_requests(2000, duration_s=20.0)


@pytest.fixture(scope="module")
def queries(requests) -> pl.DataFrame:
    ids = requests["request_id"].to_list()[::3]
    return pl.DataFrame({"request_id": [i for i in ids for _ in range(2)],
                         "endpoint": ["r"] * 2 * len(ids),
                         "fingerprint": ["f1", "f2"] * len(ids),
                         "statement": ["SELECT * FROM posts WHERE id = ?", "SELECT * FROM users WHERE id = ?"]
                         * len(ids),
                         "duration_ns": [1_000_000, 500_000] * len(ids),
                         "t_ns": [t for i in ids for t in (i * 10, i * 10 + 1)]})


def test_a_brush_selects_exactly_the_requests_inside_it_slowest_first(requests):
    got = brushed(requests.lazy(), {"t_s": [12.0, 4.0], "latency_ms": [3.0, 8.0]})  # ends in any order
    t, ms = requests["intended_ns"] / 1e9, requests["latency_ns"] / 1e6
    want = requests.filter((t >= 4.0) & (t <= 12.0) & (ms >= 3.0) & (ms <= 8.0))
    assert 0 < got.height < requests.height
    assert sorted(got["request_id"]) == sorted(want["request_id"])
    assert got["latency_ms"].is_sorted(descending=True)
    assert set(got.columns) >= {"request_id", "endpoint", "t_s", "latency_ms", "status", "error"}


def test_a_time_window_alone_and_no_brush(requests):
    window = brushed(requests, {"t_s": [0.0, 1.0]})
    assert window.height == (requests["intended_ns"] <= 1e9).sum()
    assert brushed(requests, None).height == brushed(requests, {}).height == requests.height


def test_picked_requests_carry_their_sql(requests, queries):
    got = brushed(requests, {"t_s": [0.0, 2.0]}, queries=queries)
    with_sql = got.filter(pl.col("request_id") % 3 == 0)
    without = got.filter(pl.col("request_id") % 3 != 0)
    assert with_sql.height and without.height
    assert set(with_sql["queries"]) == {2} and with_sql["db_ms"].to_list() == [1.5] * with_sql.height
    assert with_sql["sql"][0].to_list() == ["SELECT * FROM posts WHERE id = ?", "SELECT * FROM users WHERE id = ?"]
    assert set(without["queries"]) == {0} and all(s.len() == 0 for s in without["sql"])


@pytest.mark.parametrize("bad", [{"t_s": [1.0]}, {"t_s": ["a", "b"]}, {"t_s": [0, float("nan")]}, {"when": [0, 1]}])
def test_a_malformed_brush_is_refused_naming_the_field(requests, bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        brushed(requests, bad)


def test_the_chart_to_brush_keeps_the_tail_and_names_its_brush(requests):
    few = points(requests, max_points=300)
    assert few.height <= 300
    slowest = requests.sort("latency_ns", descending=True)["request_id"].head(60).to_list()
    assert set(slowest) <= set(few["request_id"])  # the slowest are always there to pick
    spec = brush_chart(requests, domain=(0.0, 20.0), max_points=300).to_dict()
    (param,) = spec["params"]
    assert param["name"] == selection.BRUSH and param["select"]["encodings"] == ["x", "y"]
    assert spec["encoding"]["x"]["field"] == "t_s" and spec["encoding"]["y"]["field"] == "latency_ms"
    assert "description" in spec


def test_a_selection_reads_the_widgets_brush(requests, tmp_path):
    widget = types.SimpleNamespace(selections=types.SimpleNamespace(pick=types.SimpleNamespace(
        value={"t_s": [5.0, 6.0], "latency_ms": [0.0, 1e9]})))
    run = types.SimpleNamespace(path=tmp_path, requests=requests.lazy())
    pick = Selection(run, widget)  # type: ignore[arg-type]
    assert pick.interval == {"t_s": [5.0, 6.0], "latency_ms": [0.0, 1e9]}
    assert sorted(pick.requests()["request_id"]) == sorted(brushed(requests, pick.interval)["request_id"])
