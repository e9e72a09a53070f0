"""A run as Locust's ``--csv`` files: ``PREFIX_stats.csv``, ``PREFIX_stats_history.csv``, ``PREFIX_failures.csv``.

The headers are Locust's (``locust.stats.StatsCSV``), column for column, so a dashboard or a CI step
that reads Locust's files reads a perfbench run. The numbers are perfbench's, computed by the
functions the summary uses (:func:`perfbench.analysis.rowstats.compute`, exact over every row, the
warm-up left out), not Locust's rounded buckets:

- times are in ms (with µs decimals), latency counted from the planned send time (Locust counts
  from the actual send); a percentile is the value of rank ``ceil(n * p)``, as in summary.json;
- ``Requests/s`` and ``Failures/s`` count over the measured span, as summary.json's ``rps``;
- a failure is any row with an error (``slow`` included); ``_failures.csv`` names it
  ``KIND: DETAIL`` (or ``KIND``), per method and endpoint;
- ``_stats_history.csv`` has one ``Aggregated`` row per second of the run (by completion time, as
  Locust logs a request when it ends): that second's requests and failures per second, then, as
  Locust's history does, the percentiles and totals of every request completed so far. ``User
  Count``: the closed model's users that completed a request in that second (0 in the open model).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import rowstats, warmup

if TYPE_CHECKING:
    from .results import Run

# locust.stats.PERCENTILES_TO_REPORT, with the column names get_readable_percentiles gives them
PERCENTILES = {"50%": 0.50, "66%": 0.66, "75%": 0.75, "80%": 0.80, "90%": 0.90, "95%": 0.95, "98%": 0.98,
               "99%": 0.99, "99.9%": 0.999, "99.99%": 0.9999, "100%": 1.0}
STATS_COLUMNS = ["Type", "Name", "Request Count", "Failure Count", "Median Response Time", "Average Response Time",
                 "Min Response Time", "Max Response Time", "Average Content Size", "Requests/s", "Failures/s",
                 *PERCENTILES]
HISTORY_COLUMNS = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", *PERCENTILES,
                   "Total Request Count", "Total Failure Count", "Total Median Response Time",
                   "Total Average Response Time", "Total Min Response Time", "Total Max Response Time",
                   "Total Average Content Size"]
FAILURES_COLUMNS = ["Method", "Name", "Error", "Occurrences"]
AGGREGATED = "Aggregated"  # Locust's name of the all-requests row (its Type is empty)


def _ms(ns: float | None) -> float:
    return 0.0 if ns is None else round(ns / 1e6, 3)


def _batches(run: Run, dictionary: tuple[str, ...] = ()) -> tuple[rowstats.Batches, float]:
    """The measured rows (the warm-up left out) and the span they count over."""
    until = run.warmup_until_ns()
    return warmup.measured(run.batches(dictionary), until), warmup.measured_span(run.duration_s, until)


def _frame(batches: rowstats.Batches, columns: list[str]) -> Any:
    import polars as pl
    import pyarrow as pa

    tables = [pa.table(b) if isinstance(b, pa.RecordBatch) else b for b in batches(columns)]
    if not tables:
        return pl.DataFrame(schema={c: pl.Int64 for c in columns})
    return pl.from_arrow(pa.concat_tables([t.cast(tables[0].schema) for t in tables]).combine_chunks())


def stats_rows(run: Run) -> list[dict[str, Any]]:
    """``_stats.csv``: one row per endpoint (sorted by name and method, as Locust's), then ``Aggregated``."""
    batches, span = _batches(run, ("endpoint", "error"))
    st = rowstats.compute(batches, PERCENTILES)
    methods = {e: m for e, m in _frame(_batches(run)[0], ["endpoint", "method"]).unique().sort("endpoint", "method")
               .iter_rows()}

    def row(method: str, name: str, s: dict[str, Any]) -> dict[str, Any]:
        n, lat = s["count"], s["latency"]
        return {"Type": method, "Name": name, "Request Count": n, "Failure Count": s["errors"],
                "Median Response Time": _ms(lat.get("50%")), "Average Response Time": _ms(s["mean_ns"]),
                "Min Response Time": _ms(lat.get("min")), "Max Response Time": _ms(lat.get("max")),
                "Average Content Size": round(s["bytes"] / n, 3) if n else 0.0,
                "Requests/s": round(n / span, 6) if span > 0 else 0.0,
                "Failures/s": round(s["errors"] / span, 6) if span > 0 else 0.0,
                **{p: (_ms(lat.get(p)) if n else "N/A") for p in PERCENTILES}}

    per = sorted(((str(name), methods.get(name, "")) for name in st.endpoints), key=lambda x: x)
    return [*(row(m, name, st.per[name]) for name, m in per), row("", AGGREGATED, st.overall)]


def history_rows(run: Run) -> list[dict[str, Any]]:
    """``_stats_history.csv``: one ``Aggregated`` row per second (see the module docstring)."""
    batches, _ = _batches(run)
    df = _frame(batches, ["end_ns", "latency_ns", "error", "bytes", "vu"])
    if df.height == 0:
        return []
    df = df.sort("end_ns")
    end, lat = df["end_ns"].to_numpy(), df["latency_ns"].to_numpy()
    failed = df["error"].is_not_null().to_numpy()
    size = df["bytes"].to_numpy()
    second = end // 1_000_000_000
    first, last = int(second[0]), int(second[-1])
    start_unix = int(run.meta.get("start_unix_ns") or 0)
    closed = (run.meta.get("shape") or {}).get("model") == "closed"
    vus = df["vu"].to_numpy() if closed else None
    ranks = _PrefixRanks(lat)
    cum_failed, cum_lat, cum_size = np.cumsum(failed), np.cumsum(lat.astype(np.float64)), np.cumsum(size)
    low, high = np.minimum.accumulate(lat), np.maximum.accumulate(lat)
    out = []
    bounds = np.searchsorted(second, np.arange(first, last + 2), side="left")
    for k, t in enumerate(range(first, last + 1)):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        ranks.grow(lo, hi)
        if hi == 0:
            continue
        values = {p: _ms(ranks.value(q)) for p, q in PERCENTILES.items()}
        users = int(np.unique(vus[lo:hi][vus[lo:hi] >= 0]).size) if vus is not None and hi > lo else 0
        out.append({"Timestamp": (start_unix + (t + 1) * 1_000_000_000) // 1_000_000_000, "User Count": users,
                    "Type": "", "Name": AGGREGATED, "Requests/s": f"{hi - lo:.6f}",
                    "Failures/s": f"{int(failed[lo:hi].sum()):.6f}", **values,
                    "Total Request Count": hi, "Total Failure Count": int(cum_failed[hi - 1]),
                    "Total Median Response Time": values["50%"],
                    "Total Average Response Time": _ms(float(cum_lat[hi - 1]) / hi),
                    "Total Min Response Time": _ms(int(low[hi - 1])), "Total Max Response Time": _ms(int(high[hi - 1])),
                    "Total Average Content Size": round(float(cum_size[hi - 1]) / hi, 3)})
    return out


class _PrefixRanks:
    """Exact order statistics of a growing prefix of ``values`` (rows ``[0, n)``), without re-sorting it:
    the values are sorted once; rank space is cut into blocks of about sqrt(N) ranks, each counting the
    prefix's rows it holds, so the value of rank k is found in one block (O(sqrt N) per query, O(rows
    added) per step). A run of N rows and T seconds costs O(N log N + T sqrt N)."""

    def __init__(self, values: np.ndarray):
        self.order = np.argsort(values, kind="stable")  # rank -> row
        self.sorted = values[self.order]
        self.rank = np.empty_like(self.order)
        self.rank[self.order] = np.arange(values.size)
        self.b = max(64, int(np.sqrt(values.size)))
        self.counts = np.zeros(-(-values.size // self.b) or 1, np.int64)
        self.n = 0
        self.cum = np.zeros(0, np.int64)

    def grow(self, lo: int, hi: int) -> None:
        """Rows ``[lo, hi)`` join the prefix (``lo`` is its size so far)."""
        if hi > lo:
            self.counts += np.bincount(self.rank[lo:hi] // self.b, minlength=self.counts.size)
        self.n = hi
        self.cum = np.cumsum(self.counts)

    def value(self, p: float) -> int:
        """The prefix's value of rank ``ceil(n * p)`` (at least 1), as ``summary.json`` defines a percentile."""
        k = max(int(np.ceil(float(self.n) * p)), 1)
        j = int(np.searchsorted(self.cum, k, side="left"))
        before = int(self.cum[j - 1]) if j else 0
        in_prefix = np.flatnonzero(self.order[j * self.b:(j + 1) * self.b] < self.n)
        return int(self.sorted[j * self.b + int(in_prefix[k - before - 1])])


def failures_rows(run: Run) -> list[dict[str, Any]]:
    """``_failures.csv``: per method, endpoint and error (``KIND: DETAIL``), how often; most frequent first."""
    import polars as pl

    batches, _ = _batches(run)
    df = _frame(batches, ["method", "endpoint", "error", "error_detail"]).filter(pl.col("error").is_not_null())
    text = pl.when(pl.col("error_detail").is_null()).then(pl.col("error")) \
        .otherwise(pl.col("error") + pl.lit(": ") + pl.col("error_detail"))
    counts = (df.with_columns(text.alias("text")).group_by("method", "endpoint", "text").agg(pl.len().alias("n"))
              .sort(["n", "endpoint", "method", "text"], descending=[True, False, False, False]))
    return [{"Method": m, "Name": e, "Error": t, "Occurrences": n} for m, e, t, n in counts.iter_rows()]


def write(run: Run, prefix: str | Path) -> list[Path]:
    """Write the three files; their paths."""
    paths = []
    for suffix, columns, rows in (("_stats.csv", STATS_COLUMNS, stats_rows(run)),
                                  ("_stats_history.csv", HISTORY_COLUMNS, history_rows(run)),
                                  ("_failures.csv", FAILURES_COLUMNS, failures_rows(run))):
        path = Path(f"{prefix}{suffix}")
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns)
            w.writeheader()
            w.writerows(rows)
        paths.append(path)
    return paths
