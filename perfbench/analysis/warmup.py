"""The warm-up of a run, applied: which rows it holds, and the rows and span that are measured.

A run's warm-up (``perfbench.shapes.warmup``) is recorded in ``meta.json`` as ``warmup``; the rows
it holds are those whose ``intended_ns`` is below ``warmup.until_ns``. They stay in
requests.parquet; the summary, the SLOs and comparisons read the others (:func:`measured`), over
the span after the warm-up (:func:`measured_span`). A warm-up of N requests gets its ``until_ns``
when the run ends (:func:`until_for_requests`: the intended time of the (N+1)-th request).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import rowstats


def spec(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    """meta.json's ``warmup`` (None: the run had none)."""
    w = (meta or {}).get("warmup")
    return w if isinstance(w, dict) else None


def until_ns(meta: dict[str, Any] | None) -> int | None:
    """The end of the run's warm-up (ns from its start), None without a warm-up or before it is known."""
    w = spec(meta)
    value = None if w is None else w.get("until_ns")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else None


def until_for_requests(n: int, intended: np.ndarray) -> int:
    """The end of a warm-up of the first ``n`` requests by intended time: the (n+1)-th smallest
    ``intended_ns`` (the rows below it are at most ``n``: ties with it are measured); past the
    last row, one ns after it."""
    if n <= 0 or intended.size == 0:
        return 0
    if n >= intended.size:
        return int(intended.max()) + 1
    return int(np.partition(intended, n)[n])


def intended_of(batches: rowstats.Batches) -> np.ndarray:
    """Every row's ``intended_ns``."""
    parts = [np.asarray(b["intended_ns"].to_numpy()) if isinstance(b, pa.RecordBatch)
             else np.asarray(b.column("intended_ns").to_numpy()) for b in batches(["intended_ns"])]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def measured(batches: rowstats.Batches, until: int | None) -> rowstats.Batches:
    """``batches`` without the warm-up's rows (those with ``intended_ns < until``)."""
    if not until:
        return batches

    def read(columns: list[str]) -> Iterator[pa.Table | pa.RecordBatch]:
        extra = "intended_ns" not in columns
        for b in batches([*columns, *(["intended_ns"] if extra else [])]):
            kept = b.filter(pc.greater_equal(b["intended_ns"], pa.scalar(until, pa.int64())))
            yield kept.drop_columns(["intended_ns"]) if extra else kept
    return read


def measured_span(duration_s: float, until: int | None) -> float:
    """The seconds the measured rows' throughput counts over: the run's span after the warm-up."""
    return duration_s - until / 1e9 if until else duration_s


def summary_block(meta: dict[str, Any] | None, warmup_rows: int) -> dict[str, Any] | None:
    """summary.json's ``warmup``: as asked, where it ended, and the rows it left out."""
    w = spec(meta)
    if w is None:
        return None
    until = until_ns(meta)
    return {"seconds": w.get("seconds"), "requests": w.get("requests"), "until_s": None if until is None else until / 1e9,
            "rows_excluded": warmup_rows}
