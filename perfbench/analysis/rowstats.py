"""The numbers of summary.json from a run's rows: two passes over Arrow record batches, exact.

``summary.json`` needs, per endpoint and overall: counts, errors (by kind), bytes, the mean and the
exact percentiles of latency and service time (with min and max), and overall the status counts
and the send lag's p50, p99 and max. All of it comes from two passes over the rows in batches
(a row group of requests.parquet, or a slice of a table in memory), with numpy, without sorting
the rows and without a Python object per row:

1. Counts, sums and histograms. Each value falls in a logarithmic bucket read from the bits of its
   float64 (the exponent and the top ``SUB_BITS`` bits of the mantissa: 64 buckets per power of two,
   at most ~1.1% wide; every integer below 128 has a bucket of its own). A value's bucket never
   decreases as the value grows, so the cumulative bucket counts of a group tell which bucket holds
   the value of rank r and its rank within that bucket.
2. Only the values of those few buckets are kept (per group, the percentiles' buckets) and the
   value of each rank is selected among them.

The percentile is the one README and ``results.pct`` define: the value of rank ``ceil(n * p)`` (at
least 1) in ascending order, computed over every row. Memory is a few MB of histograms plus the
values of the buckets that hold a percentile (about 1-2% of the rows for latencies spread over a
range; more only when a large share of the rows has nearly the same value), never the rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SUB_BITS = 6
_SHIFT = 23 - SUB_BITS  # float32 bits >> _SHIFT = exponent and the top SUB_BITS bits of the mantissa
_BASE = (127 << SUB_BITS) - 1  # so that the value 1 is bucket 1; 0 and below are bucket 0
NB = (63 << SUB_BITS) + 2  # buckets 0 .. bucket(2**63)
# numpy works on slices of this many rows: their temporaries (<= 256 KB) are reused from the heap,
# where those of a whole row group (256K rows) were fresh pages every time: on 10M rows, ~100,000
# page faults and a quarter of the summary's CPU (measured: sys 0.45 -> 0.10 s)
SLICE_ROWS = 32 * 1024
_EXACT_SUM_ROWS = 1 << 26
KEEP_BUDGET = 2_000_000  # values a column may keep speculatively in pass 1 (16 bytes each); beyond: pass 2
FIRST_CHECKPOINT = SLICE_ROWS  # rows after which the windows are first drawn; then each time the rows double  # two float64 bincounts (high and low bits) add up exactly below this many rows

# the columns pass 1 reads (end_ns too when the run's duration is not known); pass 2 reads some of them
PASS1 = ("endpoint", "error", "status", "bytes", "latency_ns", "service_ns", "ttfb_ns", "start_ns", "intended_ns")

Batches = Callable[[list[str]], Iterable[pa.RecordBatch | pa.Table]]  # the rows' columns, in the same order each time


def bucket_of(values: np.ndarray) -> np.ndarray:
    """The bucket of each int64 value: non-decreasing in the value, 0 for every value <= 0.

    From float32: the conversion rounds to nearest, so it never decreases as the value grows, and
    a non-negative float's bits, read as an integer, order as the floats do. (float32, not float64:
    numpy shifts 32-bit integers with SIMD, 64-bit ones element by element, ~10x slower.)"""
    b = values.astype(np.float32).view(np.int32) >> _SHIFT
    b -= _BASE
    np.maximum(b, 0, out=b)
    return b


def _bucket_low(b: int) -> float:
    """The smallest float32 value of bucket ``b`` (b >= 1)."""
    return float(np.array([(b + _BASE) << _SHIFT], np.int32).view(np.float32)[0])


def singleton(b: int, nonnegative: bool) -> int | None:
    """The one integer bucket ``b`` can hold, or None when it holds a range (``nonnegative``: the
    column has no value below 0, so bucket 0 holds only 0)."""
    if b == 0:
        return 0 if nonnegative else None
    if b >= NB - 1:
        return None
    lo, hi = math.ceil(_bucket_low(b)), math.ceil(_bucket_low(b + 1))
    return lo if hi - lo == 1 else None


def _ranks_of(ranks: dict[str, float | str], n: int) -> dict[str, int]:
    """The 1-based rank of each wanted name among n values ("min", "max", or a fraction p:
    ``ceil(n * p)``, at least 1)."""
    return {name: 1 if p == "min" else n if p == "max" else max(math.ceil(float(n) * float(p)), 1)
            for name, p in ranks.items()}


@dataclass
class _Column:
    """One value column: its histogram per group, and the values of the buckets that hold a rank.

    Pass 1 counts every value into its bucket and, speculatively, keeps the values of the buckets
    near where each rank lies so far (a window re-drawn as the rows double, wide enough for the
    estimate's uncertainty). At the end a bucket that holds a rank answers from the kept values
    when all its values were kept (its kept count equals its count); only the other ones are read
    again in pass 2. A run whose percentiles drift, or whose windows would keep more than
    ``KEEP_BUDGET`` values, just takes the second pass; the answer is the same."""

    nonnegative: bool
    ranks: dict[str, float | str]
    hist: np.ndarray = field(default_factory=lambda: np.zeros((0, NB), np.int64))
    window: np.ndarray | None = None  # pass 1: group * NB + bucket -> keep; None: keep nothing any more
    spilled: bool = False  # over the budget: pass 1 keeps nothing
    want: np.ndarray | None = None  # pass 2: group * NB + bucket -> keep the value
    plan: dict[int, dict[str, tuple[int, int]]] = field(default_factory=dict)  # group (-1: all) -> name -> (b, r)
    kept: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    n_kept: int = 0

    def add(self, groups: np.ndarray | None, values: np.ndarray, k: int) -> None:
        """Pass 1: count ``values`` (of groups ``groups``, None: one group) into the histogram of k
        groups, and keep those in the window."""
        if self.hist.shape[0] < k:
            self.hist = np.vstack([self.hist, np.zeros((k - self.hist.shape[0], NB), np.int64)])
        if not values.size:
            return
        key = bucket_of(values)
        if groups is None:
            self.hist[0] += np.bincount(key, minlength=NB)
        else:
            key = groups * NB + key
            self.hist[:k] += np.bincount(key, minlength=k * NB).reshape(k, NB)
        if self.spilled:
            return
        if self.window is None or self.window.size < k * NB:  # a group not seen at the last checkpoint: all of it
            grown = np.ones(k * NB, bool)
            if self.window is not None:
                grown[:self.window.size] = self.window
            self.window = grown
        sel = self.window[key]
        if sel.any():
            v = values[sel]
            self.kept.append((v, key[sel]))
            self.n_kept += v.size

    def checkpoint(self) -> None:
        """Re-draw the window from the histogram so far; drop the kept values outside it."""
        if self.spilled:
            return
        k = self.hist.shape[0]
        win = np.zeros((k, NB), bool)
        for g, h in [(g, self.hist[g]) for g in range(k)] + [(-1, self.hist.sum(axis=0))]:
            n = int(h.sum())
            if n == 0:
                continue
            cum = np.cumsum(h)
            for p in self.ranks.values():
                f = 1.0 if p == "max" else 0.0 if p == "min" else float(p)
                spread = 4 * math.sqrt(max(f * (1 - f), 1 / n) / n) + 1 / n  # ~4 standard errors of the rank
                r_lo, r_hi = max(math.floor((f - spread) * n), 1), min(math.ceil((f + spread) * n), n)
                b_lo = max(int(np.searchsorted(cum, r_lo, side="left")) - 1, 0)  # and a bucket either side
                b_hi = min(int(np.searchsorted(cum, r_hi, side="left")) + 1, NB - 1)
                if p == "max":
                    b_hi = NB - 1
                if p == "min":
                    b_lo = 0
                if g < 0:
                    win[:, b_lo:b_hi + 1] = True
                else:
                    win[g, b_lo:b_hi + 1] = True
        self.window = win.reshape(-1)
        values, keys = self._concat()
        sel = self.window[keys]
        self.kept = [(values[sel], keys[sel])] if sel.any() else []
        self.n_kept = int(sel.sum())
        if self.n_kept > KEEP_BUDGET:
            self.spilled, self.window, self.kept, self.n_kept = True, None, [], 0

    def prepare(self) -> None:
        """After pass 1: the bucket and in-bucket rank of every wanted rank, per group and overall;
        which of those buckets pass 2 must read again (those not kept whole)."""
        k = self.hist.shape[0]
        flat = self.hist.reshape(-1)
        values, keys = self._concat()
        kept_counts = np.bincount(keys, minlength=k * NB) if keys.size else np.zeros(k * NB, np.int64)
        needed = np.zeros(k * NB, bool)
        for g, h in [(g, self.hist[g]) for g in range(k)] + [(-1, self.hist.sum(axis=0))]:
            n = int(h.sum())
            if n == 0:
                continue
            cum = np.cumsum(h)
            self.plan[g] = {}
            for name, r in _ranks_of(self.ranks, n).items():
                b = int(np.searchsorted(cum, r, side="left"))
                self.plan[g][name] = (b, r - (int(cum[b - 1]) if b else 0))
                if singleton(b, self.nonnegative) is None:
                    needed[np.arange(k) * NB + b if g < 0 else g * NB + b] = True
        complete = kept_counts == flat
        want = needed & ~complete
        keep = needed[keys] & complete[keys]
        self.kept = [(values[keep], keys[keep])] if keep.any() else []
        self.want = want if want.any() else None

    def keep(self, groups: np.ndarray | None, values: np.ndarray) -> None:
        """Pass 2: keep the values of the buckets ``prepare`` wants read again."""
        if self.want is None or not values.size:
            return
        key = bucket_of(values)
        if groups is not None:
            key = groups * NB + key
        sel = self.want[key]
        if sel.any():
            self.kept.append((values[sel], key[sel]))

    def _concat(self) -> tuple[np.ndarray, np.ndarray]:
        """The kept values and their keys, as one pair of arrays (kept that way from then on)."""
        if not self.kept:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        if len(self.kept) > 1:
            self.kept = [(np.concatenate([v for v, _ in self.kept]),
                          np.concatenate([k.astype(np.int64) for _, k in self.kept]))]
        return self.kept[0]

    def result(self, group: int) -> dict[str, int | None]:
        """Per wanted name, the value of its rank in ``group`` (-1: all groups), None without values."""
        plan = self.plan.get(group)
        if plan is None:
            return {}
        values, keys = self._concat()
        out: dict[str, int | None] = {}
        cache: dict[int, np.ndarray] = {}
        for name, (b, r) in plan.items():
            one = singleton(b, self.nonnegative)
            if one is not None:
                out[name] = one
                continue
            if b not in cache:
                mask = (keys % NB == b) if group < 0 else (keys == group * NB + b)
                cache[b] = np.sort(values[mask])
            out[name] = int(cache[b][r - 1])
        return out


def _exact_group_sums(groups: np.ndarray, values: np.ndarray, k: int) -> list[int]:
    """Per group, the exact integer sum of ``values`` (int64)."""
    if not values.size:
        return [0] * k
    lo_v, hi_v = int(values.min()), int(values.max())
    if lo_v >= 0 and hi_v * values.size < 2**53:  # every partial sum is an integer float64 holds exactly
        return [int(x) for x in np.bincount(groups, weights=values, minlength=k)]
    if lo_v >= 0 and hi_v < 2**53 and values.size < _EXACT_SUM_ROWS:
        # below 2**53 a value is hi * 2**26 + lo with both parts < 2**27, and fewer than 2**26 of them
        # add up below 2**53 in float64: both sums are exact
        hi = np.bincount(groups, weights=values >> 26, minlength=k)
        lo = np.bincount(groups, weights=values & ((1 << 26) - 1), minlength=k)
        return [(int(h) << 26) + int(low) for h, low in zip(hi, lo, strict=True)]
    return [sum(int(x) for x in values[groups == g].astype(object)) for g in range(k)]


class _Codes:
    """Strings (dictionary-encoded or plain; null included) to integer codes in order of first use,
    the same codes in every batch."""

    def __init__(self) -> None:
        self.index: dict[Any, int] = {}
        self._last: tuple[pa.Array, np.ndarray] | None = None

    def names(self) -> list[Any]:
        return list(self.index)

    def codes(self, arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
        chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
        out = [self._chunk(c) for c in chunks if len(c)]
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    def _chunk(self, arr: pa.Array) -> np.ndarray:
        if not pa.types.is_dictionary(arr.type):
            arr = pc.dictionary_encode(arr)
        dictionary, idx = arr.dictionary, arr.indices
        if self._last is not None and self._last[0].equals(dictionary):  # the slices of one row group share it
            lut = self._last[1]
        else:
            # a dictionary may hold names no row has (and always gets None): the summary leaves out
            # the groups without rows
            names = [*dictionary.to_pylist(), None]
            lut = np.array([self.index.setdefault(name, len(self.index)) for name in names], np.int64)
            self._last = (dictionary, lut)
        if idx.null_count:
            idx = idx.fill_null(len(lut) - 1)
        return lut[np.asarray(idx.to_numpy(zero_copy_only=False))]


def _one(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One array (a column of a table slice is a ChunkedArray, most often of one chunk: no copy)."""
    if isinstance(arr, pa.ChunkedArray):
        return arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
    return arr


def _ints(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray | None]:
    """An integer column as int64 numpy, and its validity mask when it has nulls."""
    arr = _one(arr)
    if arr.null_count:
        valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False))
        return np.asarray(arr.fill_null(0).to_numpy(), dtype=np.int64), valid
    return np.asarray(arr.to_numpy(), dtype=np.int64), None


