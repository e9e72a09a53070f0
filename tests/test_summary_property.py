"""Every number in summary.json, checked against its recomputation from the raw rows.

Hypothesis generates row sets over several endpoints, error kinds and statuses; the summary
(``results.summarize``, what ``summary.json``, ``perfbench summary`` and the report headline show)
must agree with a plain Polars recomputation: counts, errors, errors by kind (overall and per
endpoint), status counts, bytes, req/s and the exact percentiles as README defines them (the
smallest value with at least p of all requests at or below it).
"""

from __future__ import annotations

import math
from collections import Counter

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from perfbench.analysis import results

ENDPOINTS = ["list", "detail", "search"]
OUTCOMES = [(200, None), (404, "http_4xx"), (500, "http_5xx"), (503, "http_5xx"), (None, "connect"),
            (None, "timeout"), (200, "check"), (None, "reset")]

row = st.tuples(st.sampled_from(ENDPOINTS), st.integers(1, 5_000_000_000), st.sampled_from(OUTCOMES),
                st.integers(0, 10_000))


def frame(rows: list[tuple]) -> pl.DataFrame:
    n = len(rows)
    return pl.DataFrame({
        "endpoint": [r[0] for r in rows],
        "intended_ns": [i * 1_000_000 for i in range(n)],
        "start_ns": [i * 1_000_000 for i in range(n)],
        "end_ns": [i * 1_000_000 + r[1] for i, r in enumerate(rows)],
        "latency_ns": [r[1] for r in rows],
        "service_ns": [r[1] for r in rows],
        "status": pl.Series([r[2][0] for r in rows], dtype=pl.Int32),
        "error": pl.Series([r[2][1] for r in rows], dtype=pl.String),
        "bytes": [r[3] for r in rows],
    })


def exact(values: list[int], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(p * len(ordered)) - 1, 0)] / 1e6


def expected_block(df: pl.DataFrame, duration_s: float) -> dict:
    lat = df["latency_ns"].to_list()
    kinds = Counter(e for e in df["error"].to_list() if e is not None)
    return {
        "count": df.height,
        "errors": sum(kinds.values()),
        "errors_by_kind": dict(sorted(kinds.items())),
        "bytes": df["bytes"].sum(),
        "rps": df.height / duration_s,
        "latency_ms": {name: exact(lat, p) for name, p in results.PERCENTILES.items()},
    }


def check_block(got: dict, want: dict) -> None:
    for key in ("count", "errors", "errors_by_kind", "bytes"):
        assert got[key] == want[key], key
    assert math.isclose(got["rps"], want["rps"], rel_tol=1e-6)
    for name, value in want["latency_ms"].items():
        assert math.isclose(got["latency_ms"][name], value, rel_tol=1e-9, abs_tol=1e-6), name


@settings(max_examples=60, deadline=None)
@given(st.lists(row, min_size=1, max_size=300), st.booleans())
def test_every_summary_number_is_its_recomputation_from_the_rows(rows, in_memory):
    df = frame(rows)
    duration_s = 10.0
    summary = results.summarize(df.lazy(), duration_s=duration_s, in_memory=in_memory)

    check_block(summary["overall"], expected_block(df, duration_s))
    assert set(summary["endpoints"]) == set(df["endpoint"])
    for endpoint, got in summary["endpoints"].items():
        check_block(got, expected_block(df.filter(pl.col("endpoint") == endpoint), duration_s))
    statuses = Counter(str(s) for s in df["status"].to_list())
    assert summary["status_counts"] == dict(statuses)
    # the overall errors by kind are the endpoints' added up
    added: Counter[str] = Counter()
    for got in summary["endpoints"].values():
        added.update(got["errors_by_kind"])
    assert summary["overall"]["errors_by_kind"] == dict(sorted(added.items()))


def test_errors_of_one_kind_on_several_endpoints_add_up():
    """The case that was wrong: 3 + 2 http_5xx on two endpoints is 5 overall, not the last endpoint's 2."""
    rows = [("a", 1_000_000, (500, "http_5xx"), 0)] * 3 + [("b", 1_000_000, (500, "http_5xx"), 0)] * 2
    summary = results.summarize(frame(rows).lazy(), duration_s=1.0)
    assert summary["overall"]["errors_by_kind"] == {"http_5xx": 5}
    assert summary["endpoints"]["a"]["errors_by_kind"] == {"http_5xx": 3}
