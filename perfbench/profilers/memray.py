"""memray under load: captures of a service run under ``memray run`` or of a block in-process, read into Polars.

A target starts under memray with ``DemoProcess(memray=True)``,
``perfbench.service.ServiceProcess(cmd, memray=True)`` or ``perfbench run --start CMD --memray``
(the command line is :func:`perfbench.service.memray_command`); :class:`MemrayCollector` stops it
at the end of the run, which completes the capture. In-process: :func:`memray_tracker`.
:func:`read_memray` reads a capture with memray's own ``FileReader`` into Polars;
:func:`write_memray_reports` writes the Parquet files, ``memray stats --json`` and the offline
flame graph (``memray flamegraph --no-web``) into ``memory/``. ``memray tree`` is never run (it is
an interactive TUI and hangs).

Cost: memray's default mode slows an allocation-only loop about ×3; ``trace_python_allocators``
about ×9. Inside this module ``import memray`` is absolute, so it is the memray package.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..agent.memory import is_library, library_prefixes
from ..errors import ProfilerError
from ..service import memray_executable
from .tracemalloc import MEMORY_DIR

if TYPE_CHECKING:
    import polars as pl


@contextlib.contextmanager
def memray_tracker(path: str | Path, *, native_traces: bool = False, trace_python_allocators: bool = False,
                   memory_interval_ms: int = 10) -> Iterator[Path]:
    """memray's Tracker in-process around a block (overwrites ``path``); read it with :func:`read_memray`."""
    import memray

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()  # memray refuses to overwrite (OSError: Output file ... already exists)
    with memray.Tracker(str(path), native_traces=native_traces, trace_python_allocators=trace_python_allocators,
                        memory_interval_ms=memory_interval_ms):
        yield path


_DEALLOCATORS = {"FREE", "MUNMAP", "PYMALLOC_FREE"}


def _stack_rows(records, prefixes: list[str], max_stacks: int = 16) -> dict[str, list]:
    import memray

    rows: dict[str, list] = {k: [] for k in ("file", "line", "function", "site_file", "site_line", "size",
                                             "count", "allocator")}
    for rec in records:
        stack = rec.stack_trace(max_stacks=max_stacks) or [("<unknown>", "<unknown>", 0)]
        fn, fi, ln = stack[0]
        site = next((fr for fr in stack if not is_library(fr[1], prefixes)), stack[0])
        rows["file"].append(fi)
        rows["line"].append(ln)
        rows["function"].append(fn)
        rows["site_file"].append(site[1])
        rows["site_line"].append(site[2])
        rows["size"].append(rec.size)
        rows["count"].append(rec.n_allocations)
        rows["allocator"].append(memray.AllocatorType(rec.allocator).name)
    return rows


