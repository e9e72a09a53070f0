"""The small frames the run charts draw that ``perfbench.analysis.results`` does not make: the offered rate of
a run's plan, the warm-up end, status codes and per-endpoint latency over time, and the failures table.

Pure functions of a run's ``meta`` dict or requests frame (Lazy or not); each returns a Polars frame.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from ...errors import ConfigError


def _lazy(requests: pl.LazyFrame | pl.DataFrame, cols: list[str], func: str) -> pl.LazyFrame:
    lf = requests.lazy() if isinstance(requests, pl.DataFrame) else requests
    if not isinstance(lf, pl.LazyFrame):
        raise ConfigError(f"charts.{func}: expected a requests frame (run.requests), got {type(requests).__name__}")
    missing = [c for c in cols if c not in lf.collect_schema().names()]
    if missing:
        raise ConfigError(f"charts.{func}: the requests frame lacks column(s) {', '.join(missing)}; pass "
                          f"run.requests (perfbench.analysis.results.Run)")
    return lf


def planned_rate(meta: dict[str, Any]) -> pl.DataFrame | None:
    """The offered (planned) arrival rate of an open-model run, ``t_s, rps`` at each stage's start and end,
    from ``meta["shape"]["stages"]``; None for a closed model or a meta without stages."""
    shape = meta.get("shape") or {}
    stages = shape.get("stages") or []
    if shape.get("model") != "open" or not stages:
        return None
    t, ts, rps = 0.0, [], []
    for st in stages:
        dur = float(st.get("duration_s") or 0)
        ts += [t, t + dur]
        rps += [float(st.get("start_rps") or 0), float(st.get("end_rps") or 0)]
        t += dur
    return pl.DataFrame({"t_s": ts, "rps": rps})


def warmup_end_s(meta: dict[str, Any]) -> float | None:
    """Seconds from the run's start at which its warm-up ends (``meta["warmup"]["end_s"]``), if it had one."""
    w = meta.get("warmup")
    end = w.get("end_s") if isinstance(w, dict) else None
    return float(end) if isinstance(end, int | float) and not isinstance(end, bool) and end > 0 else None


def run_domain(meta: dict[str, Any], duration_s: float | None = None) -> tuple[float, float]:
    """The run's time axis, 0 (the run's start) to its duration: the planned one, else ``duration_s``."""
    shape = meta.get("shape") or {}
    end = shape.get("duration_s") or duration_s or 1.0
    if duration_s:
        end = max(float(end), float(duration_s))
    return 0.0, float(end)


def status_label() -> pl.Expr:
    """A response's status code as text, or its error kind when no response came (``timeout``, ``connect``)."""
    return (pl.when(pl.col("status").is_not_null() & (pl.col("status") > 0))
            .then(pl.col("status").cast(pl.Int64).cast(pl.String))
            .otherwise(pl.coalesce(pl.col("error"), pl.lit("no response"))))


def status_timeseries(requests: pl.LazyFrame | pl.DataFrame, every_s: float = 1.0) -> pl.DataFrame:
    """Responses per second by status code (or error kind when none came) per time bucket of completion:
    ``t_s, status, rps``."""
    lf = _lazy(requests, ["end_ns", "status", "error"], "status_timeseries")
    step = int(every_s * 1e9)
    return (lf.with_columns(t_s=(pl.col("end_ns") // step) * every_s, status=status_label())
            .group_by("t_s", "status").agg(rps=pl.len() / every_s).sort("t_s", "status").collect())


def endpoint_timeseries(requests: pl.LazyFrame | pl.DataFrame, every_s: float = 1.0, *, q: float = 0.95
                        ) -> pl.DataFrame:
    """A latency percentile (``q``) per endpoint and time bucket of the planned send: ``t_s, endpoint,
    value_ms, requests``."""
    lf = _lazy(requests, ["endpoint", "intended_ns", "latency_ns"], "endpoint_timeseries")
    step = int(every_s * 1e9)
    return (lf.with_columns(t_s=(pl.col("intended_ns") // step) * every_s, latency_ms=pl.col("latency_ns") / 1e6)
            .group_by("t_s", "endpoint").agg(value_ms=pl.col("latency_ms").quantile(q, "higher"),
                                            requests=pl.len())
            .with_columns(pl.col("endpoint").cast(pl.String)).sort("t_s", "endpoint").collect())


def failures(requests: pl.LazyFrame | pl.DataFrame, *, top: int = 10, examples: int = 3) -> pl.DataFrame:
    """The most frequent failures: per error kind, detail, endpoint and status, how many, their share of all
    requests, when the first and last happened (s since the start) and up to ``examples`` request ids.

    Columns ``error, detail, endpoint, status, count, share, first_s, last_s, example_ids``, most frequent first
    (ties by error, detail, endpoint: a total order); empty (same columns) for a run without failures.
    """
    lf = _lazy(requests, ["request_id", "endpoint", "intended_ns", "status", "error"], "failures")
    names = lf.collect_schema().names()
    detail = pl.col("error_detail") if "error_detail" in names else pl.lit(None, pl.String)
    total = lf.select(pl.len()).collect().item()
    out = (lf.filter(pl.col("error").is_not_null())
           .with_columns(detail=detail.cast(pl.String).fill_null(""), endpoint=pl.col("endpoint").cast(pl.String),
                         status=pl.col("status").cast(pl.Int64), t_s=pl.col("intended_ns") / 1e9)
           .group_by("error", "detail", "endpoint", "status")
           .agg(count=pl.len(), first_s=pl.col("t_s").min(), last_s=pl.col("t_s").max(),
                example_ids=pl.col("request_id").sort().head(examples))
           .with_columns(share=pl.col("count") / max(total, 1))
           .sort(["count", "error", "detail", "endpoint", "status"], descending=[True, False, False, False, False],
                 nulls_last=True)
           .head(top)
           .select("error", "detail", "endpoint", "status", "count", "share", "first_s", "last_s", "example_ids")
           .collect())
    return out
