"""The summary's two-pass statistics (analysis/rowstats.py) against sorting, on awkward values."""

from __future__ import annotations

import math
from unittest.mock import patch

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from perfbench.analysis import rowstats

PS = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "p99_9": 0.999, "p0": 0.0001}


def ranked(values: list[int], p: float) -> int:
    s = sorted(values)
    return s[max(math.ceil(float(len(s)) * p), 1) - 1]


def test_buckets_never_decrease_and_small_integers_have_their_own():
    rng = np.random.default_rng(3)
    v = np.concatenate([rng.integers(-2**63, 2**63 - 1, 20_000, dtype=np.int64),
                        rng.integers(-1000, 10**6, 20_000), 2 ** np.arange(63, dtype=np.int64),
                        2 ** np.arange(1, 63, dtype=np.int64) - 1,
                        np.array([-2**63, -1, 0, 1, 2**53, 2**53 + 1, 2**63 - 1], np.int64)])
    v.sort()
    b = rowstats.bucket_of(v)
    assert (np.diff(b) >= 0).all() and b.min() == 0 and b.max() < rowstats.NB
    ints = np.arange(0, 5000, dtype=np.int64)
    for x, bx in zip(ints.tolist(), rowstats.bucket_of(ints).tolist(), strict=True):
        one = rowstats.singleton(bx, nonnegative=True)
        assert one is None or one == x  # a bucket said to hold one integer holds exactly that one
    assert all(rowstats.singleton(int(bx), True) == x for x, bx in zip(range(128), rowstats.bucket_of(ints[:128]), strict=True))


def table(rows: list[tuple[str, int | None, int | None, str | None, int]]) -> pa.Table:
    n = len(rows)
    return pa.table({
        "endpoint": pa.array([r[0] for r in rows], pa.string()),
        "error": pa.array([r[3] for r in rows], pa.string()),
        "status": pa.array([r[2] for r in rows], pa.int16()),
        "bytes": pa.array([r[4] for r in rows], pa.int64()),
        "latency_ns": pa.array([r[1] for r in rows], pa.int64()),
        "service_ns": pa.array([r[1] for r in rows], pa.int64()),
        "intended_ns": pa.array(range(n), pa.int64()),
        "start_ns": pa.array([i + (r[4] % 5) - 1 for i, r in enumerate(rows)], pa.int64()),
        "end_ns": pa.array([i + 10 for i in range(n)], pa.int64()),
    })


value = st.one_of(st.integers(-5, 300), st.integers(0, 10**12), st.integers(2**62, 2**63 - 1),
                  st.sampled_from([0, 1, 127, 128, 129, 10**9]))
row = st.tuples(st.sampled_from(["a", "b", "c", "d"]), value, st.sampled_from([200, 404, 500, None, 1500]),
                st.sampled_from([None, None, "timeout", "http_5xx"]), st.integers(0, 2**40))


# how pass 1 keeps values: all of them (a short run), in windows re-drawn from the first rows on, or
# windows over a tiny budget (every bucket read again in pass 2)
MODES = {"keep all": (10**9, 10**9), "windows": (1, 10**9), "over budget": (1, 3)}


@settings(max_examples=120, deadline=None)
@given(st.lists(row, min_size=1, max_size=250), st.integers(1, 60), st.sampled_from(sorted(MODES)))
def test_every_statistic_is_the_sorted_definition(rows, batch_rows, mode):
    first, budget = MODES[mode]
    with patch.object(rowstats, "FIRST_CHECKPOINT", first), patch.object(rowstats, "KEEP_BUDGET", budget):
        stats = rowstats.compute(rowstats.table_batches(table(rows), batch_rows), PS, need_end=True)
    groups = {e: [r for r in rows if r[0] == e] for e in {r[0] for r in rows}}
    assert stats.endpoints == sorted(groups)
    for name, rs in [*groups.items(), ("*", rows)]:
        got = stats.overall if name == "*" else stats.per[name]
        lat = [r[1] for r in rs]
        assert got["count"] == len(rs) and got["bytes"] == sum(r[4] for r in rs)
        assert got["errors"] == sum(r[3] is not None for r in rs)
        want = {k: ranked(lat, p) for k, p in PS.items()} | {"max": max(lat), "min": min(lat)}
        assert got["latency"] == want
        assert got["service"] == {"p50": ranked(lat, 0.5), "p99": ranked(lat, 0.99)}
        assert got["mean_ns"] == sum(lat) / len(lat)
    lag = [max((i + (r[4] % 5) - 1) - i, 0) for i, r in enumerate(rows)]
    assert stats.lag == {"p50": ranked(lag, 0.5), "p99": ranked(lag, 0.99), "max": max(lag), "n": len(rows)}
    statuses: dict[int | None, int] = {}
    for r in rows:
        statuses[r[2]] = statuses.get(r[2], 0) + 1
    assert dict(stats.statuses) == statuses and stats.max_end_ns == len(rows) + 9
    kinds: dict[tuple[str, str], int] = {}
    for r in rows:
        if r[3]:
            kinds[(r[0], r[3])] = kinds.get((r[0], r[3]), 0) + 1
    assert stats.kinds == kinds


