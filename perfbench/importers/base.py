"""What every source becomes: ``Measurements``, raw samples in perfbench's requests shape or a summary.

A source with raw samples (a perfbench run, a baseline, Locust's per-request log, k6's ``--out json``,
pytest-benchmark JSON with its ``data``) gives ``requests``: a frame with the columns of
``perfbench.rundir.REQUEST_SCHEMA`` (times in integer ns from the first sample), so ``perfbench.analysis.results``
and ``perfbench.report.charts`` work on it unchanged. A source with aggregates only (Locust's ``_stats.csv``, k6's
``--summary-export``, pytest-benchmark without data) gives ``summary``: one row per endpoint with the
columns of ``results.endpoint_stats`` that it knows (``count, errors, rps, p50_ms, p90_ms, p95_ms, p99_ms,
p99_9_ms, max_ms, mean_ms, min_ms``; null where the source does not say).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import polars as pl

from ..rundir import REQUEST_SCHEMA

# from_arrow is typed DataFrame | Series; of a Table it is a DataFrame.
REQUEST_DTYPES: pl.Schema = cast(pl.DataFrame, pl.from_arrow(REQUEST_SCHEMA.empty_table())).schema
OVERALL = "ALL"  # the endpoint name of a source's all-requests row (as in Run.endpoint_table)

SUMMARY_SCHEMA: dict[str, Any] = {
    "endpoint": pl.String, "count": pl.Int64, "errors": pl.Int64, "rps": pl.Float64,
    "p50_ms": pl.Float64, "p90_ms": pl.Float64, "p95_ms": pl.Float64, "p99_ms": pl.Float64,
    "p99_9_ms": pl.Float64, "max_ms": pl.Float64, "mean_ms": pl.Float64, "min_ms": pl.Float64,
}


@dataclass
class Measurements:
    """One side of a comparison, whatever tool measured it.

    - ``label``: how to name it (run id, baseline name, file name).
    - ``source``: ``perfbench``, ``baseline``, ``locust``, ``k6`` or ``pytest-benchmark``.
    - ``requests``: raw samples in the requests shape, or None.
    - ``summary``: per-endpoint aggregates (SUMMARY_SCHEMA), or None; used only without ``requests``.
    - ``duration_s``: the span the counts cover (throughput = count / duration_s), None when meaningless.
    - ``counts``: per endpoint, how many requests the source really had when ``requests`` is a subsample.
    - ``meta``: ``machine`` (perfbench's machine_info keys where known), ``versions``, ``target``, ``shape``...
    - ``rounding``: ``"locust"`` when the summary's percentiles are Locust's rounded buckets.
    - ``notes``: what a reader must know about this source (e.g. no coordinated-omission correction).
    """

    label: str
    source: str
    requests: pl.DataFrame | None = None
    summary: pl.DataFrame | None = None
    duration_s: float | None = None
    counts: dict[str, int] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    rounding: str | None = None
    notes: list[str] = field(default_factory=list)
    path: Path | None = None

    @property
    def has_samples(self) -> bool:
        return self.requests is not None

    @property
    def machine(self) -> dict[str, Any]:
        return self.meta.get("machine") or {}

    def endpoints(self) -> list[str]:
        frame = self.requests if self.requests is not None else self.summary
        if frame is None or frame.height == 0:
            return []
        return sorted(frame["endpoint"].unique().to_list())


def samples_frame(endpoint, start_ns, latency_ns, *, method=None, status=None, error=None, error_detail=None,
                  nbytes=None) -> pl.DataFrame:
    """A frame in perfbench's requests shape from columns (lists or Series) of equal length.

    Times are re-based so that the first sample starts at 0. Other tools measure from the actual send,
    so intended = start and service time = latency (no coordinated-omission correction is possible).
    """
    n = len(endpoint)
    df = pl.DataFrame({
        "endpoint": pl.Series(endpoint, dtype=pl.String),
        "start_ns": pl.Series(start_ns, dtype=pl.Int64),
        "latency_ns": pl.Series(latency_ns, dtype=pl.Int64),
        "method": pl.Series(method if method is not None else ["GET"] * n, dtype=pl.String),
        "status": pl.Series(status if status is not None else [None] * n, dtype=pl.Int16),
        "error": pl.Series(error if error is not None else [None] * n, dtype=pl.String),
        "error_detail": pl.Series(error_detail if error_detail is not None else [None] * n, dtype=pl.String),
        "bytes": pl.Series(nbytes if nbytes is not None else [0] * n, dtype=pl.Int64),
    })
    t0 = df["start_ns"].min() if n else 0
    df = df.sort("start_ns").with_columns(pl.col("start_ns") - t0).with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("request_id"),
        pl.col("start_ns").alias("intended_ns"),
        (pl.col("start_ns") + pl.col("latency_ns")).alias("end_ns"),
        pl.col("latency_ns").alias("service_ns"),
        pl.lit(0, pl.Int16).alias("worker"),
        pl.lit(None, pl.Int32).alias("vu"),
        pl.lit(0, pl.Int16).alias("stage"),
        pl.col("bytes").alias("wire_bytes"),
        pl.lit(None, pl.Int64).alias("connect_ns"),
        pl.lit(None, pl.Int64).alias("ttfb_ns"),
        pl.lit(None, pl.Boolean).alias("reused"),
        pl.lit(0, pl.Int16).alias("redirects"),
        pl.lit(None, pl.String).alias("final_path"),
        pl.lit(None, pl.String).alias("flow"), pl.lit(None, pl.Int64).alias("flow_run"),
        pl.lit(None, pl.Int32).alias("step"), pl.lit(None, pl.String).alias("user_class"),
    )
    return df.select(REQUEST_SCHEMA.names).cast(REQUEST_DTYPES)


def summary_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """A summary frame (SUMMARY_SCHEMA) from dicts; missing keys become null."""
    return pl.DataFrame([{k: r.get(k) for k in SUMMARY_SCHEMA} for r in rows], schema=SUMMARY_SCHEMA)


def http_error_kind(status: int | None, failed: bool) -> str | None:
    """perfbench's error vocabulary for another tool's failed request."""
    if not failed:
        return None
    if status is None or status == 0:
        return "client"
    if 400 <= status < 500:
        return "http_4xx"
    if status >= 500:
        return "http_5xx"
    return "check"