@dataclass
class RowStats:
    """What a summary needs from the rows (see :func:`compute`)."""

    endpoints: list[Any]  # sorted (None first)
    per: dict[Any, dict[str, Any]]  # endpoint -> count, errors, bytes, latency/service values in ns, mean_ns
    overall: dict[str, Any]
    kinds: dict[tuple[Any, str], int]  # (endpoint, error kind) -> rows
    statuses: list[tuple[int | None, int]]  # (status, rows), null first, then ascending
    lag: dict[str, Any]  # p50, p99, max (ns, None without rows), n
    max_end_ns: int | None


class _Tally:
    """Pass 1's counts and sums (the histograms live in the columns)."""

    def __init__(self) -> None:
        self.eps, self.errs = _Codes(), _Codes()
        self.pairs = np.zeros((0, 0), np.int64)  # (endpoint, error kind or None) -> rows
        self.byte_sums: list[int] = []
        self.lat_sums: list[int] = []
        self.status_small = np.zeros(_STATUS_SMALL + 1, np.int64)  # status + 1 (0: null) -> rows
        self.status_other: dict[int, int] = {}
        self.max_end: int | None = None
        self.rows = 0

    def add(self, batch: pa.RecordBatch | pa.Table, g: np.ndarray, k: int) -> None:
        n = batch.num_rows
        self.rows += n
        e = self.errs.codes(batch["error"])
        ke = len(self.errs.index)
        pairs = np.bincount(g * ke + e, minlength=k * ke).reshape(k, ke)
        grown = np.zeros((k, ke), np.int64)
        grown[:self.pairs.shape[0], :self.pairs.shape[1]] = self.pairs
        self.pairs = grown + pairs
        self.byte_sums += [0] * (k - len(self.byte_sums))
        self.lat_sums += [0] * (k - len(self.lat_sums))
        status = _one(batch["status"])
        lo, hi = pc.min_max(status).values()  # of the non-null values
        if lo.is_valid and lo.as_py() >= 0 and hi.as_py() < _STATUS_SMALL:
            st = np.asarray(status.fill_null(-1).to_numpy(), dtype=np.int64) if status.null_count else \
                np.asarray(status.to_numpy(), dtype=np.int64)
            self.status_small += np.bincount(st + 1, minlength=_STATUS_SMALL + 1)  # null: 0
        else:
            self.status_small[0] += status.null_count
            st, valid = _ints(status)
            st = st if valid is None else st[valid]
            for s, c in zip(*np.unique(st, return_counts=True), strict=True):
                self.status_other[int(s)] = self.status_other.get(int(s), 0) + int(c)
        b, valid = _ints(batch["bytes"])
        for i, s in enumerate(_exact_group_sums(g if valid is None else g[valid], b if valid is None else b[valid],
                                                k)):
            self.byte_sums[i] += s

    def statuses(self) -> list[tuple[int | None, int]]:
        out: list[tuple[int | None, int]] = [(None, int(self.status_small[0]))] if self.status_small[0] else []
        other = dict(self.status_other)
        for s in np.nonzero(self.status_small[1:])[0]:
            other[int(s)] = other.get(int(s), 0) + int(self.status_small[s + 1])
        return out + sorted(other.items())


