"""Reads a run directory into Polars and derives everything from the raw rows.

Percentiles are exact: the p-th percentile is the smallest recorded value such that at least a
fraction p of all values are at or below it (the inverted CDF, as HdrHistogram and wrk define
it), computed over every row, never from buckets or averaged windows.

    run = Run.load("data/runs/20261121-143012-load_test-9f2c")
    run.endpoint_table()            # per endpoint: count, req/s, p50/p95/p99/max, errors
    run.requests.filter(...)        # a LazyFrame of every request (times in ns, *_ms added)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import RunDirError
from ..rundir import QUERIES, REQUESTS, SUMMARY, RunDir, read_json, write_json

if TYPE_CHECKING:
    from .slo import SLO

PERCENTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99, "p99_9": 0.999}
DEFAULT_LAG_BOUND_MS = 10.0
CLOSED_MODEL_NOTE = ("closed model: users wait for each response before sending the next request, so a "
                     "stalled server also slows the load and latency percentiles can hide the stall")


def pct(col: str | pl.Expr, p: float) -> pl.Expr:
    """Exact inverted-CDF percentile of ``col`` as an aggregation expression."""
    e = pl.col(col) if isinstance(col, str) else col
    e = e.drop_nulls()
    n = e.len()
    idx = (n.cast(pl.Float64) * p).ceil().cast(pl.Int64) - 1
    return e.sort().get(pl.max_horizontal(idx, pl.lit(0)), null_on_oob=True)


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

    ``in_memory``: ``lf`` is over rows held in memory, so percentiles may sort them (see
    :func:`exact_percentiles`); otherwise every pass streams and memory stays bounded."""
    if duration_s is None:
        duration_s = (lf.select(pl.col("end_ns").max()).collect().item() or 0) / 1e9
    duration_s = max(duration_s, 1e-9)
    per = endpoint_stats(lf, duration_s, in_memory=in_memory)
    if per.height == 1:  # one endpoint: the overall figures are its figures (half the passes)
        overall = per.with_columns(pl.lit("*").alias("endpoint"))
    else:
        overall = endpoint_stats(lf.with_columns(pl.lit("*").alias("endpoint")), duration_s, in_memory=in_memory)
    kinds = lf.filter(pl.col("error").is_not_null()).group_by("endpoint", "error").len().collect()
    statuses = lf.group_by("status").len().sort("status").collect()
    lag_lf = lf.select((pl.col("start_ns") - pl.col("intended_ns")).clip(lower_bound=0).alias("_lag"))
    lag_p = exact_percentiles(lag_lf, "_lag", {"p50": 0.5, "p99": 0.99}, in_memory=in_memory).row(0, named=True)
    lag_rest = lag_lf.select(pl.col("_lag").max().alias("max"), pl.len().alias("n")).collect(engine="streaming")
    lag = {"p50": None if lag_p["p50"] is None else lag_p["p50"] / 1e6,
           "p99": None if lag_p["p99"] is None else lag_p["p99"] / 1e6,
           "max": None if lag_rest["max"][0] is None else lag_rest["max"][0] / 1e6, "n": lag_rest["n"][0]}

    def block(row: dict[str, Any], name: str) -> dict[str, Any]:
        errs: dict[str, int] = {}  # overall ("*"): every endpoint's count of a kind, added up
        for r in kinds.iter_rows(named=True):
            if name == "*" or r["endpoint"] == name:
                errs[r["error"]] = errs.get(r["error"], 0) + r["len"]
        lat = {k[:-3]: _num(v) for k, v in row.items()
               if k.endswith("_ms") and not k.startswith(("service", "ttfb"))}
        return {
            "count": row["count"],
            "errors": row["errors"],
            "error_rate": _num(row["error_rate"]),
            "rps": _num(row["rps"]),
            "latency_ms": lat,
            "service_ms": {"p50": _num(row["service_p50_ms"]), "p99": _num(row["service_p99_ms"])},
            # from the send to the first byte of the response, over the requests that had one
            "ttfb_ms": {"p50": _num(row["ttfb_p50_ms"]), "p95": _num(row["ttfb_p95_ms"]),
                        "p99": _num(row["ttfb_p99_ms"])},
            "errors_by_kind": dict(sorted(errs.items())),
            "bytes": row["bytes"],
        }

    total = overall.row(0, named=True) if overall.height else None
    engine = dict(engine or {})
    capped = engine.get("capped", 0) or 0
    lag_p99 = lag["p99"] or 0.0
    reasons = []
    if model == "open" and lag_p99 > lag_bound_ms:
        reasons.append(f"send lag p99 {lag_p99:.1f} ms is above the {lag_bound_ms:g} ms bound")
    if capped:
        reasons.append(f"{capped} arrivals waited for the in-flight cap ({engine.get('max_in_flight')})")
    sent = lag["n"]
    if planned and sent < planned:
        reasons.append(f"{planned - sent} planned requests were not sent")
    generator = {
        "lag_ms": {"p50": _num(lag["p50"]), "p99": _num(lag_p99), "max": _num(lag["max"])},
        "lag_bound_ms": lag_bound_ms,
        "planned": planned,
        "recorded": sent,
        "saturated": bool(reasons),
        "saturation_reasons": reasons,
        **engine,
    }
    out = {
        "model": model,
        "duration_s": duration_s,
        "overall": block(total, "*") if total else {"count": 0, "errors": 0},
        "endpoints": {r["endpoint"]: block(r, r["endpoint"]) for r in per.iter_rows(named=True)},
        "status_counts": {str(r["status"]): r["len"] for r in statuses.iter_rows(named=True)},
        "generator": generator,
        "notes": [CLOSED_MODEL_NOTE] if model == "closed" else [],
    }
    return out