def test_null_latencies_are_counted_but_not_ranked_and_a_constant_column_is_not_kept_row_by_row():
    rows = [("a", 5_000_000, 200, None, 1)] * 5000 + [("a", None, None, "connect", 0)] * 3
    stats = rowstats.compute(rowstats.table_batches(table(rows), 1024), {"p50": 0.5})
    a = stats.per["a"]
    assert a["count"] == 5003 and a["errors"] == 3 and a["latency"] == {"p50": 5_000_000, "max": 5_000_000,
                                                                         "min": 5_000_000}
    assert dict(stats.statuses) == {200: 5000, None: 3}


def test_dictionary_and_plain_strings_give_the_same_codes_across_batches():
    rows = [("b", 10, 200, None, 1), ("a", 20, 200, "timeout", 1)] * 50
    plain = table(rows)
    encoded = plain.set_column(0, "endpoint", plain["endpoint"].dictionary_encode())
    one = rowstats.compute(rowstats.table_batches(plain, 7), {"p50": 0.5})
    other = rowstats.compute(rowstats.table_batches(encoded, 13), {"p50": 0.5})
    assert one == other and one.endpoints == ["a", "b"] and one.kinds == {("a", "timeout"): 50}


def passes(rows, **patches) -> tuple[rowstats.RowStats, list[list[str]]]:
    """compute() over ``rows`` in batches of 1,000, and the columns each pass read."""
    calls: list[list[str]] = []
    batches = rowstats.table_batches(table(rows), 1000)

    def read(columns):
        calls.append(columns)
        return batches(columns)
    with patch.multiple(rowstats, **patches):
        return rowstats.compute(read, PS), calls


def test_a_steady_run_needs_one_pass_and_a_drifting_one_reads_again_only_what_it_lacks():
    rng = np.random.default_rng(5)
    steady = [("a", int(x), 200, None, 1) for x in rng.lognormal(15, 0.5, 20_000)]
    stats, calls = passes(steady, FIRST_CHECKPOINT=1000)
    assert len(calls) == 1  # the percentiles' buckets were kept whole in pass 1
    lat = [r[1] for r in steady]
    assert stats.per["a"]["latency"] == {k: ranked(lat, p) for k, p in PS.items()} | {"max": max(lat),
                                                                                       "min": min(lat)}
    # latency that grows over the run: the median's bucket at the end was outside the early windows
    drifting = [("a", 1_000_000 + 500 * i + int(x), 200, None, 1) for i, x in enumerate(rng.integers(0, 1000, 20_000))]
    stats, calls = passes(drifting, FIRST_CHECKPOINT=1000)
    assert len(calls) == 2 and "latency_ns" in calls[1] and "error" not in calls[1]
    lat = [r[1] for r in drifting]
    assert stats.per["a"]["latency"] == {k: ranked(lat, p) for k, p in PS.items()} | {"max": max(lat),
                                                                                       "min": min(lat)}
    stats, calls = passes(steady, FIRST_CHECKPOINT=1000, KEEP_BUDGET=10)  # over the budget: all read again
    assert len(calls) == 2 and stats.per["a"]["latency"]["p50"] == ranked([r[1] for r in steady], 0.5)
