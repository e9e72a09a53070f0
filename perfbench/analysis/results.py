"""Reads a run directory into Polars and derives everything from the raw rows.

Percentiles are exact: the p-th percentile is the smallest recorded value such that at least a
fraction p of all values are at or below it (the inverted CDF, as HdrHistogram and wrk define
it), computed over every row, never from buckets or averaged windows.

    run = Run.load("data/runs/20261121-143012-load_test-9f2c")
    run.endpoint_table()            # per endpoint: count, req/s, p50/p95/p99/max, errors
    run.requests.filter(...)        # a LazyFrame of every request (times in ns, *_ms added)
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import RunDirError
from ..rundir import (
    CACHE,
    JOURNAL,
    QUERIES,
    REQUEST_SCHEMA,
    REQUESTS,
    RESOURCES,
    ROW_GROUP_ROWS,
    SUMMARY,
    RunDir,
    read_json,
    read_live,
    write_json,
    writer_alive,
)
from ..sqltext import N_PLUS_ONE_THRESHOLD as N_PLUS_ONE_THRESHOLD  # read here by analysis.queries too
from . import rowstats, target, warmup
from .flowrows import apart, requests_only
from .sqlsummary import pct as pct  # re-exported: analysis.queries and explain read it here
from .sqlsummary import read_queries as read_queries
from .sqlsummary import sql_summary
from .summary_check import check_summary

if TYPE_CHECKING:
    import polars as pl

    from .slo import SLO
else:
    class _Polars(ModuleType):
        """polars, imported on first use: a summary (``perfbench summary``, the end of every run)
        is computed with numpy and pyarrow and needs none of it (~0.15 s of CPU and ~40 MB)."""

        def __getattr__(self, name: str) -> Any:
            return getattr(importlib.import_module("polars"), name)

    pl = _Polars("polars")

PERCENTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99, "p99_9": 0.999}
DEFAULT_LAG_BOUND_MS = 10.0
CLOSED_MODEL_NOTE = ("closed model: users wait for each response before sending the next request, so a "
                     "stalled server also slows the load and latency percentiles can hide the stall")


def with_ms(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Add millisecond and second columns derived from the nanosecond ones (once)."""
    if "latency_ms" in lf.collect_schema().names():
        return lf
    return lf.with_columns(
        (pl.col("latency_ns") / 1e6).alias("latency_ms"),
        (pl.col("service_ns") / 1e6).alias("service_ms"),
        ((pl.col("start_ns") - pl.col("intended_ns")) / 1e6).alias("lag_ms"),
        (pl.col("intended_ns") / 1e9).alias("t_s"),
    )


_BUCKET_BASE = math.log(1.01)  # pass-1 buckets about 1% wide


