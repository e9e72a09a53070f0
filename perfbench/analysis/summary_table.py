"""A run's per-endpoint table from its summary (summary.json): the one source of a report's figures.

The report's headline, its endpoint table, ``perfbench summary`` and CI (which reads summary.json) all
show the same numbers because they all come from :func:`summary_table` over the same summary: the
requests after the run's own warm-up (``perfbench run --warmup``), exact percentiles over every one of
them, req/s over the measured span. A flow's own rows (``flow:<name>``) are rows of their own and are
not in the overall row, as in summary.json.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from ..errors import ConfigError

OVERALL = "ALL"  # the endpoint name of the all-requests row, last
COLUMNS = {"endpoint": pl.String, "count": pl.Int64, "rps": pl.Float64, "p50_ms": pl.Float64,
           "p95_ms": pl.Float64, "p99_ms": pl.Float64, "p99_9_ms": pl.Float64, "max_ms": pl.Float64,
           "errors": pl.Int64, "error_rate": pl.Float64}
LATENCY = {"p50_ms": "p50", "p95_ms": "p95", "p99_ms": "p99", "p99_9_ms": "p99_9", "max_ms": "max"}


def _row(name: str, block: dict[str, Any]) -> dict[str, Any]:
    lat = block.get("latency_ms") or {}
    count = block.get("count") or 0
    errors = block.get("errors") or 0
    rate = block.get("error_rate")
    return {"endpoint": name, "count": count, "rps": block.get("rps"),
            **{col: lat.get(key) for col, key in LATENCY.items()},
            "errors": errors, "error_rate": rate if rate is not None else (errors / count if count else None)}


def summary_table(summary: dict[str, Any]) -> pl.DataFrame:
    """Per endpoint (summary.json's order), then the overall row (``ALL``): count, req/s, p50, p95, p99,
    p99.9 and max latency (ms), errors and the error rate (a fraction)."""
    if not isinstance(summary, dict) or not isinstance(summary.get("endpoints", {}), dict):
        raise ConfigError("summary_table: expected a run's summary (summary.json: a dict with 'endpoints' and "
                          f"'overall'), got {type(summary).__name__}")
    rows = [_row(str(name), block) for name, block in (summary.get("endpoints") or {}).items()]
    rows.append(_row(OVERALL, summary.get("overall") or {}))
    return pl.DataFrame(rows, schema=COLUMNS)


def overall(summary: dict[str, Any]) -> dict[str, Any]:
    """The overall row of :func:`summary_table`, as a dict (the headline's figures)."""
    return summary_table(summary).row(-1, named=True)
