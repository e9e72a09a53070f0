"""The parts of summary.json beside the latency table, each from its own record of the run, the
warm-up left out: ``concurrency`` (from the rows), ``resources`` (resources.parquet, the resource
sampler's), ``cache`` (cache.parquet, the agent's). Pure functions of frames and arrays; the SLOs
(:mod:`perfbench.analysis.slo`) gate on them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..rundir import CACHE, RESOURCES
from . import rowstats

if TYPE_CHECKING:
    import polars as pl

MB = 2**20
CONCURRENCY_MAX_ROWS = 20_000_000  # rows the fallback sorts (24 bytes a row: ~480 MB)
BUCKETS = 1 << 20  # time buckets of the first pass
CANDIDATES = 4096  # buckets the second pass sweeps exactly


def _ints(b: Any, name: str) -> np.ndarray:
    return np.asarray(b.column(name).to_numpy(), np.int64)


def _bucket(times: np.ndarray, per_ns: float) -> np.ndarray:
    """Each time's bucket: non-decreasing in the time (float rounding never reorders), the same in both
    passes, clipped to the table (a bucket's bounds hold whatever it holds)."""
    k = (times * per_ns).astype(np.int64)
    np.clip(k, 0, BUCKETS - 1, out=k)
    return k


def concurrency(batches: rowstats.Batches, span_s: float, horizon_ns: int = 0, *,
                max_rows: int = CONCURRENCY_MAX_ROWS, candidates: int = CANDIDATES) -> dict[str, Any] | None:
    """The requests in flight at once, from the rows' [start_ns, end_ns): ``max`` (exact: at each send,
    the requests sent by then and not ended, an end at that instant being over) and ``mean`` (the rows'
    service time over the span, Little's law).

    Two passes, in bounded memory, as ``rowstats``: (1) count sends and ends per time bucket (about
    ``horizon_ns / BUCKETS`` wide, at least 1 ms): the requests in flight as each bucket begins are
    exact, and that count plus the bucket's sends bounds its maximum; (2) sweep, exactly, the
    ``candidates`` buckets whose bound beats the best count found. When more buckets than that could
    hold the maximum, the rows' times are sorted instead (at most ``max_rows`` rows, else None)."""
    per_ns = 1 / max(1_000_000, -(-max(horizon_ns, 1) // BUCKETS))
    sends, ends, busy = np.zeros(BUCKETS, np.int64), np.zeros(BUCKETS, np.int64), 0
    for b in batches(["start_ns", "end_ns"]):
        st, en = _ints(b, "start_ns"), _ints(b, "end_ns")
        busy += int((en - st).sum())
        sends += np.bincount(_bucket(st, per_ns), minlength=BUCKETS)
        ends += np.bincount(_bucket(en, per_ns), minlength=BUCKETS)
    mean = round(busy / 1e9 / span_s, 6) if span_s > 0 else None
    if not sends.any():
        return {"max": 0, "mean": 0.0, "source": "rows"}
    before = np.concatenate([[0], np.cumsum(sends - ends)[:-1]])  # in flight as each bucket begins
    best = int(before.max())
    bound = before + sends
    hopeful = np.flatnonzero((bound > best) & (sends > 0))
    if hopeful.size > candidates:
        top = hopeful[np.argsort(bound[hopeful])[::-1]]
        hopeful, next_bound = top[:candidates], int(bound[top[candidates]])
    else:
        next_bound = best
    if hopeful.size:
        best = max(best, _sweep(batches, per_ns, hopeful, before))
    if best < next_bound:  # a bucket not swept could hold more: sort every row's times
        return _sorted(batches, max_rows, mean)
    return {"max": best, "mean": mean, "source": "rows"}


def _sweep(batches: rowstats.Batches, per_ns: float, buckets: np.ndarray, before: np.ndarray) -> int:
    """The most in flight at a send within ``buckets``, from their sends and ends in time order."""
    wanted = np.zeros(BUCKETS, bool)
    wanted[buckets] = True
    keys, times, deltas = [], [], []
    for b in batches(["start_ns", "end_ns"]):
        for name, delta in (("end_ns", -1), ("start_ns", 1)):
            t = _ints(b, name)
            k = _bucket(t, per_ns)
            keep = wanted[k]
            keys.append(k[keep])
            times.append(t[keep])
            deltas.append(np.full(int(keep.sum()), delta, np.int64))
    k, t, d = np.concatenate(keys), np.concatenate(times), np.concatenate(deltas)
    order = np.lexsort((d, t, k))  # by bucket, then time; an end before a send at the same instant
    k, d = k[order], d[order]
    run = np.cumsum(d)
    first = np.flatnonzero(np.concatenate([[True], k[1:] != k[:-1]]))
    base = np.repeat(np.concatenate([[0], run[first[1:] - 1]]), np.diff(np.concatenate([first, [k.size]])))
    in_flight = before[k] + run - base
    return int(in_flight[d > 0].max()) if (d > 0).any() else 0


def _sorted(batches: rowstats.Batches, max_rows: int, mean: float | None) -> dict[str, Any] | None:
    """:func:`concurrency` by sorting every row's send and end times (24 bytes a row)."""
    starts, ends, n = [], [], 0
    for b in batches(["start_ns", "end_ns"]):
        n += b.num_rows
        if n > max_rows:
            return None
        starts.append(_ints(b, "start_ns"))
        ends.append(_ints(b, "end_ns"))
    s, e = np.sort(np.concatenate(starts)), np.sort(np.concatenate(ends))
    in_flight = np.arange(1, s.size + 1) - np.searchsorted(e, s, side="right")
    return {"max": int(in_flight.max()), "mean": mean, "source": "rows"}


def resources(run_dir: str | Path, until_ns: int | None) -> dict[str, Any] | None:
    """The target's resources over the measured part of the run (samples at or after ``until_ns``;
    without a warm-up, every sample, the baseline before the first request included); None without
    resources.parquet. CPU mean: the CPU seconds used between the first and last sample over the time
    between them (% of one core); max: the highest sample's (each covers the time since the one before)."""
    import polars as pl

    p = Path(run_dir) / RESOURCES
    if not p.exists():
        return None
    df = pl.read_parquet(p).sort("t_ns")
    if until_ns:
        df = df.filter(pl.col("t_ns") >= until_ns)
    if df.height == 0:
        return {"samples": 0}
    first, last = df.row(0, named=True), df.row(-1, named=True)
    used = lambda r: (r["cpu_user_s"] or 0.0) + (r["cpu_system_s"] or 0.0)  # noqa: E731
    dt = (last["t_ns"] - first["t_ns"]) / 1e9
    mean = 100.0 * (used(last) - used(first)) / dt if dt > 0 else None
    later = df.slice(1) if until_ns else df  # within the window, each sample's CPU covers time in it
    cpu_max = later["cpu_percent"].drop_nulls().max() if later.height else None

    def top(col: str) -> Any:
        v = df[col].drop_nulls().max()
        return None if v is None else int(v)  # type: ignore[arg-type]

    rss_max = df["rss"].drop_nulls().max()
    return {"samples": df.height, "from_s": first["t_ns"] / 1e9, "to_s": last["t_ns"] / 1e9,
            "cpu_percent_mean": None if mean is None else round(mean, 3),
            "cpu_percent_max": None if cpu_max is None else round(float(cpu_max), 3),  # type: ignore[arg-type]
            "rss_mb_max": None if rss_max is None else round(float(rss_max) / MB, 3),  # type: ignore[arg-type]
            "rss_growth_mb": round(((last["rss"] or 0) - (first["rss"] or 0)) / MB, 3),
            "fds_max": top("fds"), "threads_max": top("threads"), "connections_max": top("connections")}


def measured_events(events: pl.LazyFrame, requests: pl.LazyFrame, until_ns: int | None) -> pl.LazyFrame:
    """The agent's records (queries or cache events) of the measured part: not of a warm-up request,
    and, without a request id, at or after the warm-up's end."""
    import polars as pl

    if not until_ns:
        return events
    warm = requests.filter(pl.col("intended_ns") < until_ns).select("request_id")
    return events.join(warm, on="request_id", how="anti").filter(
        pl.col("request_id").is_not_null() | (pl.col("t_ns") >= until_ns))


def cache_lookups(cache: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """The hit/miss events of cache.parquet, counted once: from the service's own reports
    (``cache_hit``/``cache_miss``, source ``app``) when it made any, else from the hooked clients (Redis
    GETs and the like), so a service that does both is not counted twice. Older files (no ``source``)
    are all ``app``."""
    import polars as pl

    lf = cache.lazy()
    if "source" not in lf.collect_schema().names():
        lf = lf.with_columns(pl.lit("app").alias("source"))
    lf = lf.filter(pl.col("kind").is_in(["hit", "miss"]))
    has_app = lf.filter(pl.col("source") == "app").select(pl.len()).collect().item() > 0
    return lf.filter((pl.col("source") == "app") if has_app else (pl.col("source") != "app"))


def cache(run_dir: str | Path, requests: pl.LazyFrame, until_ns: int | None) -> dict[str, Any] | None:
    """Cache hits and misses the agent recorded: overall and per endpoint (the engine's request names,
    joined by request id; events without one count overall only); None without cache.parquet."""
    import polars as pl

    p = Path(run_dir) / CACHE
    if not p.exists():
        return None
    ev = measured_events(cache_lookups(pl.scan_parquet(p)).select("request_id", "kind", "t_ns"), requests, until_ns)
    ev = ev.join(requests.select("request_id", "endpoint"), on="request_id", how="left")
    counts = ev.group_by("endpoint", "kind").agg(pl.len().alias("n")).collect()

    def block(rows: pl.DataFrame) -> dict[str, Any]:
        hits = int(rows.filter(pl.col("kind") == "hit")["n"].sum())
        misses = int(rows.filter(pl.col("kind") == "miss")["n"].sum())
        return {"hits": hits, "misses": misses, "hit_rate": round(hits / (hits + misses), 6) if hits + misses else None}

    names = sorted(n for n in counts["endpoint"].unique().to_list() if n is not None)
    return {**block(counts), "endpoints": {n: block(counts.filter(pl.col("endpoint") == n)) for n in names}}