def exact_percentiles(lf: pl.LazyFrame, col: str, ps: dict[str, float], by: list[str] | None = None,
                      in_memory: bool = False, one_group: pl.DataFrame | None = None) -> pl.DataFrame:
    """Exact inverted-CDF percentiles of integer column ``col`` per group, in bounded memory.

    Sorting every value of a long run costs memory in proportion to its rows (Polars needs ~100
    bytes a row), so a 24-hour soak could not be summarised. Two streaming passes give the same
    exact answer: (1) count the values per group in ~1%-wide logarithmic buckets; (2) for each
    percentile, find the bucket that holds its rank, and sort only the values of those buckets.
    Memory is bounded by the bucket table and the few buckets that hold a percentile.
    Returns ``by`` columns plus one column per name in ``ps`` (values in the column's unit).

    ``in_memory``: the rows are already in memory (a summary of a run of moderate size): one
    sort per group gives the same answer faster than the bucket passes. ``one_group``: the rows
    are known to hold a single group, whose ``by`` values this one-row frame gives (a run with
    one endpoint): the values are sorted alone, without carrying the group key (1M rows: ~4x
    faster).
    """
    by = list(by or [])
    if in_memory:
        if by and one_group is not None and one_group.height == 1:
            return one_group.select(by).hstack(_sorted_percentiles(lf, col, ps, []))
        return _sorted_percentiles(lf, col, ps, by)
    key = (pl.col(col).clip(lower_bound=1).cast(pl.Float64).log() / _BUCKET_BASE).floor().cast(pl.Int32)
    src = lf.select(*by, pl.col(col)).filter(pl.col(col).is_not_null()).with_columns(key.alias("_b"))
    counts = (src.group_by(*by, "_b").agg(pl.len().alias("_n")).collect(engine="streaming")
              .sort(*by, "_b"))
    if counts.height == 0:  # no values: no groups, or (ungrouped) one row of nulls, as an aggregate gives
        schema = src.collect_schema()
        if not by:
            return pl.DataFrame({name: [None] for name in ps}, schema={name: schema[col] for name in ps})
        return pl.DataFrame(schema={**{b: schema[b] for b in by}, **{name: schema[col] for name in ps}})
    counts = counts.with_columns(pl.col("_n").cum_sum().over(by or None).alias("_cum") if by else
                                 pl.col("_n").cum_sum().alias("_cum"))
    totals = counts.group_by(by).agg(pl.col("_n").sum().alias("_total")) if by else \
        pl.DataFrame({"_total": [counts["_n"].sum()]})
    wanted = []  # per group and percentile: the bucket holding the rank, and the rank within it
    for name, p in ps.items():
        ranks = totals.with_columns(((pl.col("_total").cast(pl.Float64) * p).ceil().cast(pl.Int64)
                                     .clip(lower_bound=1)).alias("_rank"), pl.lit(name).alias("_pct"))
        joined = (counts.join(ranks, on=by, how="inner") if by else counts.join(ranks, how="cross"))
        hit = (joined.filter(pl.col("_cum") >= pl.col("_rank")).group_by(*by, "_pct")
               .agg(pl.col("_b").first(), (pl.col("_rank").first() - (pl.col("_cum").first() - pl.col("_n").first()))
                    .alias("_k")))
        wanted.append(hit)
    wanted_df = pl.concat(wanted)
    need = wanted_df.select(*by, "_b").unique()
    # a bucket whose values are all equal (a constant lag, a coarse clock) answers without collecting
    spans = (src.join(need.lazy(), on=[*by, "_b"], how="semi").group_by(*by, "_b")
             .agg(pl.col(col).min().alias("_lo"), pl.col(col).max().alias("_hi")).collect(engine="streaming"))
    flat = spans.filter(pl.col("_lo") == pl.col("_hi"))
    need = spans.filter(pl.col("_lo") != pl.col("_hi")).select(*by, "_b")
    values = (src.join(need.lazy(), on=[*by, "_b"], how="semi").collect(engine="streaming")
              .sort(*by, "_b", col))
    picked = (values.group_by(*by, "_b", maintain_order=True).agg(pl.col(col))
              .join(wanted_df, on=[*by, "_b"], how="inner")
              .with_columns(pl.col(col).list.get(pl.col("_k") - 1).alias("_v")))
    if flat.height:
        constant = flat.join(wanted_df, on=[*by, "_b"], how="inner").with_columns(pl.col("_lo").alias("_v"))
        picked = pl.concat([picked.select(*by, "_pct", "_v"), constant.select(*by, "_pct", "_v")],
                           how="vertical_relaxed")
    if by:
        return picked.pivot(on="_pct", index=by, values="_v").select(*by, *[n for n in ps])
    row = {r["_pct"]: r["_v"] for r in picked.iter_rows(named=True)}
    return pl.DataFrame({n: [row.get(n)] for n in ps})


def _sorted_percentiles(lf: pl.LazyFrame, col: str, ps: dict[str, float], by: list[str]) -> pl.DataFrame:
    """:func:`exact_percentiles` by sorting each group's values (memory in proportion to rows);
    without groups, by selecting each rank (:func:`_selected_percentiles`)."""
    if not by:
        return _selected_percentiles(lf, col, ps)
    # one sort of all values; a group's values keep that order in the aggregation
    df = lf.select(*by, pl.col(col)).filter(pl.col(col).is_not_null()).sort(col).collect()
    n = pl.len().cast(pl.Float64)
    aggs = [pl.col(col).get((n * p).ceil().cast(pl.Int64).clip(lower_bound=1) - 1).alias(name)
            for name, p in ps.items()]
    return df.group_by(by).agg(aggs)


