"""Locust's ``--csv`` files: ``<prefix>_stats.csv``, ``_stats_history.csv``, ``_failures.csv``, and the
per-request log of ``locust.contrib.csv_request_logger`` (read from ``<prefix>_requests.csv`` or a path).

With the per-request log, every request becomes a row of the requests shape (response times as logged,
to 0.01 ms). Without it, only ``_stats.csv`` aggregates exist, and Locust's percentiles are taken from
response times rounded to about 2 significant digits (to 1 ms below 100 ms, 10 ms below 1 s, 100 ms below
10 s, 1 s above): a comparison then uses them as intervals of that width, not as exact values.
Locust runs a closed model and measures from the actual send, so its latencies can hide stalls.
"""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl

from ..errors import ConfigError
from ..scalars import number
from .base import OVERALL, Measurements, http_error_kind, samples_frame, summary_frame

SUFFIXES = ("_stats.csv", "_stats_history.csv", "_failures.csv", "_exceptions.csv", "_requests.csv")
LOG_HEADER = ("timestamp", "request_type", "name", "response_time_ms")
CLOSED_NOTE = ("Locust: closed model, latency measured from the actual send (no coordinated-omission "
               "correction), so a stalled server also slows the load")
ROUNDING_NOTE = ("Locust's percentiles come from response times rounded to ~2 significant digits: compared "
                 "as rounding intervals, with no confidence interval (no raw samples)")


def locust_step(value_ms: float) -> float:
    """The width of Locust's response-time bucket around a rounded value (locust.stats)."""
    v = abs(value_ms)
    return 1.0 if v < 100 else 10.0 if v < 1000 else 100.0 if v < 10000 else 1000.0


def prefix_of(path: str | Path) -> Path:
    """``dir/run`` from ``dir/run`` or any of its files (``dir/run_stats.csv`` ...)."""
    p = Path(path)
    for s in SUFFIXES:
        if p.name.endswith(s):
            return p.with_name(p.name[: -len(s)])
    return p


def is_request_log(path: Path) -> bool:
    try:
        with open(path, newline="") as f:
            return tuple(next(csv.reader(f), ())[:4]) == LOG_HEADER
    except (OSError, UnicodeDecodeError):
        return False


def read_locust(path: str | Path, *, requests_log: str | Path | None = None) -> Measurements:
    """Read a Locust ``--csv`` result set: ``path`` is the prefix, one of its files, or a request log."""
    p = Path(path)
    if p.is_file() and is_request_log(p):
        requests_log, prefix = p, None
    else:
        prefix = prefix_of(p)
    stats = Path(f"{prefix}_stats.csv") if prefix else None
    log = Path(requests_log) if requests_log else (Path(f"{prefix}_requests.csv") if prefix else None)
    if stats is not None and not stats.is_file():
        stats = None
    if log is not None and not log.is_file():
        log = None
    if stats is None and log is None:
        raise ConfigError(f"{path}: no Locust result here; expected {prefix}_stats.csv (locust --csv {prefix}) "
                          "or a per-request log written by locust.contrib.csv_request_logger")
    named = prefix or log
    assert named is not None  # no prefix only when path is the request log, which exists
    label = named.name.removesuffix("_requests.csv")
    meta = {"tool": "locust", "machine": {}, "versions": {}}
    m = Measurements(label=label, source="locust", meta=meta, notes=[CLOSED_NOTE],
                     path=stats if stats is not None else log)
    if stats is not None:
        m.summary, m.duration_s = _stats(stats)
    history = Path(f"{prefix}_stats_history.csv") if prefix else None
    if history and history.is_file():
        m.meta["history"] = str(history)
    failures = Path(f"{prefix}_failures.csv") if prefix else None
    if failures and failures.is_file():
        m.meta["failures"] = pl.read_csv(failures).to_dicts()
    if log is not None:
        m.requests = _request_log(log)
        if m.requests.height:  # the log's own span: _stats.csv may be written before the last requests end
            m.duration_s = max(number(m.requests["end_ns"].max()) / 1e9, 1e-9)
    else:
        m.rounding = "locust"
        m.notes.append(ROUNDING_NOTE)
    return m


def _stats(path: Path) -> tuple[pl.DataFrame, float | None]:
    df = pl.read_csv(path, infer_schema_length=0)  # all strings: "N/A" appears in empty runs

    def num(v):
        try:
            return float(v)
        except (TypeError, ValueError):
            return None

    rows, duration = [], None
    for r in df.iter_rows(named=True):
        name = OVERALL if r["Name"] == "Aggregated" and not r.get("Type") else r["Name"]
        count = int(num(r["Request Count"]) or 0)
        rps = num(r["Requests/s"])
        if name == OVERALL and rps:
            duration = count / rps
        rows.append({"endpoint": name, "count": count, "errors": int(num(r["Failure Count"]) or 0), "rps": rps,
                     "p50_ms": num(r.get("50%")), "p90_ms": num(r.get("90%")), "p95_ms": num(r.get("95%")),
                     "p99_ms": num(r.get("99%")), "p99_9_ms": num(r.get("99.9%")),
                     # min, max and mean are exact in Locust (not bucketed)
                     "max_ms": num(r["Max Response Time"]), "mean_ms": num(r["Average Response Time"]),
                     "min_ms": num(r["Min Response Time"])})
    return summary_frame(rows), duration


def _request_log(path: Path) -> pl.DataFrame:
    df = pl.read_csv(path, schema_overrides={"timestamp": pl.Float64, "response_time_ms": pl.Float64,
                                             "response_length": pl.Int64, "status_code": pl.Int64,
                                             "exception": pl.String, "name": pl.String,
                                             "request_type": pl.String})
    df = df.filter(pl.col("response_time_ms").is_not_null())
    status = [None if s in (None, 0) else s for s in df["status_code"].to_list()]
    failed = [bool(e) for e in df["exception"].fill_null("").to_list()]
    return samples_frame(
        df["name"], (df["timestamp"] * 1e9).round().cast(pl.Int64), (df["response_time_ms"] * 1e6).round(),
        method=df["request_type"], status=status,
        error=[http_error_kind(s, f) for s, f in zip(status, failed, strict=True)],
        error_detail=[e or None for e in df["exception"].fill_null("").to_list()],
        nbytes=df["response_length"].fill_null(0))