class MemrayReport:
    """A memray capture read through memray's ``FileReader`` into Polars.

    ``totals``: allocations and bytes over the whole capture and the peak (the figures
    ``memray stats`` prints); ``high_water``: what was live at the peak, by location;
    ``leaked``: what was still live when tracking ended, by location; ``timeline``: memray's
    memory-over-time snapshots (``t_ms`` since the capture's start, ``rss``, ``heap``).
    Locations carry the innermost Python frame (``file, line, function``) and the ``site``
    (innermost frame outside the standard library and site-packages).
    """

    def __init__(self, path: str | Path, counted: tuple[int, int] | None = None):
        """``counted``: (allocations, bytes allocated) over the capture when already known (``memray stats
        --json`` counts them in a few seconds); otherwise counted here, record by record, on first use of
        ``totals`` (about 2 µs a record: a minute for a capture of 25 million allocations)."""
        import memray
        import polars as pl

        self.path = Path(path)
        reader = memray.FileReader(str(self.path))
        md = reader.metadata
        self.metadata = {"pid": md.pid, "command_line": md.command_line, "peak_memory": md.peak_memory,
                         "total_allocations": md.total_allocations, "total_frames": md.total_frames,
                         "start_time": str(md.start_time), "end_time": str(md.end_time),
                         "python_allocator": md.python_allocator, "has_native_traces": md.has_native_traces,
                         "trace_python_allocators": getattr(md, "trace_python_allocators", None)}
        prefixes = library_prefixes()
        schema = {"file": pl.String, "line": pl.Int32, "function": pl.String, "site_file": pl.String,
                  "site_line": pl.Int32, "size": pl.Int64, "count": pl.Int64, "allocator": pl.String}
        self.high_water_records = pl.DataFrame(
            _stack_rows(reader.get_high_watermark_allocation_records(merge_threads=True), prefixes), schema=schema)
        self.leaked_records = pl.DataFrame(
            _stack_rows(reader.get_leaked_allocation_records(merge_threads=True), prefixes), schema=schema)
        self._counted = counted
        self.timeline = pl.DataFrame([{"t_ms": s.time, "rss": s.rss, "heap": s.heap}
                                      for s in reader.get_memory_snapshots()],
                                     schema={"t_ms": pl.Int64, "rss": pl.Int64, "heap": pl.Int64})
        if self.timeline.height:
            self.timeline = self.timeline.with_columns(t_ms=pl.col("t_ms") - pl.col("t_ms").min())
        reader.close()

    @property
    def totals(self) -> dict[str, int]:
        if self._counted is None:
            import memray

            n = b = 0
            with contextlib.closing(memray.FileReader(str(self.path))) as reader:
                for rec in reader.get_allocation_records():
                    if memray.AllocatorType(rec.allocator).name not in _DEALLOCATORS:
                        n += rec.n_allocations
                        b += rec.size
            self._counted = (n, b)
        n, b = self._counted
        return {"total_num_allocations": n, "total_bytes_allocated": b, "peak_memory": int(self.metadata["peak_memory"] or 0),
                "high_water_bytes": int(self.high_water_records["size"].sum()),
                "leaked_bytes": int(self.leaked_records["size"].sum())}

    def by_location(self, which: str = "high_water", by: str = "lineno") -> pl.DataFrame:
        """Bytes and allocations per location of ``high_water`` or ``leaked``, largest first."""
        import polars as pl

        df = {"high_water": self.high_water_records, "leaked": self.leaked_records}[which]
        keys = ["file", "line", "function"] if by == "lineno" else ["site_file", "site_line"]
        out = df.group_by(keys).agg(pl.col("size").sum(), pl.col("count").sum()).sort(
            ["size", *keys], descending=[True] + [False] * len(keys), nulls_last=True)  # ties in one order
        return out.rename({"site_file": "file", "site_line": "line"}) if by == "site" else out


def read_memray(path: str | Path) -> MemrayReport:
    return MemrayReport(path)


def memray_stats_json(capture: str | Path, out: str | Path, timeout: float = 300) -> dict[str, Any]:
    """Run ``memray stats --json`` on a capture; its JSON."""
    subprocess.run([*memray_executable(), "stats", "--json", "-f", "-o", str(out), str(capture)],
                   check=True, capture_output=True, text=True, timeout=timeout)
    return json.loads(Path(out).read_text())


def memray_flamegraph(capture: str | Path, out: str | Path, *, leaks: bool = False, timeout: float = 300) -> Path:
    """memray's flame graph HTML with its assets inlined (``--no-web``: renders with no network)."""
    cmd = [*memray_executable(), "flamegraph", "--no-web", "-f", "-o", str(out)]
    if leaks:
        cmd.append("--leaks")
    subprocess.run([*cmd, str(capture)], check=True, capture_output=True, text=True, timeout=timeout)
    return Path(out)