def _selected_percentiles(lf: pl.LazyFrame, col: str, ps: dict[str, float]) -> pl.DataFrame:
    """The ungrouped :func:`_sorted_percentiles`: ``numpy.partition`` puts the value of each wanted
    rank in its place without sorting the rest (1M latencies: ~3 ms against ~15 ms for a sort)."""
    import numpy as np

    values = lf.select(pl.col(col)).filter(pl.col(col).is_not_null()).collect().to_series()
    schema = {name: values.dtype for name in ps}
    n = len(values)
    if n == 0:
        return pl.DataFrame({name: [None] for name in ps}, schema=schema)
    # the rank of p is ceil(n * p), as the sorting strategies compute it (in float64), at least 1
    ranks = {name: max(math.ceil(float(n) * p), 1) - 1 for name, p in ps.items()}
    picked = np.partition(values.to_numpy(), sorted(set(ranks.values())))
    return pl.DataFrame({name: [picked[k].item()] for name, k in ranks.items()}, schema=schema)


def endpoint_stats(lf: pl.LazyFrame, duration_s: float, by: list[str] | None = None, in_memory: bool = False
                   ) -> pl.DataFrame:
    """Per group (default: per endpoint): counts, throughput, exact latency percentiles, errors.

    Memory stays bounded however many requests the run has: counts and sums stream, and the
    percentiles come from :func:`exact_percentiles` (exact, two streaming passes).
    """
    by = by or ["endpoint"]
    names = lf.collect_schema().names()
    has_service = "service_ns" in names
    has_ttfb = "ttfb_ns" in names
    lf = lf.select(*by, "latency_ns", *(["service_ns"] if has_service else []), *(["ttfb_ns"] if has_ttfb else []),
                   "error", "bytes")
    ms = 1e6
    base = lf.group_by(by).agg(
        pl.len().alias("count"),
        pl.col("error").is_not_null().sum().alias("errors"),
        (pl.col("latency_ns").max() / ms).alias("max_ms"),
        (pl.col("latency_ns").mean() / ms).alias("mean_ms"),
        (pl.col("latency_ns").min() / ms).alias("min_ms"),
        pl.col("bytes").sum().alias("bytes"),
    ).collect(engine="streaming")
    one = base if base.height == 1 else None  # one group: its percentiles sort the values alone
    lat = exact_percentiles(lf, "latency_ns", {f"{n}_ms": p for n, p in PERCENTILES.items()}, by, in_memory, one)
    out = base.join(lat, on=by, how="left", nulls_equal=True)
    if has_service:
        svc = exact_percentiles(lf, "service_ns", {"service_p50_ms": 0.5, "service_p99_ms": 0.99}, by, in_memory,
                                one)
        out = out.join(svc, on=by, how="left", nulls_equal=True)
    else:
        out = out.with_columns(pl.lit(None, pl.Float64).alias("service_p50_ms"),
                               pl.lit(None, pl.Float64).alias("service_p99_ms"))
    ttfb_ps = {"ttfb_p50_ms": 0.5, "ttfb_p95_ms": 0.95, "ttfb_p99_ms": 0.99}
    if has_ttfb:  # the time to the first byte, over the requests that had one
        ttfb = exact_percentiles(lf.filter(pl.col("ttfb_ns").is_not_null()), "ttfb_ns", ttfb_ps, by, in_memory)
        out = out.join(ttfb, on=by, how="left", nulls_equal=True)
    else:
        out = out.with_columns(*[pl.lit(None, pl.Float64).alias(c) for c in ttfb_ps])
    pct_cols = [*(f"{n}_ms" for n in PERCENTILES), "service_p50_ms", "service_p99_ms", *ttfb_ps]
    out = out.with_columns(*[(pl.col(c).cast(pl.Float64) / ms).alias(c) for c in pct_cols])
    cols = ["count", "errors", *(f"{n}_ms" for n in PERCENTILES), "max_ms", "mean_ms", "min_ms", "service_p50_ms",
            "service_p99_ms", *ttfb_ps, "bytes"]
    return out.select(*by, *cols).sort(by).with_columns(
        (pl.col("count") / duration_s).alias("rps"),
        (pl.col("errors") / pl.col("count")).alias("error_rate"),
    )