_STATUS_SMALL = 1024  # statuses 0..1023 are counted by bincount, others (none in HTTP) one by one


def compute(batches: Batches, percentiles: dict[str, float], need_end: bool = False) -> RowStats:
    """Two passes over ``batches`` (called once per pass with the columns it needs)."""
    t = _Tally()
    lat = _Column(False, {**percentiles, "max": "max", "min": "min"})
    svc, lag = _Column(False, {"p50": 0.5, "p99": 0.99}), _Column(True, {"p50": 0.5, "p99": 0.99, "max": "max"})
    ttfb = _Column(False, {"p50": 0.5, "p95": 0.95, "p99": 0.99})  # over the rows that had a first byte
    checkpoint = FIRST_CHECKPOINT
    has_service = has_ttfb = True
    for batch in _sliced(batches([*PASS1, *(["end_ns"] if need_end else [])])):
        has_service = "service_ns" in batch.schema.names
        has_ttfb = "ttfb_ns" in batch.schema.names  # not in a version-1 run directory
        if not batch.num_rows:
            continue
        g = t.eps.codes(batch["endpoint"])
        k = len(t.eps.index)
        t.add(batch, g, k)
        v, valid = _ints(batch["latency_ns"])
        gv, v = (g, v) if valid is None else (g[valid], v[valid])
        lat.add(gv, v, k)
        for j, s in enumerate(_exact_group_sums(gv, v, k)):
            t.lat_sums[j] += s
        if has_service:
            v, valid = _ints(batch["service_ns"])
            svc.add(g if valid is None else g[valid], v if valid is None else v[valid], k)
        if has_ttfb:
            v, valid = _ints(batch["ttfb_ns"])
            ttfb.add(g if valid is None else g[valid], v if valid is None else v[valid], k)
        lag.add(None, _lag(batch), 1)
        if t.rows >= checkpoint:
            checkpoint = 2 * t.rows
            for c in (lat, svc, ttfb, lag):
                c.checkpoint()
        if need_end:
            end, valid = _ints(batch["end_ns"])
            end = end if valid is None else end[valid]
            if end.size:
                t.max_end = int(end.max()) if t.max_end is None else max(t.max_end, int(end.max()))
    k = len(t.eps.index)
    lat.add(None, np.zeros(0, np.int64), k)  # every group has its histogram row, even without values
    svc.add(None, np.zeros(0, np.int64), k)
    ttfb.add(None, np.zeros(0, np.int64), k)
    for c in (lat, svc, ttfb, lag):
        c.prepare()
    grouped = [(c, name) for c, name in ((lat, "latency_ns"), (svc, "service_ns"), (ttfb, "ttfb_ns"))
               if c.want is not None]
    columns = [*(["endpoint"] if grouped else []), *(name for _, name in grouped),
               *(["start_ns", "intended_ns"] if lag.want is not None else [])]
    if columns:  # pass 2: only the buckets pass 1 did not keep whole, only the columns they are in
        for batch in _sliced(batches(columns)):
            if not batch.num_rows:
                continue
            if grouped:
                g = t.eps.codes(batch["endpoint"])  # every name is known: the same codes as in pass 1
            for col, name in grouped:
                v, valid = _ints(batch[name])
                col.keep(g if valid is None else g[valid], v if valid is None else v[valid])
            if lag.want is not None:
                lag.keep(None, _lag(batch))

    names, kind_names = t.eps.names(), t.errs.names()
    counts = t.pairs.sum(axis=1) if t.pairs.size else np.zeros(len(names), np.int64)
    kinds = {(names[gi], kind_names[ei]): int(t.pairs[gi, ei]) for gi, ei in zip(*np.nonzero(t.pairs), strict=True)
             if kind_names[ei] is not None}
    errors = [0] * len(names)
    for gi in range(len(names)):
        errors[gi] = sum(int(t.pairs[gi, ei]) for ei, kind in enumerate(kind_names) if kind is not None)

    def stats(group: int, count: int, n_errors: int, nbytes: int, lat_sum: int) -> dict[str, Any]:
        n_lat = int(lat.hist[group].sum()) if group >= 0 else int(lat.hist.sum())
        return {"count": count, "errors": n_errors, "bytes": nbytes, "latency": lat.result(group),
                "service": svc.result(group) if has_service else None,
                "ttfb": ttfb.result(group) if has_ttfb else None,
                "mean_ns": lat_sum / n_lat if n_lat else None}

    per = {name: stats(gi, int(counts[gi]), errors[gi], t.byte_sums[gi], t.lat_sums[gi])
           for gi, name in enumerate(names) if counts[gi]}
    lag_values = lag.result(0)
    return RowStats(
        endpoints=sorted(per, key=lambda x: (x is not None, x)),
        per=per, overall=stats(-1, t.rows, sum(errors), sum(t.byte_sums), sum(t.lat_sums)),
        kinds=kinds, statuses=t.statuses(),
        lag={"p50": lag_values.get("p50"), "p99": lag_values.get("p99"), "max": lag_values.get("max"), "n": t.rows},
        max_end_ns=t.max_end,
    )


