"""Records requests into columns and flushes them to the run's journal in batches.

The engine calls :meth:`Recorder.add` once per finished request with plain ints and strings; a
row costs a few list appends. Every ``flush_rows`` rows (and at least every second, driven by
the engine) the columns become one Arrow record batch in the journal, so memory held is at most
one batch: about 150 bytes per unflushed row (plus the endpoint strings, which are shared).
Derived columns (latency, service time) are computed per batch, vectorized, not per request.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from ..rundir import REQUEST_SCHEMA

_COLUMNS = ("request_id", "endpoint", "method", "intended_ns", "start_ns", "end_ns", "status", "error",
            "error_detail", "bytes", "vu", "stage")


class Recorder:
    """Columnar buffer of request records; ``sink`` receives each flushed RecordBatch."""

    def __init__(self, sink: Callable[[pa.RecordBatch], None], *, worker: int = 0, flush_rows: int = 65536):
        self._sink = sink
        self.worker = worker
        self.flush_rows = flush_rows
        self.rows = 0  # total recorded (flushed or not)
        self.flushed_rows = 0
        self._reset()
        # the last progress interval: latencies and error kinds since the last take_interval()
        self._iv_latency: list[int] = []
        self._iv_errors: dict[str, int] = {}

    def _reset(self) -> None:
        self._cols: dict[str, list] = {c: [] for c in _COLUMNS}
        c = self._cols
        self._app = (c["request_id"].append, c["endpoint"].append, c["method"].append, c["intended_ns"].append,
                     c["start_ns"].append, c["end_ns"].append, c["status"].append, c["error"].append,
                     c["error_detail"].append, c["bytes"].append, c["vu"].append, c["stage"].append)

    def add(self, request_id: int, endpoint: str, method: str, intended_ns: int, start_ns: int, end_ns: int,
            status: int | None, error: str | None, error_detail: str | None, nbytes: int,
            vu: int | None, stage: int) -> None:
        a = self._app
        a[0](request_id)
        a[1](endpoint)
        a[2](method)
        a[3](intended_ns)
        a[4](start_ns)
        a[5](end_ns)
        a[6](status)
        a[7](error)
        a[8](error_detail)
        a[9](nbytes)
        a[10](vu)
        a[11](stage)
        self._iv_latency.append(end_ns - intended_ns)
        if error is not None:
            self._iv_errors[error] = self._iv_errors.get(error, 0) + 1
        self.rows += 1
        if len(self._cols["request_id"]) >= self.flush_rows:
            self.flush()

    @property
    def pending(self) -> int:
        return len(self._cols["request_id"])

    def flush(self) -> None:
        """Hand the buffered rows to the sink as one batch (nothing happens when empty)."""
        n = len(self._cols["request_id"])
        if not n:
            return
        c = self._cols
        intended = pa.array(c["intended_ns"], pa.int64())
        start = pa.array(c["start_ns"], pa.int64())
        end = pa.array(c["end_ns"], pa.int64())
        arrays = [
            pa.array(c["request_id"], pa.int64()),
            pa.array(c["endpoint"], pa.string()),
            pa.array(c["method"], pa.string()),
            intended,
            start,
            end,
            pc.subtract(end, intended),
            pc.subtract(end, start),
            pa.array(c["status"], pa.int16()),
            pa.array(c["error"], pa.string()),
            pa.array(c["error_detail"], pa.string()),
            pa.array(c["bytes"], pa.int64()),
            pa.array([self.worker] * n, pa.int16()),
            pa.array(c["vu"], pa.int32()),
            pa.array(c["stage"], pa.int16()),
        ]
        self._reset()
        self._sink(pa.RecordBatch.from_arrays(arrays, schema=REQUEST_SCHEMA))
        self.flushed_rows += n

    def take_interval(self) -> tuple[list[int], dict[str, int]]:
        """Latencies (ns) and error counts recorded since the last call, for live progress."""
        lat, err = self._iv_latency, self._iv_errors
        self._iv_latency, self._iv_errors = [], {}
        return lat, err


class MemorySink:
    """A sink that keeps batches in memory (tests, notebooks exploring a tiny run)."""

    def __init__(self) -> None:
        self.batches: list[pa.RecordBatch] = []

    def __call__(self, batch: pa.RecordBatch) -> None:
        self.batches.append(batch)

    def table(self) -> pa.Table:
        return pa.Table.from_batches(self.batches, schema=REQUEST_SCHEMA)