def summarize(lf: pl.LazyFrame, *, duration_s: float | None = None, planned: int | None = None,
              engine: dict[str, Any] | None = None, model: str = "open",
              lag_bound_ms: float = DEFAULT_LAG_BOUND_MS, in_memory: bool = False) -> dict[str, Any]:
    """The summary.json content for a run's rows (pure: a frame in, a dict out).

    The numbers come from :mod:`perfbench.analysis.rowstats` (two passes over the rows in batches,
    exact). ``in_memory``: collect the rows' columns once instead of streaming the frame in
    batches twice (the same numbers; for a frame over rows already in memory)."""
    names = lf.collect_schema().names()
    lf = lf.select(*[c for c in (*_SUMMARY_COLUMNS, "end_ns") if c in names])
    if in_memory:
        batches = rowstats.table_batches(lf.collect().to_arrow(), ROW_GROUP_ROWS)
    else:
        batches = _frame_batches(lf)
    return summary_of(batches, duration_s=duration_s, planned=planned, engine=engine, model=model,
                      lag_bound_ms=lag_bound_ms)


def _frame_batches(lf: pl.LazyFrame) -> rowstats.Batches:
    have = set(lf.collect_schema().names())

    def read(columns: list[str]) -> Iterator[pa.Table]:
        for df in lf.select([c for c in columns if c in have]).collect_batches(chunk_size=ROW_GROUP_ROWS):
            yield df.to_arrow()
    return read


def summary_of(batches: rowstats.Batches, *, duration_s: float | None = None, planned: int | None = None,
               engine: dict[str, Any] | None = None, model: str = "open",
               lag_bound_ms: float = DEFAULT_LAG_BOUND_MS) -> dict[str, Any]:
    """:func:`summarize` of rows given as Arrow batches (``rowstats.Batches``: a Parquet file's row
    groups, slices of a table in memory)."""
    batches, flow_rows = apart(batches)
    st = rowstats.compute(batches, PERCENTILES, need_end=duration_s is None)
    flows = rowstats.compute(flow_rows, PERCENTILES) if flow_rows.seen else None
    if duration_s is None:
        duration_s = (st.max_end_ns or 0) / 1e9
    duration_s = max(duration_s, 1e-9)
    ms = 1e6

    def in_ms(v: int | float | None) -> float | None:
        return None if v is None else v / ms

    def block(s: dict[str, Any], name: Any, of: rowstats.RowStats = st) -> dict[str, Any]:
        errs: dict[str, int] = {}  # overall ("*"): every endpoint's count of a kind, added up
        for (endpoint, kind), n in of.kinds.items():
            if name == "*" or endpoint == name:
                errs[kind] = errs.get(kind, 0) + n
        lat, svc = s["latency"], s["service"] or {}
        return {
            "count": s["count"],
            "errors": s["errors"],
            "error_rate": _num(s["errors"] / s["count"]),
            "rps": _num(s["count"] / duration_s),
            "latency_ms": {**{n: _num(in_ms(lat.get(n))) for n in PERCENTILES}, "max": _num(in_ms(lat.get("max"))),
                           "mean": _num(in_ms(s["mean_ns"])), "min": _num(in_ms(lat.get("min")))},
            "service_ms": {"p50": _num(in_ms(svc.get("p50"))), "p99": _num(in_ms(svc.get("p99")))},
            # from the send to the first byte of the response, over the requests that had one
            "ttfb_ms": {p: _num(in_ms((s["ttfb"] or {}).get(p))) for p in ("p50", "p95", "p99")},
            "errors_by_kind": dict(sorted(errs.items())),
            "bytes": s["bytes"],
        }

    engine = dict(engine or {})
    capped = engine.get("capped", 0) or 0
    lag = {k: in_ms(st.lag[k]) for k in ("p50", "p99", "max")}
    lag_p99 = lag["p99"] or 0.0
    reasons = []
    if model == "open" and lag_p99 > lag_bound_ms:
        reasons.append(f"send lag p99 {lag_p99:.1f} ms is above the {lag_bound_ms:g} ms bound")
    if capped:
        reasons.append(f"{capped} arrivals waited for the in-flight cap ({engine.get('max_in_flight')})")
    sent = st.lag["n"]
    unsent = engine.get("unsent") or 0
    if unsent:
        reasons.append(f"{unsent} planned requests were never sent (due while every in-flight slot was busy, "
                       f"or when the run stopped)")
    if planned and sent + unsent < planned:
        reasons.append(f"{planned - sent - unsent} planned requests were not sent")
    generator = {
        "lag_ms": {"p50": _num(lag["p50"]), "p99": _num(lag_p99), "max": _num(lag["max"])},
        "lag_bound_ms": lag_bound_ms,
        "planned": planned,
        "recorded": sent,
        "saturated": bool(reasons),
        "saturation_reasons": reasons,
        **engine,
    }
    return {
        "model": model,
        "duration_s": duration_s,
        "overall": block(st.overall, "*") if st.overall["count"] else {"count": 0, "errors": 0},
        # a flow's own rows (method FLOW, endpoint flow:<name>) are endpoints of their own, never in overall
        "endpoints": {**{name: block(st.per[name], name) for name in st.endpoints},
                      **({name: block(flows.per[name], name, flows) for name in flows.endpoints} if flows else {})},
        "status_counts": {str(status): n for status, n in st.statuses},
        "generator": generator,
        "notes": [CLOSED_MODEL_NOTE] if model == "closed" else [],
    }


