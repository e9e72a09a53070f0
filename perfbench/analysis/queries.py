"""Every query and cache analysis: pure Polars functions over a run's ``queries.parquet`` and ``cache.parquet``.

The agent (:mod:`perfbench.agent.sql`) records each statement inside the service and the
``AgentCollector`` writes them to the run directory; ``run.queries`` reads them
(:func:`perfbench.analysis.results.read_queries`). Here they are analysed alone (N+1 findings, queries
per request, slowest fingerprints) and joined to the engine's requests by request id (every request
with its SQL, the statements that dominated the slowest requests). Each figure is computed in one
place: the per-request and per-fingerprint aggregations below are shared by every analysis.
"""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl

from ..errors import ConfigError
from ..rundir import CACHE
from .results import N_PLUS_ONE_THRESHOLD, pct, with_ms
from .target import cache_lookups as cache_lookups  # counted once, as the summary's cache block counts

DEFAULT_N_PLUS_ONE = N_PLUS_ONE_THRESHOLD

QUERY_COLUMNS = ("request_id", "endpoint", "fingerprint", "statement", "duration_ns", "t_ns")


# --- the statements alone ------------------------------------------------------------------------------


def n_plus_one(queries: pl.LazyFrame | pl.DataFrame, threshold: int = DEFAULT_N_PLUS_ONE, *,
               endpoint: str = "endpoint") -> pl.DataFrame:
    """N+1 findings: per request, every fingerprint run ``threshold`` or more times.

    One row per (request, fingerprint): request_id, the endpoint column, fingerprint, statement,
    repetitions, time_ms (what those repetitions cost), and call_site/call_function: where the service
    issued that fingerprint, as the agent sampled it (null in files of agents that did not sample).
    Sorted by time_ms, largest first. Requests without an id cannot be grouped and are left out.
    """
    if threshold < 2:
        raise ConfigError(f"an N+1 needs a threshold of at least 2 repetitions, got {threshold}")
    lf = queries.lazy()
    if "call_site" in lf.collect_schema().names():
        sites = (lf.filter(pl.col("call_site").is_not_null()).group_by("fingerprint")
                 .agg(pl.col("call_site").mode().sort().first(), pl.col("call_function").first()))
    else:
        sites = pl.LazyFrame(schema={"fingerprint": pl.String, "call_site": pl.String, "call_function": pl.String})
    return (lf.filter(pl.col("request_id").is_not_null()).group_by("request_id", endpoint, "fingerprint")
            .agg(pl.len().alias("repetitions"), (pl.col("duration_ns").sum() / 1e6).alias("time_ms"),
                 pl.col("statement").first())
            .filter(pl.col("repetitions") >= threshold)
            .join(sites, on="fingerprint", how="left")
            .select("request_id", endpoint, "fingerprint", "statement", "repetitions", "time_ms", "call_site",
                    "call_function")
            .sort(["time_ms", "request_id"], descending=[True, False]).collect())


def n_plus_one_summary(findings: pl.DataFrame, *, endpoint: str = "endpoint") -> pl.DataFrame:
    """The findings of :func:`n_plus_one` per endpoint and fingerprint: requests affected, repetitions
    (min, median, max), the time they cost (total and mean per request, ms) and the call site."""
    return (findings.group_by(endpoint, "fingerprint")
            .agg(pl.len().alias("requests"), pl.col("repetitions").min().alias("repetitions_min"),
                 pl.col("repetitions").median().alias("repetitions_median"),
                 pl.col("repetitions").max().alias("repetitions_max"),
                 pl.col("time_ms").sum().alias("time_ms_total"), pl.col("time_ms").mean().alias("time_ms_mean"),
                 pl.col("statement").first(), *(pl.col(c).first() for c in ("call_site", "call_function")
                                                 if c in findings.columns))
            .sort(["time_ms_total", endpoint], descending=[True, False]))


def _per_request(queries: pl.LazyFrame | pl.DataFrame, *keys: str) -> pl.LazyFrame:
    """Attributed statements grouped by ``keys`` (the request id first): queries, fingerprints
    (distinct), db_ms (summed durations). Statements without a request id are left out."""
    return (queries.lazy().filter(pl.col("request_id").is_not_null()).group_by(*keys)
            .agg(pl.len().alias("queries"), pl.col("fingerprint").n_unique().alias("fingerprints"),
                 (pl.col("duration_ns").sum() / 1e6).alias("db_ms")))


def queries_per_request(queries: pl.LazyFrame | pl.DataFrame, *, endpoint: str = "endpoint") -> pl.DataFrame:
    """Per attributed request: endpoint, queries, distinct fingerprints, db_ms (summed durations).

    From the statements alone, so a request that ran no SQL has no row; :func:`request_queries`
    gives every request the engine sent."""
    return _per_request(queries, "request_id", endpoint).sort("request_id").collect()


def query_count_stats(per_request: pl.DataFrame, *, endpoint: str = "endpoint") -> pl.DataFrame:
    """Queries per request per endpoint as a distribution: requests, min, p50, p90, p99, max, mean, and
    the DB time percentiles db_p50_ms, db_p99_ms.

    ``per_request``: the frame of :func:`queries_per_request` or of :func:`request_queries`; from the
    latter (which has ``db_share``) the median DB share ``db_share_p50`` is added too."""
    share = [pct("db_share", 0.5).alias("db_share_p50")] if "db_share" in per_request.columns else []
    return (per_request.lazy().group_by(endpoint).agg(
        pl.len().alias("requests"), pl.col("queries").min().alias("min"), pct("queries", 0.5).alias("p50"),
        pct("queries", 0.9).alias("p90"), pct("queries", 0.99).alias("p99"), pl.col("queries").max().alias("max"),
        pl.col("queries").mean().alias("mean"), pct("db_ms", 0.5).alias("db_p50_ms"),
        pct("db_ms", 0.99).alias("db_p99_ms"), *share,
    ).sort(endpoint).collect())