def _num(v: Any) -> Any:
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, 6)
    return v


def latency_timeseries(lf: pl.LazyFrame, every_s: float = 1.0) -> pl.DataFrame:
    """Per time bucket (by intended send time): requests, errors, p50/p95/p99/max latency (ms)."""
    lf = with_ms(lf).with_columns(((pl.col("intended_ns") // int(every_s * 1e9)) * every_s).alias("t_s"))
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
    lf = lf.with_columns(((pl.col("end_ns") // int(every_s * 1e9)) * every_s).alias("t_s"),
                         pl.when(pl.col("error").is_null()).then(pl.lit("ok")).otherwise(pl.lit("error"))
                         .alias("outcome"))
    return (lf.group_by("t_s", "outcome").agg((pl.len() / every_s).alias("rps"))
            .sort("t_s", "outcome").collect())


def error_timeseries(lf: pl.LazyFrame, every_s: float = 1.0) -> pl.DataFrame:
    """Errors per time bucket and kind (empty frame when the run had no errors)."""
    lf = lf.filter(pl.col("error").is_not_null()).with_columns(
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
    aggs = [pct(column, p).alias(f"{p!r}") for p in ps] + [pl.len().alias("_n")]
    keys = [by] if by else []
    wide = (lf.group_by(keys).agg(aggs) if keys else lf.select(aggs)).collect()
    rows = []
    for r in wide.iter_rows(named=True):
        n = r["_n"]
        for p in ps:
            if p > 0 and 1 - p < 1 / max(n, 1):  # beyond the resolution of n samples
                continue
            rows.append({**({by: r[by]} if by else {}), "percentile": p * 100,
                         "nines": -math.log10(1 - p) if p < 1 else None, "value_ms": r[f"{p!r}"]})
    return pl.DataFrame(rows)


# A summary makes about a dozen passes over the rows; up to this many rows it reads the columns
# it needs once into memory and sorts instead of decompressing the Parquet file on every pass.
# Measured on a 1M-row run (one endpoint): 0.30 CPU-s and a peak of +271 MB RSS in memory, against
# 0.73 CPU-s and +106 MB streaming; so at most about 550 MB at this threshold. A longer run
# streams, so memory stays bounded however long the run.
SUMMARY_IN_MEMORY_ROWS = 2_000_000
_SUMMARY_COLUMNS = ("endpoint", "intended_ns", "start_ns", "end_ns", "latency_ns", "service_ns", "ttfb_ns", "status",
                    "error",
                    "bytes")


def upgrade_requests(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Rows of a run directory of schema version 1 with the columns version 2 added: ``wire_bytes``
    is ``bytes`` (that version read bodies uncompressed), the timing columns are null."""
    names = lf.collect_schema().names()
    missing = [e for name, e in (("wire_bytes", pl.col("bytes").alias("wire_bytes")),
                                 ("connect_ns", pl.lit(None, pl.Int64).alias("connect_ns")),
                                 ("ttfb_ns", pl.lit(None, pl.Int64).alias("ttfb_ns")),
                                 ("reused", pl.lit(None, pl.Boolean).alias("reused"))) if name not in names]
    return lf.with_columns(missing) if missing else lf


@dataclass
class Run:
    """One run directory, loaded lazily. ``requests`` is a LazyFrame over requests.parquet."""

    path: Path
    meta: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> Run:
        path = Path(path)
        if not path.is_dir():
            raise RunDirError(f"{path}: no such run directory (runs live under data/runs/<run-id>)")
        rd = RunDir(path)
        meta = rd.meta()
        rd.recover()
        if not (path / REQUESTS).exists():
            raise RunDirError(f"{path}: no {REQUESTS}; the run did not record any request")
        run = cls(path, rd.meta())
        try:
            pl.read_parquet_schema(path / REQUESTS)
        except Exception as exc:  # polars raises ComputeError / OSError variants for corrupt files
            raise RunDirError(f"{path / REQUESTS}: not a readable Parquet file ({type(exc).__name__})") from None
        del meta
        return run

    @property
    def run_id(self) -> str:
        run_id: str = self.meta["run_id"]
        return run_id

    @property
    def requests(self) -> pl.LazyFrame:
        return with_ms(upgrade_requests(pl.scan_parquet(self.path / REQUESTS)))

    @property
    def queries(self) -> pl.LazyFrame:
        """The server-side SQL of queries.parquet (:func:`read_queries`); analyses in perfbench.analysis.queries."""
        return read_queries(self.path)

    @property
    def duration_s(self) -> float:
        d = self.meta.get("elapsed_s")
        if d:
            return float(d)
        return (pl.scan_parquet(self.path / REQUESTS).select(pl.col("end_ns").max()).collect().item() or 0) / 1e9

    def summary(self) -> dict[str, Any]:
        """summary.json as written, or computed from the rows when it is missing."""
        p = self.path / SUMMARY
        if p.exists():
            return read_json(p)
        return self.compute_summary()

    def _summary_rows(self, table: pa.Table | None = None) -> tuple[pl.LazyFrame, bool]:
        """The rows :func:`summarize` reads: in memory (read and decompressed once) up to
        ``SUMMARY_IN_MEMORY_ROWS``, streamed from the file (bounded memory) beyond that.
        ``table``: the run's rows, already in memory (the engine's, just written to the file)."""
        if table is not None and table.num_rows <= SUMMARY_IN_MEMORY_ROWS:
            names = table.column_names
            df = cast(pl.DataFrame, pl.from_arrow(table.select([c for c in _SUMMARY_COLUMNS if c in names])))  # a Table
            return df.lazy(), True
        lf = pl.scan_parquet(self.path / REQUESTS)
        try:
            rows = pq.ParquetFile(self.path / REQUESTS).metadata.num_rows
        except Exception:  # noqa: BLE001 - unreadable metadata: stream, and let polars say what is wrong
            return lf, False
        if rows > SUMMARY_IN_MEMORY_ROWS:
            return lf, False
        names = lf.collect_schema().names()
        return lf.select(*[c for c in _SUMMARY_COLUMNS if c in names]).collect().lazy(), True

    def compute_summary(self, table: pa.Table | None = None) -> dict[str, Any]:
        """The summary of the run's rows (``table``: those rows, when they are in memory already)."""
        engine = self.meta.get("engine_stats") or {}
        shape = self.meta.get("shape") or {}
        rows, in_memory = self._summary_rows(table)
        return summarize(rows, duration_s=self.duration_s, in_memory=in_memory,
                         planned=engine.get("planned"), engine=engine, model=shape.get("model", "open"),
                         lag_bound_ms=self.meta.get("parameters", {}).get("lag_bound_ms", DEFAULT_LAG_BOUND_MS))

    def write_summary(self, slos: list[SLO] | None = None, table: pa.Table | None = None) -> dict[str, Any]:
        """Recompute summary.json from the rows (with SLO verdicts for ``slos``, perfbench.analysis.slo.SLO);
        ``table``: the rows of requests.parquet, when they are in memory already."""
        from .slo import evaluate

        s = {"schema_version": self.meta["schema_version"], "run_id": self.run_id, **self.compute_summary(table)}
        if slos:
            s["slo"] = evaluate(slos, s)
        write_json(self.path / SUMMARY, s)
        return s

    def endpoint_table(self) -> pl.DataFrame:
        """Per endpoint: count, req/s, p50/p95/p99/max latency (ms), errors; the overall row last."""
        lf = pl.scan_parquet(self.path / REQUESTS)
        per = endpoint_stats(lf, self.duration_s)
        tot = endpoint_stats(lf.with_columns(pl.lit("ALL").alias("endpoint")), self.duration_s)
        cols = ["endpoint", "count", "rps", "p50_ms", "p95_ms", "p99_ms", "p99_9_ms", "max_ms", "errors",
                "error_rate"]
        return pl.concat([per.select(cols), tot.select(cols)])


# --- server side: queries.parquet, written by perfbench.agent.AgentCollector; every analysis of it (and of
# cache.parquet) lives in perfbench.analysis.queries.


def read_queries(path: str | Path) -> pl.LazyFrame:
    """queries.parquet of a run directory as a LazyFrame (``duration_ms`` and ``t_s`` added)."""
    p = Path(path) / QUERIES
    if not p.exists():
        raise RunDirError(f"{Path(path)}: no {QUERIES}; run with an AgentCollector against a service "
                          "running perfbench.agent")
    return pl.scan_parquet(p).with_columns((pl.col("duration_ns") / 1e6).alias("duration_ms"),
                                           (pl.col("t_ns") / 1e9).alias("t_s"))