def write_memray_reports(capture: str | Path, run_dir: str | Path, *, flamegraph: bool = True) -> dict[str, Any]:
    """Read ``capture`` and write Parquet, ``memray stats --json`` and flame graphs under ``memory/``.

    memray's three commands run side by side with the reading (each reads the capture on its own; on
    a capture of 25 million allocations each takes about ten seconds)."""
    from concurrent.futures import ThreadPoolExecutor

    out_dir = Path(run_dir) / MEMORY_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    capture = Path(capture)
    errors = []
    graphs = (("memray_flamegraph.html", False), ("memray_flamegraph_leaks.html", True)) if flamegraph else ()
    with ThreadPoolExecutor(max_workers=1 + len(graphs)) as pool:
        stats_job = pool.submit(memray_stats_json, capture, out_dir / "memray_stats.json")
        graph_jobs = {name: (leaks, pool.submit(memray_flamegraph, capture, out_dir / name, leaks=leaks))
                      for name, leaks in graphs}
        try:
            stats = stats_job.result()
            counted = (int(stats["total_num_allocations"]), int(stats["total_bytes_allocated"]))
        except (subprocess.SubprocessError, OSError, KeyError, TypeError, ValueError) as exc:
            errors.append(f"memray stats: {exc}")
            counted = None  # the report counts them itself
        report = MemrayReport(capture, counted)
        report.by_location("high_water").write_parquet(out_dir / "memray_high_water.parquet")
        report.by_location("leaked").write_parquet(out_dir / "memray_leaked.parquet")
        report.by_location("leaked", by="site").write_parquet(out_dir / "memray_leaked_site.parquet")
        report.timeline.write_parquet(out_dir / "memray_timeline.parquet")
        files = {"capture": capture.name, "high_water": "memray_high_water.parquet",
                 "leaked": "memray_leaked.parquet", "leaked_site": "memray_leaked_site.parquet",
                 "timeline": "memray_timeline.parquet"}
        if counted is not None:
            files["stats"] = "memray_stats.json"
        for name, (leaks, job) in graph_jobs.items():
            try:
                job.result()
                files[name.removesuffix(".html")] = name
            except (subprocess.SubprocessError, OSError) as exc:
                errors.append(f"memray flamegraph{' --leaks' if leaks else ''}: {exc}")
    out = {"files": {k: f"{MEMORY_DIR}/{v}" for k, v in files.items()}, "totals": report.totals,
           "metadata": report.metadata}
    if errors:
        out["errors"] = errors
    return out


def memray_written(run_dir: str | Path) -> tuple[dict[str, Any], pl.DataFrame] | None:
    """What :func:`write_memray_reports` left in a run directory, without reading the capture again: the
    totals (``meta.json``'s ``collectors.memray``) and the bytes still allocated at the end by site. None
    when the run has none (no memray, or its reports failed: read the capture with :func:`read_memray`)."""
    import polars as pl

    run_dir = Path(run_dir)
    sites = run_dir / MEMORY_DIR / "memray_leaked_site.parquet"
    try:
        meta = json.loads((run_dir / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    totals = ((meta.get("collectors") or {}).get("memray") or {}).get("totals")
    if not isinstance(totals, dict) or not sites.exists():
        return None
    return totals, pl.read_parquet(sites)


class MemrayCollector:
    """Collector for a target started under ``memray run`` (``DemoProcess(memray=True)`` or
    ``ServiceProcess(cmd, memray=True)``).

    A memray capture is complete only when the traced process ends, so at ``stop`` this collector
    stops the target (it must be one perfbench started: its ``stop()`` is called), moves the
    capture into ``memory/`` and writes the reports (:func:`write_memray_reports`).
    """

    name = "memray"

    def __init__(self, process: Any, *, flamegraph: bool = True):
        self.process = process
        self.flamegraph = flamegraph

    async def start(self, ctx) -> None:
        capture = getattr(self.process, "memray_path", None)
        if not capture:
            raise ProfilerError("memray: the target was not started under memray (use DemoProcess(memray=True) "
                               "or ServiceProcess(cmd, memray=True); from the CLI: --start CMD --memray)")
        if getattr(self.process, "pid", None) is None:
            raise ProfilerError("memray: the target process is not running")

    async def stop(self, ctx) -> dict[str, Any]:
        return await asyncio.to_thread(self.stop_sync, ctx.run_dir)

    def stop_sync(self, run_dir: str | Path) -> dict[str, Any]:
        self.process.stop()
        src = Path(self.process.memray_path)
        if not src.exists():
            raise ProfilerError(f"memray: no capture file at {src} (did the target start under memray?)")
        dest_dir = Path(run_dir) / MEMORY_DIR
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / "memray.bin"
        shutil.move(str(src), dest)
        return write_memray_reports(dest, run_dir, flamegraph=self.flamegraph)