def _per_fingerprint(queries: pl.LazyFrame, *more: pl.Expr) -> pl.LazyFrame:
    """Statements grouped by fingerprint: count, requests (distinct ids), total_ms, mean_ms, statement,
    and the ``more`` aggregations."""
    ns = pl.col("duration_ns")
    return queries.group_by("fingerprint").agg(
        pl.len().alias("count"), pl.col("request_id").n_unique().alias("requests"),
        (ns.sum() / 1e6).alias("total_ms"), (ns.mean() / 1e6).alias("mean_ms"), pl.col("statement").first(),
        *more)


def slowest_fingerprints(queries: pl.LazyFrame | pl.DataFrame, top: int | None = 20) -> pl.DataFrame:
    """Per fingerprint: count, total_ms, mean_ms, p95_ms, max_ms, requests, endpoints; by total time."""
    ns = pl.col("duration_ns")
    out = (_per_fingerprint(queries.lazy(), (pct(ns, 0.95) / 1e6).alias("p95_ms"), (ns.max() / 1e6).alias("max_ms"),
                            pl.col("endpoint").drop_nulls().unique().sort().str.join(", ").alias("endpoints"))
           .select("fingerprint", "count", "total_ms", "mean_ms", "p95_ms", "max_ms", "requests", "endpoints",
                   "statement")
           .sort(["total_ms", "fingerprint"], descending=[True, False]).collect())
    return out if top is None else out.head(top)


# --- joined to the engine's requests -------------------------------------------------------------------


def request_queries(requests: pl.LazyFrame, queries: pl.LazyFrame) -> pl.DataFrame:
    """Every request (none lost: a left join by request id) with its server-side SQL.

    Columns: the request's ``request_id, endpoint`` (the scenario's name), ``latency_ms,
    service_ms, status, error``, then ``queries`` (0 when the service ran none or never saw the
    request), ``fingerprints`` (distinct), ``db_ms`` (summed statement time) and ``db_share``
    (db_ms / service_ms: the share of the time the client waited that went to the database;
    statements can overlap, so it can exceed 1 for a service that runs them concurrently).
    """
    per = _per_request(queries, "request_id")
    req = with_ms(requests).select("request_id", "endpoint", "latency_ms", "service_ms", "status", "error")
    return (req.join(per, on="request_id", how="left")
            .with_columns(pl.col("queries").fill_null(0).cast(pl.Int64),
                          pl.col("fingerprints").fill_null(0).cast(pl.Int64), pl.col("db_ms").fill_null(0.0))
            .with_columns(pl.when(pl.col("service_ms") > 0).then(pl.col("db_ms") / pl.col("service_ms"))
                          .otherwise(None).alias("db_share"))
            .sort("request_id").collect())


def queries_with_requests(requests: pl.LazyFrame, queries: pl.LazyFrame) -> pl.LazyFrame:
    """Statements attributed to a request the engine recorded, with the client's endpoint name
    (``endpoint``; the server's route stays in ``route``) and the request's latency."""
    req = with_ms(requests).select("request_id", "endpoint", "latency_ms", "service_ms")
    return (queries.filter(pl.col("request_id").is_not_null()).rename({"endpoint": "route"})
            .join(req, on="request_id", how="inner"))


def slowest_requests_queries(requests: pl.LazyFrame, queries: pl.LazyFrame, fraction: float = 0.01,
                             top: int = 10) -> tuple[pl.DataFrame, pl.DataFrame]:
    """For the slowest ``fraction`` of requests (by latency; at least one): ``(requests, fingerprints)``.

    ``requests``: those requests with their query counts and DB time (see :func:`request_queries`).
    ``fingerprints``: which statements dominated them: per fingerprint, executions, requests it ran
    in, total and mean ms, and its share of those requests' DB time; the ``top`` by total time.
    """
    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
    per = request_queries(requests, queries)
    n = max(1, math.ceil(per.height * fraction)) if per.height else 0
    slow = per.sort(["latency_ms", "request_id"], descending=[True, False]).head(n)
    fps = (_per_fingerprint(queries.filter(pl.col("request_id").is_in(slow["request_id"].to_list())))
           .select("fingerprint", pl.col("count").alias("executions"), "requests", "total_ms", "mean_ms",
                   "statement")
           .collect())
    total = fps["total_ms"].sum() if fps.height else 0.0
    fps = fps.with_columns((pl.col("total_ms") / total if total else pl.lit(None, pl.Float64)).alias("share")
                           ).sort(["total_ms", "fingerprint"], descending=[True, False]).head(top)
    return slow, fps


# --- cache events --------------------------------------------------------------------------------------


def read_cache_events(path: str | Path) -> pl.DataFrame:
    """cache.parquet of a run, counted per server route and kind (hit/miss); empty without the file."""
    p = Path(path) / CACHE
    if not p.exists():
        return pl.DataFrame(schema={"endpoint": pl.String, "kind": pl.String, "count": pl.UInt32})
    return (pl.scan_parquet(p).group_by("endpoint", "kind").agg(pl.len().alias("count"))
            .sort("endpoint", "kind").collect())
