"""The worker side: one shard of the plan run by the engine, recorded into a journal part."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from ..engine.options import LoadOptions
from ..engine.session import (
    LoadSession,
    run_coroutine,
)
from ..errors import PerfbenchError
from ..rundir import (
    REQUEST_SCHEMA,
    read_journal,
)
from ..scenario import Scenario
from ..shapes import ClosedPlan, OpenPlan
from .progress import PROGRESS_TOPIC, latency_histogram

PARTS_DIR = "parts"
_STOPS: dict[str, str] = {}  # run id -> stop reason, set on a worker by the coordinator (client.run)


def set_stop(run_id: str, reason: str) -> None:
    _STOPS.setdefault(run_id, reason)


# ------------------------------------------------------------------------------------ the shard
@dataclass
class ShardSpec:
    index: int
    count: int
    run_id: str
    target: str  # already checked by the coordinator
    plan: OpenPlan | ClosedPlan  # the whole plan; the shard runs ``plan.shard(index, count)``
    scenario: Scenario
    start_unix_ns: int  # the common start, on the coordinator's wall clock
    offset_ns: int  # this worker's wall clock minus the coordinator's
    part_dir: str | None  # shared with the coordinator, or None: the worker's temporary directory
    options: LoadOptions  # this shard's share (LoadOptions.shard): its in-flight cap and request budget
    progress: bool = True  # publish live progress to the coordinator


class _PartJournal:
    """A shard's journal part: like ``rundir.Journal``, but created exclusively (a rerun of the
    shard must not overwrite what its first run recorded)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "xb", buffering=0)  # noqa: SIM115 - closed in close()
        self._writer = ipc.new_stream(self._file, REQUEST_SCHEMA)

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()
        self._file.close()


def part_name(run_id: str, index: int) -> str:
    return f"{run_id}.shard-{index}.arrows"


def run_shard(spec: ShardSpec) -> dict[str, Any]:
    """The Dask task: run shard ``spec.index`` on this worker; returns its stats (the rows are in its part)."""
    worker = None
    with contextlib.suppress(Exception):
        from distributed import get_worker

        worker = get_worker()
    return run_coroutine(_shard_async(spec, worker))


async def _shard_async(spec: ShardSpec, worker) -> dict[str, Any]:
    # the common start on this machine's clocks: coordinator wall time -> local wall -> monotonic
    t0 = time.perf_counter_ns() + (spec.start_unix_ns + spec.offset_ns - time.time_ns())
    late_s = (time.perf_counter_ns() - t0) / 1e9
    if late_s > spec.plan.duration:
        raise PerfbenchError(f"shard {spec.index} started {late_s:.1f} s after the common start, past the plan's "
                           "end: not sending (a rerun after a lost worker?)")
    part_dir = Path(spec.part_dir) if spec.part_dir else Path(tempfile.gettempdir()) / "perfbench-parts"
    part_path = part_dir / part_name(spec.run_id, spec.index)
    session = LoadSession(spec.target, spec.plan.shard(spec.index, spec.count), spec.scenario, spec.options,
                          worker=spec.index)
    try:
        async with session:
            journal = _PartJournal(part_path)
            try:
                interval: list[pa.RecordBatch] = []

                def sink(batch: pa.RecordBatch) -> None:
                    journal.write(batch)
                    if spec.progress:
                        interval.append(batch.select(["latency_ns", "error"]))

                def publish(p: dict) -> None:
                    parts, interval[:] = list(interval), []
                    lat = pa.chunked_array([b.column(0) for b in parts], pa.int64()).combine_chunks() if parts \
                        else pa.array([], pa.int64())
                    errs = pa.chunked_array([b.column(1) for b in parts], pa.string()) if parts else None
                    errors = {}
                    if errs is not None and errs.null_count < len(errs):
                        errors = {r["values"]: int(r["counts"])
                                  for r in pc.value_counts(errs.drop_null()).to_pylist()}
                    msg = {"shard": spec.index, "elapsed_s": p["elapsed_s"], "planned_rps": p["planned_rps"],
                           "n": len(lat), "hist": {str(k): v for k, v in latency_histogram(lat).items()},
                           "errors": errors, "in_flight": p["in_flight"], "waiting": p["waiting"],
                           "total": p["total"], "final": p["final"]}
                    if worker is not None:
                        with contextlib.suppress(Exception):
                            worker.log_event(f"{PROGRESS_TOPIC}-{spec.run_id}", msg)

                engine = session.build(sink, publish if spec.progress else None)

                async def watch_stop() -> None:  # the coordinator's stop (Ctrl-C there) reaches us via client.run
                    for _ in range(10**7):  # bounded: about 11 days at 0.1 s
                        reason = _STOPS.get(spec.run_id)
                        if reason:
                            engine.stop(reason)
                            return
                        await asyncio.sleep(0.1)

                watcher = asyncio.get_running_loop().create_task(watch_stop())
                try:
                    wait_s = (t0 - time.perf_counter_ns()) / 1e9 - 0.002
                    if wait_s > 0:
                        await asyncio.sleep(wait_s)
                    stats = await session.run(t0)
                finally:
                    watcher.cancel()
            finally:
                journal.close()
    finally:
        _STOPS.pop(spec.run_id, None)
    assert session.recorder is not None
    return {"shard": spec.index, "host": socket.gethostname(), "pid": os.getpid(), "part": str(part_path),
            "path": session.sender.name, "end_reason": stats.end_reason, "elapsed_s": session.elapsed,
            "start_wait_s": -late_s, "rows": session.recorder.rows,
            "stats": {"planned": stats.planned, "sent": stats.sent, "completed": stats.completed,
                      "capped": stats.capped, "aborted": stats.aborted, "unsent": stats.unsent,
                      "max_in_flight_seen": stats.max_in_flight_seen}}


def read_part_batches(path: str, start: int, count: int) -> tuple[list[pa.RecordBatch], bool]:
    """Batches ``start .. start+count`` of a journal part (a task on the worker holding it); and
    whether more follow."""
    batches, _ = read_journal(Path(path))
    return batches[start:start + count], len(batches) > start + count


def remove_part(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
