"""Merging the shards' journal parts into one requests.parquet, streaming, exact over all rows."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from ..rundir import (
    PARQUET_OPTIONS,
    REQUEST_SCHEMA,
    ROW_GROUP_ROWS,
)
from .shard import read_part_batches, remove_part


def _part_batches(client, shard: dict) -> Iterator[pa.RecordBatch]:
    """A shard's recorded batches: read where the coordinator sees its part, else fetched from its worker."""
    path = shard["part"]
    if Path(path).exists():
        try:
            reader = ipc.open_stream(pa.memory_map(path))
        except (pa.ArrowInvalid, OSError):
            return  # killed before the schema was written
        with contextlib.suppress(pa.ArrowInvalid, OSError):  # a killed shard's last batch may be cut off
            yield from reader
        return
    if shard.get("worker") is None or shard.get("lost"):
        return  # on a machine we cannot reach any more
    start = 0
    for _ in range(10**6):
        fut = client.submit(read_part_batches, path, start, 16, workers=[shard["worker"]],
                            allow_other_workers=False, pure=False)
        batches, more = fut.result(timeout=120)
        yield from batches
        start += len(batches)
        if not more:
            break
    client.submit(remove_part, path, workers=[shard["worker"]], allow_other_workers=False, pure=False).result(60)


def merge_parts(client, shards: list[dict], out: Path) -> dict[int, dict]:
    """Merge the shards' journal parts into ``out`` (requests.parquet), streaming.

    Batches are taken from the part whose next batch starts earliest (by ``end_ns``), so row
    groups stay roughly in time order; memory holds one batch per part plus one row group.
    Returns per shard: rows kept and the run time of its last flushed row.
    """
    import heapq

    import pyarrow.parquet as pq

    iters = {s["shard"]: _part_batches(client, s) for s in shards}
    kept = {s["shard"]: {"rows": 0, "last_end_ns": None} for s in shards}
    heap: list = []

    def push(i: int) -> None:
        for b in iters[i]:
            if b.num_rows:
                heapq.heappush(heap, (pc.min(b.column("end_ns")).as_py(), i, id(b), b))
                return

    for i in iters:
        push(i)
    tmp = out.with_name(out.name + ".tmp")
    pending: list[pa.RecordBatch] = []
    n_pending = 0
    with pq.ParquetWriter(tmp, REQUEST_SCHEMA, **PARQUET_OPTIONS) as writer:
        while heap:
            _, i, _, b = heapq.heappop(heap)
            k = kept[i]
            k["rows"] += b.num_rows
            last = pc.max(b.column("end_ns")).as_py()
            k["last_end_ns"] = last if k["last_end_ns"] is None else max(k["last_end_ns"], last)
            pending.append(b)
            n_pending += b.num_rows
            if n_pending >= ROW_GROUP_ROWS:
                writer.write_table(pa.Table.from_batches(pending, REQUEST_SCHEMA), row_group_size=ROW_GROUP_ROWS)
                pending, n_pending = [], 0
            push(i)
        if pending or not any(k["rows"] for k in kept.values()):
            writer.write_table(pa.Table.from_batches(pending, REQUEST_SCHEMA), row_group_size=ROW_GROUP_ROWS)
    os.replace(tmp, out)
    for s in shards:
        if Path(s["part"]).exists():
            remove_part(s["part"])
    return kept