def _sliced(batches: Iterable[pa.RecordBatch | pa.Table]) -> Iterator[pa.RecordBatch | pa.Table]:
    """Each batch in zero-copy slices of SLICE_ROWS rows."""
    for b in batches:
        for start in range(0, b.num_rows, SLICE_ROWS):
            yield b.slice(start, SLICE_ROWS)


def _lag(batch: pa.RecordBatch | pa.Table) -> np.ndarray:
    start, _ = _ints(batch["start_ns"])
    intended, _ = _ints(batch["intended_ns"])
    lag = start - intended
    np.maximum(lag, 0, out=lag)
    return lag


# ---------------------------------------------------------------------------- sources of batches
def table_batches(table: pa.Table, rows: int) -> Batches:
    """Batches of at most ``rows`` rows of an Arrow table in memory (zero-copy slices)."""

    def read(columns: list[str]) -> Iterator[pa.Table]:
        t = table.select([c for c in columns if c in table.column_names])
        for start in range(0, t.num_rows, rows):
            yield t.slice(start, rows)
    return read


def parquet_batches(path: str, dictionary: tuple[str, ...] = ("endpoint", "error")) -> Batches:
    """One row group of a Parquet file at a time; string columns read as their dictionary codes.
    The next row group is read (pyarrow, without the GIL) while this one is counted."""
    import pyarrow.parquet as pq

    def read(columns: list[str]) -> Iterator[pa.Table]:
        pf = pq.ParquetFile(path, read_dictionary=list(dictionary))
        have = set(pf.schema_arrow.names)
        cols = [c for c in columns if c in have]
        n = pf.metadata.num_row_groups
        with ThreadPoolExecutor(1, thread_name_prefix="perfbench-read") as pool:
            ahead = pool.submit(pf.read_row_group, 0, columns=cols) if n else None
            for i in range(n):
                assert ahead is not None
                group = ahead.result()
                ahead = pool.submit(pf.read_row_group, i + 1, columns=cols) if i + 1 < n else None
                yield group
    return read
