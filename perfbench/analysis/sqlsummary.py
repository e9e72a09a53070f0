"""summary.json's ``sql`` block and the reading of queries.parquet: what the service's SQL did, in brief
(the rest of the analysis of queries.parquet and cache.parquet lives in ``perfbench.analysis.queries``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from ..errors import RunDirError
from ..rundir import QUERIES
from ..sqltext import N_PLUS_ONE_THRESHOLD


def pct(col: str | pl.Expr, p: float) -> pl.Expr:
    """Exact inverted-CDF percentile of ``col`` as an aggregation expression."""
    e = pl.col(col) if isinstance(col, str) else col
    e = e.drop_nulls()
    n = e.len()
    idx = (n.cast(pl.Float64) * p).ceil().cast(pl.Int64) - 1
    return e.sort().get(pl.max_horizontal(idx, pl.lit(0)), null_on_oob=True)


def read_queries(path: str | Path) -> pl.LazyFrame:
    """queries.parquet of a run directory as a LazyFrame (``duration_ms`` and ``t_s`` added)."""
    p = Path(path) / QUERIES
    if not p.exists():
        raise RunDirError(f"{Path(path)}: no {QUERIES}; run with an AgentCollector against a service "
                          "running perfbench.agent")
    return pl.scan_parquet(p).with_columns((pl.col("duration_ns") / 1e6).alias("duration_ms"),
                                           (pl.col("t_ns") / 1e9).alias("t_s"))


def sql_summary(requests: pl.LazyFrame, queries: pl.LazyFrame, agent: dict[str, Any] | None = None, *,
                top: int = 5) -> dict[str, Any]:
    """summary.json's ``sql``: the service's statements per request by endpoint (the engine's names; a request
    that ran none counts 0), the N+1 patterns found (at most ``top``), and what could not be attributed.

    ``statements``: all the agent recorded; ``unattributed``: those without a request id (a missing or
    malformed X-Request-Id, or outside any request); ``agent``: the collector's report in meta.json. Each
    N+1 pattern names its ``call_site`` and ``call_function`` (the service's code that issued it, as the agent
    sampled it for that server route; null from an agent that does not sample)."""
    names = queries.collect_schema().names()
    sites = (queries.filter(pl.col("call_site").is_not_null()).group_by("endpoint", "fingerprint")
             .agg(pl.col("call_site").first(), pl.col("call_function").first()).rename({"endpoint": "route"})
             if "call_site" in names else None)
    q = queries.select("request_id", "fingerprint", "statement", "duration_ns", pl.col("endpoint").alias("route"))
    totals = q.select(pl.len().alias("n"), pl.col("request_id").null_count().alias("unattributed")).collect().row(0)
    per = (q.filter(pl.col("request_id").is_not_null()).group_by("request_id")
           .agg(pl.len().alias("statements"), (pl.col("duration_ns").sum() / 1e6).alias("db_ms")))
    joined = (requests.select("request_id", "endpoint").join(per, on="request_id", how="left")
              .with_columns(pl.col("statements").fill_null(0), pl.col("db_ms").fill_null(0.0)))
    repeated = (q.filter(pl.col("request_id").is_not_null()).group_by("request_id", "fingerprint")
                .agg(pl.len().alias("repetitions"), pl.col("statement").first(), pl.col("route").first())
                .filter(pl.col("repetitions") >= N_PLUS_ONE_THRESHOLD)
                .join(requests.select("request_id", "endpoint"), on="request_id", how="inner"))
    endpoints = {}
    for row in (joined.group_by("endpoint").agg(
            pl.len().alias("requests"), pl.col("statements").sum().alias("total"),
            pct("statements", 0.5).alias("p50"), pct("statements", 0.99).alias("p99"),
            pl.col("statements").max().alias("max"), pct("db_ms", 0.5).alias("db_ms_p50"))
            .sort("endpoint").collect().iter_rows(named=True)):
        name = row.pop("endpoint")
        endpoints[name] = {**row, "per_request_mean": row["total"] / row["requests"] if row["requests"] else 0.0}
    patterns = (repeated.group_by("endpoint", "fingerprint")
                  .agg(pl.len().alias("requests"), pl.col("repetitions").max().alias("repetitions_max"),
                       pl.col("statement").first(), pl.col("route").mode().sort().first())
                  .sort(["requests", "repetitions_max", "endpoint", "fingerprint"],
                        descending=[True, True, False, False]))
    patterns = (patterns.join(sites, on=["route", "fingerprint"], how="left", maintain_order="left")
                if sites is not None else patterns.with_columns(call_site=pl.lit(None, pl.String),
                                                                call_function=pl.lit(None, pl.String)))
    n_plus_one = patterns.drop("route").collect()
    agent = agent or {}
    n_requests = sum(e["requests"] for e in endpoints.values())
    return {"statements": totals[0], "unattributed": totals[1], "threshold_n_plus_one": N_PLUS_ONE_THRESHOLD,
            "per_request_mean": sum(e["total"] for e in endpoints.values()) / n_requests if n_requests else None,
            "endpoints": endpoints, "n_plus_one": n_plus_one.head(top).to_dicts(),
            "n_plus_one_patterns": n_plus_one.height,
            "unattributed_requests": agent.get("unattributed_requests"), "dropped": agent.get("dropped_queries")}
