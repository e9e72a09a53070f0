"""Records requests into a row buffer and flushes them to the run's journal in batches.

The engine records one row per finished request: :meth:`Recorder.add` with plain ints and
strings, or, on its hot path, ``recorder.append(row)`` with the 12-tuple of :data:`_COLUMNS`
(one list append per request: the cheapest thing Python can do per row). Every
``flush_rows`` rows (checked by ``add``; the engine checks ``due`` on every tick and flushes at
least every second) the rows are transposed into columns and become one Arrow record batch
in the journal, so memory held is at most one batch: about 285 bytes per unflushed row (a
12-tuple and its four large ints, measured with tracemalloc; the endpoint and method strings are
shared): with 8,192 rows a batch, at most ~2.3 MB. Derived columns (latency,
service time) are computed per batch, vectorized, not per request.

Converting rows to Arrow holds the event loop (about 0.3 µs a row, so ~2.5 ms for a batch), and
every request due meanwhile is sent late: a generator hiccup that shows as send lag and inflates
those requests' latency. So the engine converts a batch in slices of ``CHUNK_ROWS`` as it goes
(:meth:`convert_some`, on its ticks; ~0.3 ms each), and a flush only converts what is left.

Live progress (``take_interval``) is computed per batch too, and only once ``interval`` is on
(the engine turns it on when something shows progress), so a run nobody watches keeps nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from ..rundir import REQUEST_SCHEMA

_COLUMNS = ("request_id", "endpoint", "method", "intended_ns", "start_ns", "end_ns", "status", "error",
            "error_detail", "bytes", "vu", "stage")  # the order of a row tuple


_ROW_TYPE = pa.struct([(c, REQUEST_SCHEMA.field(c).type) for c in _COLUMNS])
CHUNK_ROWS = 1024  # rows converted to Arrow in one step by convert_some


class Recorder:
    """Row buffer of request records; ``sink`` receives each flushed RecordBatch."""

    def __init__(self, sink: Callable[[pa.RecordBatch], None], *, worker: int = 0, flush_rows: int = 8192,
                 interval: bool = False):
        self._sink = sink
        self.worker = worker
        self.flush_rows = flush_rows
        self.flushed_rows = 0
        self._rows: list[tuple] = []
        # the hot path: append((request_id, endpoint, ..., stage)); stays valid across flushes
        self.append = self._rows.append
        self._chunks: list[pa.StructArray] = []  # rows of this batch already converted (convert_some)
        self._converted = 0
        # the last progress interval: (latency, error) arrays of the batches since take_interval()
        self.interval = interval
        self._iv: list[tuple[pa.Array, pa.Array]] = []

    def add(self, request_id: int, endpoint: str, method: str, intended_ns: int, start_ns: int, end_ns: int,
            status: int | None, error: str | None, error_detail: str | None, nbytes: int,
            vu: int | None, stage: int) -> None:
        rows = self._rows
        rows.append((request_id, endpoint, method, intended_ns, start_ns, end_ns, status, error, error_detail,
                     nbytes, vu, stage))
        if len(rows) + self._converted >= self.flush_rows:
            self.flush()

    def extend(self, rows) -> None:
        """Add many row tuples (flushing every ``flush_rows``)."""
        for row in rows:
            self.append(row)
            if len(self._rows) + self._converted >= self.flush_rows:
                self.flush()

    @property
    def rows(self) -> int:
        """Total recorded (flushed or not)."""
        return self.flushed_rows + self._converted + len(self._rows)

    @property
    def pending(self) -> int:
        return self._converted + len(self._rows)

    @property
    def due(self) -> bool:
        """A full batch is waiting (the engine flushes it on its next tick)."""
        return len(self._rows) + self._converted >= self.flush_rows

    def convert_some(self) -> None:
        """Convert every whole ``CHUNK_ROWS`` of the rows waiting to Arrow now, a slice of the work
        :meth:`flush` would otherwise do at once (see the module docstring)."""
        rows = self._rows
        while len(rows) >= CHUNK_ROWS:
            self._chunks.append(pa.array(rows[:CHUNK_ROWS], type=_ROW_TYPE))
            del rows[:CHUNK_ROWS]  # the same list, so ``append`` stays bound to it
            self._converted += CHUNK_ROWS

    def flush(self) -> None:
        """Hand the buffered rows to the sink as one batch (nothing happens when empty)."""
        rows = self._rows
        chunks = self._chunks
        if rows:
            # one C-level conversion of the row tuples (about half the cost of transposing in Python)
            chunks.append(pa.array(rows, type=_ROW_TYPE))
            rows.clear()  # the same list, so ``append`` stays bound to it
        if not chunks:
            return
        self._chunks, self._converted = [], 0
        cols = (chunks[0] if len(chunks) == 1 else pa.concat_arrays(chunks)).flatten()
        n = len(cols[0])
        intended, start, end, error = cols[3], cols[4], cols[5], cols[7]
        latency = pc.subtract(end, intended)
        arrays = [cols[0], cols[1], cols[2], intended, start, end, latency, pc.subtract(end, start), cols[6], error,
                  cols[8], cols[9], pa.nulls(n, pa.int16()).fill_null(self.worker), cols[10], cols[11]]
        if self.interval:
            self._iv.append((latency, error))
        self._sink(pa.RecordBatch.from_arrays(arrays, schema=REQUEST_SCHEMA))
        self.flushed_rows += n

    def take_interval(self, ps: tuple[float, ...] = (0.5, 0.95, 0.99)
                      ) -> tuple[int, list[float | None], dict[str, int]]:
        """Requests recorded since the last call, for live progress: their count, their latency
        (ms) at each of ``ps`` (the value of rank ``int(p * n)``), and their error counts.

        Covers flushed rows only: the engine flushes before it reports. Computed in Arrow by
        selection, not by sorting a Python list (a second of 50,000 requests held the loop ~5 ms).
        """
        parts, self._iv = self._iv, []
        if not parts:
            return 0, [None] * len(ps), {}
        lat = pa.chunked_array([p[0] for p in parts], pa.int64())
        err = pa.chunked_array([p[1] for p in parts], pa.string())
        errors = {}
        if err.null_count < len(err):
            for item in pc.value_counts(err.drop_null()).to_pylist():
                errors[item["values"]] = item["counts"]
        n = len(lat)
        if n == 1:
            return 1, [lat[0].as_py() / 1e6] * len(ps), errors
        # rank int(p * n) of the sorted values, as the q = rank / (n - 1) quantile, nearest rank
        qs = [min(n - 1, int(p * n)) / (n - 1) for p in ps]
        values = pc.quantile(lat, q=qs, interpolation="nearest").to_pylist()
        return n, [v / 1e6 for v in values], errors


class MemorySink:
    """A sink that keeps batches in memory (tests, notebooks exploring a tiny run)."""

    def __init__(self) -> None:
        self.batches: list[pa.RecordBatch] = []

    def __call__(self, batch: pa.RecordBatch) -> None:
        self.batches.append(batch)

    def table(self) -> pa.Table:
        return pa.Table.from_batches(self.batches, schema=REQUEST_SCHEMA)