def _num(v: Any) -> Any:
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, 6)
    return v


def latency_timeseries(lf: pl.LazyFrame, every_s: float = 1.0) -> pl.DataFrame:
    """Per time bucket (by intended send time): requests, errors, p50/p95/p99/max latency (ms)."""
    lf = with_ms(requests_only(lf)).with_columns(((pl.col("intended_ns") // int(every_s * 1e9)) * every_s).alias("t_s"))
    return (lf.group_by("t_s").agg(
        pl.len().alias("requests"),
        pl.col("error").is_not_null().sum().alias("errors"),
        pct("latency_ms", 0.50).alias("p50_ms"),
        pct("latency_ms", 0.95).alias("p95_ms"),
        pct("latency_ms", 0.99).alias("p99_ms"),
        pl.col("latency_ms").max().alias("max_ms"),
    ).sort("t_s").collect().with_columns((pl.col("requests") / every_s).alias("rps")))


def throughput_timeseries(lf: pl.LazyFrame, every_s: float = 1.0) -> pl.DataFrame:
    """Completed responses per second by completion time, split into ok and error."""
    lf = requests_only(lf).with_columns(((pl.col("end_ns") // int(every_s * 1e9)) * every_s).alias("t_s"),
                         pl.when(pl.col("error").is_null()).then(pl.lit("ok")).otherwise(pl.lit("error"))
                         .alias("outcome"))
    return (lf.group_by("t_s", "outcome").agg((pl.len() / every_s).alias("rps"))
            .sort("t_s", "outcome").collect())


def error_timeseries(lf: pl.LazyFrame, every_s: float = 1.0) -> pl.DataFrame:
    """Errors per time bucket and kind (empty frame when the run had no errors)."""
    lf = requests_only(lf).filter(pl.col("error").is_not_null()).with_columns(
        ((pl.col("intended_ns") // int(every_s * 1e9)) * every_s).alias("t_s"))
    return lf.group_by("t_s", "error").agg(pl.len().alias("errors")).sort("t_s", "error").collect()


def latency_histogram(lf: pl.LazyFrame, bins: int = 60, log: bool = True, column: str = "latency_ms"
                      ) -> pl.DataFrame:
    """Latency counts in ``bins`` bins, pre-aggregated in Polars (log-spaced by default).

    Columns: bin_start, bin_end (ms), count, share. Empty runs give an empty frame.
    """
    lf = with_ms(lf).select(pl.col(column)).drop_nulls()
    lo, hi = lf.select(pl.col(column).min().alias("lo"), pl.col(column).max().alias("hi")).collect().row(0)
    if lo is None:
        return pl.DataFrame(schema={"bin_start": pl.Float64, "bin_end": pl.Float64, "count": pl.UInt32,
                                    "share": pl.Float64})
    lo = max(lo, 1e-3)
    hi = max(hi, lo * 1.0001)
    if log:
        a, b = math.log10(lo), math.log10(hi)
        width = (b - a) / bins
        key = ((pl.col(column).clip(lo, hi).log10() - a) / width).floor().clip(0, bins - 1)
        edges = [10 ** (a + i * width) for i in range(bins + 1)]
    else:
        width = (hi - lo) / bins
        key = ((pl.col(column) - lo) / width).floor().clip(0, bins - 1)
        edges = [lo + i * width for i in range(bins + 1)]
    counts = lf.group_by(key.cast(pl.Int64).alias("bin")).agg(pl.len().alias("count")).collect()
    total = counts["count"].sum()
    return (counts.with_columns(
        pl.col("bin").map_elements(lambda i: edges[i], return_dtype=pl.Float64).alias("bin_start"),
        pl.col("bin").map_elements(lambda i: edges[i + 1], return_dtype=pl.Float64).alias("bin_end"),
        (pl.col("count") / total).alias("share"),
    ).sort("bin").select("bin_start", "bin_end", "count", "share"))


def percentile_curve(lf: pl.LazyFrame, column: str = "latency_ms", by: str | None = None,
                     max_nines: int = 4) -> pl.DataFrame:
    """Latency at percentiles from p0 to p99.99 (log-spaced in the tail, HdrHistogram style).

    Columns: percentile (0..100), nines (= -log10(1 - p), for a log axis), value_ms, and ``by``.
    """
    ps = sorted({round(1 - 10 ** (-k / 10), 6) for k in range(0, max_nines * 10 + 1)} | {0.5, 0.9, 0.95, 0.99})
    lf = with_ms(lf)
    aggs = [pct(column, p).alias(f"{p!r}") for p in ps] + [pl.len().alias("_n"), pl.col(column).max().alias("_max")]
    keys = [by] if by else []
    wide = (lf.group_by(keys).agg(aggs) if keys else lf.select(aggs)).collect()
    rows = []
    for r in wide.iter_rows(named=True):
        n = r["_n"]
        kept = 0.0
        for p in ps:
            if p > 0 and 1 - p < 1 / max(n, 1):  # beyond the resolution of n samples
                continue
            kept = p
            rows.append({**({by: r[by]} if by else {}), "percentile": p * 100,
                         "nines": -math.log10(1 - p) if p < 1 else None, "value_ms": r[f"{p!r}"]})
        top = 1 - 1 / n if n > 1 else 0.0
        if top > kept + 1e-12 and -math.log10(1 - top) <= max_nines:
            # the curve ends where n samples end, at the slowest one (HdrHistogram's last point): 999 requests
            # reach p99.9, 1,500 reach p99.93
            rows.append({**({by: r[by]} if by else {}), "percentile": top * 100, "nines": -math.log10(1 - top),
                         "value_ms": r["_max"]})
    return pl.DataFrame(rows)


# the columns a summary reads (end_ns too when the run's duration is not known)
_SUMMARY_COLUMNS = ("endpoint", "method", "intended_ns", "start_ns", "latency_ns", "service_ns", "ttfb_ns", "status", "error",
                    "bytes")


# the columns every reader needs, by kind (a requests.parquet without them is not a run's)
_REQUIRED_COLUMNS = {"request_id": "integer", "endpoint": "string", "method": "string", "intended_ns": "integer",
                     "start_ns": "integer", "end_ns": "integer", "latency_ns": "integer", "status": "integer",
                     "error": "string", "bytes": "integer"}


def _check_columns(path: Path) -> None:
    """RunDirError naming ``path`` unless it is a Parquet file with the columns a run's rows have."""
    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid / OSError variants for corrupt files
        raise RunDirError(f"{path}: not a readable Parquet file ({type(exc).__name__}); left as it is") from None
    wrong = []
    for name, kind in _REQUIRED_COLUMNS.items():
        if name not in schema.names:
            wrong.append(f"no column {name!r}")
            continue
        t = schema.field(name).type
        ok = pa.types.is_integer(t) if kind == "integer" else (pa.types.is_string(t) or pa.types.is_large_string(t)
                                                               or pa.types.is_dictionary(t))
        if not ok:
            wrong.append(f"column {name!r} is {t}, not {kind}")
    if wrong:
        raise RunDirError(f"{path}: not the requests of a run ({'; '.join(wrong[:4])}); left as it is")


def upgrade_requests(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Rows of a run directory of schema version 1 with the columns version 2 added: ``wire_bytes``
    is ``bytes`` (that version read bodies uncompressed), the timing columns are null, no redirect
    was followed (``redirects`` 0, ``final_path`` null), no row belongs to a flow (``flow``,
    ``flow_run``, ``step``, ``user_class`` null)."""
    names = lf.collect_schema().names()
    missing = [e for name, e in (("wire_bytes", pl.col("bytes").alias("wire_bytes")),
                                 ("connect_ns", pl.lit(None, pl.Int64).alias("connect_ns")),
                                 ("ttfb_ns", pl.lit(None, pl.Int64).alias("ttfb_ns")),
                                 ("reused", pl.lit(None, pl.Boolean).alias("reused")),
                                 ("redirects", pl.lit(0, pl.Int16).alias("redirects")),
                                 ("final_path", pl.lit(None, pl.String).alias("final_path")),
                                 ("flow", pl.lit(None, pl.String).alias("flow")),
                                 ("flow_run", pl.lit(None, pl.Int64).alias("flow_run")),
                                 ("step", pl.lit(None, pl.Int32).alias("step")),
                                 ("user_class", pl.lit(None, pl.String).alias("user_class"))) if name not in names]
    return lf.with_columns(missing) if missing else lf


@dataclass
class Run:
    """One run directory, loaded lazily. ``requests`` is a LazyFrame over requests.parquet.

    A run still in progress (its writer alive, see ``rundir.WriterLock``) is read without being
    touched: ``live`` is True and the rows are the journal's complete batches so far. A run whose
    writer died is recovered first (``RunDir.recover``), unless the directory cannot be written
    (read-only): then it is read as it is, and ``note`` says why."""

    path: Path
    meta: dict[str, Any]
    live: bool = False
    note: str | None = None
    _table: pa.Table | None = field(default=None, repr=False)
    _warmup_resolved: bool = field(default=False, repr=False)  # a count warm-up's end found from the rows

    @classmethod
    def load(cls, path: str | Path) -> Run:
        path = Path(path)
        if not path.is_dir():
            raise RunDirError(f"{path}: no such run directory (runs live under data/runs/<run-id>)")
        rd = RunDir(path)
        meta = rd.meta()
        if (path / JOURNAL).exists() and not (path / REQUESTS).exists():
            if rd.in_progress:
                table = read_live(path)
                return cls(path, meta, live=True, _table=table,
                           note=f"run in progress: {table.num_rows} requests recorded so far (read, not touched)")
            try:
                rd.recover()
            except OSError as exc:  # a read-only or full file system: read the journal as it is
                return cls(path, meta, _table=read_live(path),
                           note=f"the crashed run's journal could not be converted ({exc.strerror or exc}); "
                                f"read as it is")
            meta = rd.meta()
        if not (path / REQUESTS).exists() and writer_alive(path):  # a distributed run: shards keep the rows
            return cls(path, meta, live=True, _table=REQUEST_SCHEMA.empty_table(),
                       note="run in progress on a Dask cluster: its rows are merged when it ends (read, not touched)")
        if not (path / REQUESTS).exists():
            raise RunDirError(f"{path}: no {REQUESTS}; the run did not record any request")
        _check_columns(path / REQUESTS)
        return cls(path, meta)

    def _scan(self) -> pl.LazyFrame:
        """The raw rows: requests.parquet, or the journal's batches of a run in progress."""
        if self._table is not None:
            return cast(pl.DataFrame, pl.from_arrow(self._table)).lazy()
        return pl.scan_parquet(self.path / REQUESTS)

    @property
    def run_id(self) -> str:
        run_id: str = self.meta["run_id"]
        return run_id

    @property
    def requests(self) -> pl.LazyFrame:
        return with_ms(upgrade_requests(self._scan()))

    @property
    def queries(self) -> pl.LazyFrame:
        """The server-side SQL of queries.parquet (:func:`read_queries`); analyses in perfbench.analysis.queries."""
        return read_queries(self.path)

    @property
    def duration_s(self) -> float:
        d = self.meta.get("elapsed_s")
        if d and not self.live:
            return float(d)
        return (self._scan().select(pl.col("end_ns").max()).collect().item() or 0) / 1e9

    def summary(self) -> dict[str, Any]:
        """summary.json as written, or computed from the rows when it is missing (always for a
        run in progress: its summary is written when it ends)."""
        p = self.path / SUMMARY
        if p.exists() and not self.live and self._table is None:
            return check_summary(p, read_json(p))
        return self.compute_summary()

    def compute_summary(self, table: pa.Table | None = None) -> dict[str, Any]:
        """The summary of the run's rows, from requests.parquet one row group at a time (``table``:
        those rows, when they are in memory already, read in slices of the same size)."""
        engine = self.meta.get("engine_stats") or {}
        shape = self.meta.get("shape") or {}
        batches = self.batches(table=table)
        from .machine import summary_of_run as machine_block

        try:
            until = self.warmup_until_ns(batches)
            excluded = int((warmup.intended_of(batches) < until).sum()) if until else 0
            measured, span = warmup.measured(batches, until), warmup.measured_span(self.duration_s, until)
            planned = engine.get("planned")
            s = summary_of(measured, duration_s=span, planned=planned - excluded if planned else planned,
                           engine=engine, model=shape.get("model", "open"),
                           lag_bound_ms=self.meta.get("parameters", {}).get("lag_bound_ms", DEFAULT_LAG_BOUND_MS))
            # too many rows to sort: the engine's count, over the whole run (the warm-up included)
            s["concurrency"] = target.concurrency(measured, span, round((self.duration_s + 60) * 1e9)) or {
                "max": engine.get("max_in_flight_seen"), "mean": None, "source": "engine, whole run"}
            if (w := warmup.summary_block(self.meta, excluded)) is not None:
                s["warmup"] = w
                if not s["overall"]["count"]:
                    s["notes"].append(f"the warm-up took every request ({excluded}): nothing was measured")
        except (pa.ArrowException, OSError) as exc:
            raise RunDirError(f"{self.path / REQUESTS}: could not be read ({type(exc).__name__}: "
                              f"{str(exc)[:200]})") from None
        machine = machine_block(self.path, self.meta)  # the machine's other load (analysis.machine)
        if machine is not None:
            s["machine"] = machine
        return s

    def batches(self, dictionary: tuple[str, ...] = ("endpoint", "error"), table: pa.Table | None = None
                ) -> rowstats.Batches:
        """The rows as Arrow batches: requests.parquet a row group at a time (``dictionary``: the string
        columns read as dictionary codes), or slices of ``table`` or of a run in progress's rows."""
        table = self._table if table is None else table
        if table is not None:
            return rowstats.table_batches(table, ROW_GROUP_ROWS)
        return rowstats.parquet_batches(str(self.path / REQUESTS), dictionary)

    def warmup_until_ns(self, batches: rowstats.Batches | None = None) -> int | None:
        """The end of the run's warm-up (ns, by intended send time; None: none): meta.json's, or, for a
        warm-up of N requests not resolved yet, found from the rows (and kept in ``meta``)."""
        until, w = warmup.until_ns(self.meta), warmup.spec(self.meta)
        if until is None and w is not None and w.get("requests"):
            until = warmup.until_for_requests(int(w["requests"]), warmup.intended_of(batches or self.batches()))
            self.meta["warmup"] = {**w, "until_ns": until, "until_s": until / 1e9}
            self._warmup_resolved = True
        return until

    def write_summary(self, slos: list[SLO] | None = None, table: pa.Table | None = None) -> dict[str, Any]:
        """Recompute summary.json from the rows (with SLO verdicts for ``slos``, perfbench.analysis.slo.SLO);
        ``table``: the rows of requests.parquet, when they are in memory already."""
        from .slo import evaluate

        if self.live or self._table is not None:
            raise RunDirError(f"{self.path}: {self.note}; summary.json is not written into it")
        s = {"schema_version": self.meta["schema_version"], "run_id": self.run_id, **self.compute_summary(table)}
        until = self.warmup_until_ns()
        if self._warmup_resolved:  # where a warm-up of N requests ended, for charts and readers
            RunDir(self.path).update_meta(warmup=self.meta["warmup"])
        if (self.path / QUERIES).exists():  # the run had the agent: what the service's SQL did, in brief
            requests = pl.scan_parquet(self.path / REQUESTS)
            s["sql"] = sql_summary(requests.filter(pl.col("intended_ns") >= (until or 0)),
                                   target.measured_events(pl.scan_parquet(self.path / QUERIES), requests, until),
                                   (self.meta.get("collectors") or {}).get("agent"))
        if (self.path / CACHE).exists():
            s["cache"] = target.cache(self.path, pl.scan_parquet(self.path / REQUESTS), until)
        if (self.path / RESOURCES).exists():
            s["resources"] = target.resources(self.path, until)
        if slos:
            s["slo"] = evaluate(slos, s)
        write_json(self.path / SUMMARY, s)
        return s

    def endpoint_table(self) -> pl.DataFrame:
        """Per endpoint: count, req/s, p50/p95/p99/p99.9/max latency (ms), errors; the overall row last.
        From :meth:`summary` (``summary_table.summary_table``): the numbers of summary.json and the headline."""
        from .summary_table import summary_table

        return summary_table(self.summary())

