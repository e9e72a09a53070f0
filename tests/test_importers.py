"""Importers on real Locust, k6 and pytest-benchmark files produced against the demo target (see
tests/data/importers/README.md), and the comparisons made from them."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from perfbench import compare as cmp
from perfbench import importers
from perfbench.analysis.results import endpoint_stats
from perfbench.errors import ConfigError
from perfbench.rundir import REQUEST_SCHEMA

DATA = Path(__file__).parent / "data" / "importers"
ENDPOINTS = ["health", "posts_eager", "posts_naive"]


def _is_requests_frame(df: pl.DataFrame) -> None:
    assert df.columns == REQUEST_SCHEMA.names
    assert df["latency_ns"].min() > 0 and df["intended_ns"].min() == 0


@pytest.mark.parametrize("spec", ["locust_base", "locust_base_stats.csv", "locust_base_requests.csv"])
def test_locust_with_the_request_log(spec):
    m = importers.load(DATA / spec)
    assert m.source == "locust" and m.has_samples and m.endpoints() == ENDPOINTS
    _is_requests_frame(m.requests)
    stats = endpoint_stats(m.requests.lazy(), m.duration_s)  # perfbench's own statistics work on it
    assert stats["count"].sum() == m.requests.height
    if m.summary is not None:  # Locust's own aggregates agree on the counts
        per = dict(zip(m.summary["endpoint"], m.summary["count"], strict=True))
        assert 0 < per["ALL"] <= m.requests.height  # Locust may write _stats.csv before the last requests end


def test_locust_stats_only_is_a_rounded_summary(tmp_path):
    for f in ("locust_base_stats.csv", "locust_slow_stats.csv", "locust_base_stats_history.csv"):
        shutil.copy(DATA / f, tmp_path / f)
    base, cur = importers.load(tmp_path / "locust_base"), importers.load(tmp_path / "locust_slow_stats.csv")
    assert not base.has_samples and base.rounding == "locust"
    assert base.summary.filter(pl.col("endpoint") == "ALL").height == 1
    c = cmp.compare(base, cur)
    eager = {r.stat: r for r in c.rows if r.endpoint == "posts_eager"}
    assert eager["p50"].interval == "rounding bounds" and eager["p50"].verdict == cmp.REGRESSION
    assert "rounded" in eager["p50"].note
    assert eager["rps"].interval == "Poisson CI"
    assert any("rounded to ~2 significant digits" in n for n in c.notes)


def test_k6_json_samples():
    m = importers.load(DATA / "k6_base_samples.json.gz")
    assert m.source == "k6" and m.endpoints() == ENDPOINTS
    _is_requests_frame(m.requests)
    assert m.requests["status"].unique().to_list() == [200]
    assert 3.5 < m.duration_s < 5


def test_k6_summary_export():
    m = importers.load(DATA / "k6_base_summary.json")
    assert not m.has_samples and m.endpoints() == ["ALL"]
    row = m.summary.row(0, named=True)
    assert row["count"] > 50 and row["p95_ms"] >= row["p50_ms"] > 0 and row["errors"] == 0


def test_pytest_benchmark_with_data():
    m = importers.load(DATA / "pytest_benchmark_base.json")
    assert m.source == "pytest-benchmark" and m.endpoints() == ["test_json_dumps", "test_sort_by_score"]
    assert m.machine["node"] and m.machine["cpu_count"]
    assert m.duration_s is None  # rounds run back to back: no throughput


def test_pytest_benchmark_without_data(tmp_path):
    import json

    doc = json.loads((DATA / "pytest_benchmark_base.json").read_text())
    for b in doc["benchmarks"]:
        b["stats"].pop("data")
    (tmp_path / "pb.json").write_text(json.dumps(doc))
    m = importers.load(tmp_path / "pb.json")
    assert not m.has_samples and m.summary["p50_ms"].min() > 0
    c = cmp.compare(m, importers.load(DATA / "pytest_benchmark_slow.json"))
    assert {r.interval for r in c.rows} == {"point estimate"}


def test_real_locust_and_k6_files_are_compared():
    """Same build: no regression. Slowed build (+50 ms on posts_eager): a regression there alone."""
    for tool, base in (("locust", "locust_base"), ("k6", "k6_base_samples.json.gz")):
        same = "locust_same" if tool == "locust" else "k6_same_samples.json.gz"
        slow = "locust_slow" if tool == "locust" else "k6_slow_samples.json.gz"
        b = cmp.load_side(DATA / base)
        c_same = cmp.compare(b, cmp.load_side(DATA / same))
        assert c_same.exit_code == 0 and not c_same.regressions, cmp.to_text(c_same)
        c_slow = cmp.compare(b, cmp.load_side(DATA / slow))
        assert {r.endpoint for r in c_slow.regressions} == {"posts_eager"}, cmp.to_text(c_slow)
        assert any("machine unknown" in w for w in c_slow.warnings)


def test_micro_benchmarks_compared_with_the_same_statistics():
    b = cmp.load_side(DATA / "pytest_benchmark_base.json")
    same = cmp.compare(b, cmp.load_side(DATA / "pytest_benchmark_same.json"), rules=[cmp.parse_rule("p50:+10%")])
    slow = cmp.compare(b, cmp.load_side(DATA / "pytest_benchmark_slow.json"), rules=[cmp.parse_rule("p50:+10%")])
    assert {r.interval for r in slow.rows if r.stat == "p50"} == {"bootstrap CI"}
    assert not same.regressions, cmp.to_text(same)
    # 1.3x the work: the fast, many-round benchmark is caught; none is called an improvement
    assert "test_sort_by_score" in {r.endpoint for r in slow.regressions}, cmp.to_text(slow)
    assert not slow.improvements
    assert not [w for w in slow.warnings if "DIFFERENT" in w]  # same machine, read from machine_info


def test_unknown_files_are_refused(tmp_path):
    (tmp_path / "x.json").write_text("{}")
    for p in (tmp_path / "x.json", tmp_path / "missing.csv", tmp_path):
        with pytest.raises(ConfigError):
            importers.load(p)
