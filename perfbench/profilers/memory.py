"""Memory under load: tracemalloc snapshots (in-process or from a running service) and memray captures.

**tracemalloc in a notebook, around any code**::

    tr = memory.Tracer(nframes=5)            # starts tracemalloc if it is not running
    tr.take("before"); work(); tr.take("after")
    tr.compare("before", "after", by="site")  # Polars: file, line, size, count, *_before, *_diff
    tr.top("after", 10, by="lineno")
    tr.write(run_dir)                          # memory/tracemalloc_*.parquet

**tracemalloc of a running Python service, during a load run.** The service mounts a tiny
aiohttp sub-app (``install(app, token=...)``, or ``install_from_env(app)`` which mounts it only when
``PERFBENCH_MEMORY_TOKEN`` is set). It is off unless enabled, answers only loopback clients that
send the token (``X-Perfbench-Token``), and has three routes under ``/_perfbench/memory``:
``GET status``, ``POST start`` and ``POST snapshot``. A snapshot is answered as compact JSON of
``Snapshot.statistics("traceback")`` (one entry per distinct traceback: frames, size, count), so no
pickle ever crosses the wire and the client can group by line, by traceback or by "site" itself.
:class:`TracemallocCollector` takes one snapshot before the first request, one every
``interval_s`` and one after the last response, into ``memory/``.

Why a mounted sub-app and not a signal or the agent: HTTP is already how perfbench talks to the
target, the answer comes back synchronously (a signal would need a file drop and a poll), it works
for any aiohttp service, and it stays self-contained here while ``perfbench/agent/`` is built. For
the demo, :class:`perfbench.demo.process.DemoProcess` with ``tracemalloc=True`` starts it through
this module's launcher (``python -m perfbench.profilers.memory demo ...``), which mounts the sub-app
without touching the demo's code; once the demo's ``create_app`` calls ``install_from_env(app)``
itself, the launcher's mount is a no-op.

**Grouping.** ``lineno``: the innermost frame (tracemalloc's own ``"lineno"``); ``traceback``: the
whole stack as captured; ``site``: the innermost frame *outside* the standard library and
site-packages, i.e. the line of the user's code that caused the allocation. The demo's leak
allocates its 10 KB string inside ``secrets.token_hex``: by ``lineno`` that is ``secrets.py``, by
``site`` it is ``perfbench/demo/leak.py`` at the line that calls it. ``site`` needs ``nframes`` > 1.

Parquet files under ``memory/`` (sizes in bytes)::

    tracemalloc_snapshots.parquet   snapshot, label, t_ns, file, line, site_file, site_line,
                                    traceback, size, count   (one row per distinct traceback)
    tracemalloc_diff_<by>.parquet   first vs last snapshot grouped by lineno / site / traceback:
                                    file, line, [traceback], size, count, size_before,
                                    count_before, size_diff, count_diff

**memray**: the demo or the user's own service under ``memray run`` (``DemoProcess(memray=True)``,
``perfbench.service.ServiceProcess(cmd, memray=True)``, ``perfbench run --start CMD --memray``), or
memray's ``Tracker`` in-process (:func:`memray_tracker`).
:func:`read_memray` reads a capture with memray's own ``FileReader`` into Polars;
:func:`write_memray_reports` writes the Parquet files, ``memray stats --json`` and the offline
flame graph (``memray flamegraph --no-web``) into ``memory/``. ``memray tree`` is never run (it is
an interactive TUI and hangs).

Costs. tracemalloc in the target slows allocation-heavy code several times (STACK.md: ×10 on an
allocation-only loop with ``nframes=1``) and every snapshot holds the target's GIL while it is
taken and summarised (tens to hundreds of ms for a service with 10^5 live traces): keep the
interval at seconds and compare latency with a run without it. memray's default mode costs about
×3 on the same loop; ``trace_python_allocators`` about ×9.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..safety import is_loopback_address

if TYPE_CHECKING:  # polars is imported lazily: the service side of this module runs inside targets
    import polars as pl

PREFIX = "/_perfbench/memory"
TOKEN_ENV = "PERFBENCH_MEMORY_TOKEN"
NFRAMES_ENV = "PERFBENCH_MEMORY_NFRAMES"
TRACE_AT_START_ENV = "PERFBENCH_MEMORY_TRACE_AT_START"
TOKEN_HEADER = "X-Perfbench-Token"
MEMORY_DIR = "memory"
SNAPSHOTS = "tracemalloc_snapshots.parquet"
GROUPINGS = ("lineno", "site", "traceback")
DEFAULT_NFRAMES = 5

_INSTALLED = web.AppKey("perfbench_memory_installed", bool)
_SELF = os.path.normcase(os.path.abspath(__file__))


# --- snapshots as plain data (used in the target and in-process) ------------------------------------------


def library_prefixes() -> list[str]:
    """Path prefixes of this interpreter's standard library and installed packages."""
    paths = sysconfig.get_paths()
    out = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if paths.get(k)}
    return sorted(out)


def _excluded(filename: str) -> bool:
    return filename == tracemalloc.__file__ or os.path.normcase(filename) == _SELF or filename == "<unknown>"


def snapshot_data(snapshot: tracemalloc.Snapshot | None = None, *, label: str = "") -> dict[str, Any]:
    """A snapshot as compact JSON-able data: distinct tracebacks (innermost frame first) with size and count.

    Frames of tracemalloc itself and of this module are dropped (a snapshot's own bookkeeping is
    not the target's memory).
    """
    if snapshot is None:
        snapshot = tracemalloc.take_snapshot()
    files: dict[str, int] = {}
    stats = []
    for st in snapshot.statistics("traceback"):
        frames = [(f.filename, f.lineno) for f in reversed(st.traceback)]  # innermost first
        if any(_excluded(fn) for fn, _ in frames):
            continue
        stats.append([[[files.setdefault(fn, len(files)), ln] for fn, ln in frames], st.size, st.count])
    current, peak = tracemalloc.get_traced_memory() if tracemalloc.is_tracing() else (0, 0)
    return {"version": 1, "label": label, "t_unix_ns": time.time_ns(), "t_perf_ns": time.perf_counter_ns(),
            "pid": os.getpid(), "nframes": snapshot.traceback_limit, "traced_current": current,
            "traced_peak": peak, "files": list(files), "library_prefixes": library_prefixes(), "stats": stats}


# --- the service side: a sub-app a Python service mounts ---------------------------------------------------


def memory_app(token: str, *, nframes: int = DEFAULT_NFRAMES) -> web.Application:
    """The sub-app (routes ``status``, ``start``, ``snapshot``); mount it with :func:`install`."""
    if not token or len(token) < 16:
        raise ValueError("the memory endpoint needs a token of at least 16 characters")

    @web.middleware
    async def guard(request: web.Request, handler):
        if not is_loopback_address(request.remote):
            raise web.HTTPForbidden(text="perfbench memory endpoint: loopback clients only")
        if not hmac.compare_digest(request.headers.get(TOKEN_HEADER, ""), token):
            raise web.HTTPUnauthorized(text=f"perfbench memory endpoint: missing or wrong {TOKEN_HEADER}")
        return await handler(request)

    async def status(request: web.Request) -> web.Response:
        current, peak = tracemalloc.get_traced_memory() if tracemalloc.is_tracing() else (0, 0)
        return web.json_response({"tracing": tracemalloc.is_tracing(), "nframes": tracemalloc.get_traceback_limit(),
                                  "traced_current": current, "traced_peak": peak, "pid": os.getpid()})

    async def start(request: web.Request) -> web.Response:
        n = int(request.query.get("nframes", nframes))
        if not tracemalloc.is_tracing():
            tracemalloc.start(n)
        return web.json_response({"tracing": True, "nframes": tracemalloc.get_traceback_limit()})

    async def snapshot(request: web.Request) -> web.Response:
        if not tracemalloc.is_tracing():
            raise web.HTTPConflict(text="tracemalloc is not tracing in this process; POST start first "
                                        "(or start the service with PYTHONTRACEMALLOC=5)")
        label = request.query.get("label", "")
        # taking and summarising holds the GIL; on a thread the event loop still gets its turns
        data = await asyncio.to_thread(lambda: json.dumps(snapshot_data(label=label)))
        return web.Response(text=data, content_type="application/json")

    app = web.Application(middlewares=[guard])
    app.router.add_get("/status", status)
    app.router.add_post("/start", start)
    app.router.add_post("/snapshot", snapshot)
    return app


def install(app: web.Application, token: str, *, prefix: str = PREFIX, nframes: int = DEFAULT_NFRAMES) -> bool:
    """Mount the memory endpoint on ``app`` (before it starts); False if it was mounted already."""
    if app.get(_INSTALLED):
        return False
    app.add_subapp(prefix, memory_app(token, nframes=nframes))
    app[_INSTALLED] = True
    return True


def install_from_env(app: web.Application) -> bool:
    """Mount the memory endpoint only if ``PERFBENCH_MEMORY_TOKEN`` is set (off by default)."""
    token = os.environ.get(TOKEN_ENV)
    if not token:
        return False
    return install(app, token, nframes=int(os.environ.get(NFRAMES_ENV, DEFAULT_NFRAMES)))


# --- Polars side ------------------------------------------------------------------------------------------


def _is_library(filename: str, prefixes: list[str]) -> bool:
    if filename.startswith("<"):
        return True
    if "site-packages" in filename or "dist-packages" in filename:
        return True
    return any(filename.startswith(p + os.sep) for p in prefixes)


def snapshot_frame(data: dict[str, Any], *, snapshot: int = 0, t_ns: int | None = None) -> pl.DataFrame:
    """One snapshot (``snapshot_data``) as rows: file, line (innermost), site_file, site_line, traceback, size, count."""
    import polars as pl

    files = data["files"]
    prefixes = data.get("library_prefixes") or library_prefixes()
    lib = [_is_library(f, prefixes) for f in files]
    rows: dict[str, list] = {k: [] for k in ("file", "line", "site_file", "site_line", "traceback", "size", "count")}
    for frames, size, count in data["stats"]:
        fi, ln = frames[0] if frames else (None, 0)
        site = next((fr for fr in frames if not lib[fr[0]]), frames[0] if frames else (None, 0))
        rows["file"].append(files[fi] if fi is not None else "<unknown>")
        rows["line"].append(ln)
        rows["site_file"].append(files[site[0]] if site[0] is not None else "<unknown>")
        rows["site_line"].append(site[1])
        rows["traceback"].append(" <- ".join(f"{files[f]}:{n}" for f, n in frames))
        rows["size"].append(size)
        rows["count"].append(count)
    df = pl.DataFrame(rows, schema={"file": pl.String, "line": pl.Int32, "site_file": pl.String,
                                    "site_line": pl.Int32, "traceback": pl.String, "size": pl.Int64,
                                    "count": pl.Int64})
    return df.with_columns(snapshot=pl.lit(snapshot, pl.Int32), label=pl.lit(data.get("label", "")),
                           t_ns=pl.lit(t_ns, pl.Int64)).select(
        "snapshot", "label", "t_ns", "file", "line", "site_file", "site_line", "traceback", "size", "count")


def _keys(by: str) -> list[str]:
    if by == "lineno":
        return ["file", "line"]
    if by == "site":
        return ["site_file", "site_line"]
    if by == "traceback":
        return ["file", "line", "traceback"]
    if by == "filename":
        return ["file"]
    raise ValueError(f"by must be one of lineno, site, traceback, filename; got {by!r}")


def group(frame: pl.DataFrame, by: str = "lineno") -> pl.DataFrame:
    """Size and count per allocation site of one snapshot's rows, largest first (``file, line`` columns)."""
    import polars as pl

    keys = _keys(by)
    out = frame.group_by(keys).agg(pl.col("size").sum(), pl.col("count").sum())
    if by == "site":
        out = out.rename({"site_file": "file", "site_line": "line"})
    return out.sort("size", descending=True)


def top(frame: pl.DataFrame, n: int = 10, by: str = "lineno") -> pl.DataFrame:
    """The ``n`` largest sites of one snapshot."""
    return group(frame, by).head(n)


def diff(before: pl.DataFrame, after: pl.DataFrame, by: str = "lineno") -> pl.DataFrame:
    """``after`` minus ``before`` per site: size, count now, before, and their differences, largest growth first."""
    import polars as pl

    a, b = group(after, by), group(before, by)
    keys = [c for c in a.columns if c not in ("size", "count")]
    out = a.join(b.rename({"size": "size_before", "count": "count_before"}), on=keys, how="full", coalesce=True)
    out = out.with_columns(pl.col("size", "count", "size_before", "count_before").fill_null(0))
    return out.with_columns(size_diff=pl.col("size") - pl.col("size_before"),
                            count_diff=pl.col("count") - pl.col("count_before")).sort(
        "size_diff", descending=True)


def write_snapshots(frames: list[pl.DataFrame], run_dir: str | Path) -> dict[str, str]:
    """Write the snapshots and the first-vs-last diffs (by lineno, site, traceback) under ``memory/``."""
    import polars as pl

    out_dir = Path(run_dir) / MEMORY_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    if not frames:
        return written
    pl.concat(frames).write_parquet(out_dir / SNAPSHOTS)
    written["snapshots"] = f"{MEMORY_DIR}/{SNAPSHOTS}"
    if len(frames) >= 2:
        for by in GROUPINGS:
            name = f"tracemalloc_diff_{by}.parquet"
            diff(frames[0], frames[-1], by).write_parquet(out_dir / name)
            written[f"diff_{by}"] = f"{MEMORY_DIR}/{name}"
    return written


def read_snapshots(run_dir: str | Path) -> pl.DataFrame:
    """``memory/tracemalloc_snapshots.parquet`` of a run (one row per snapshot and distinct traceback)."""
    import polars as pl

    path = Path(run_dir) / MEMORY_DIR / SNAPSHOTS
    if not path.exists():
        raise FileNotFoundError(f"{run_dir}: no {MEMORY_DIR}/{SNAPSHOTS}; was the run made with a "
                                f"TracemallocCollector?")
    return pl.read_parquet(path)


class Tracer:
    """In-process tracemalloc for a notebook: take labelled snapshots, compare any two, top-N, write.

    Starts tracemalloc with ``nframes`` if it is not tracing (and stops it again in :meth:`close`
    only if it started it). Snapshots are kept as Polars frames (see :func:`snapshot_frame`).
    """

    def __init__(self, nframes: int = DEFAULT_NFRAMES):
        self.started_here = not tracemalloc.is_tracing()
        if self.started_here:
            tracemalloc.start(nframes)
        self.snapshots: dict[str, pl.DataFrame] = {}

    def take(self, label: str | None = None) -> pl.DataFrame:
        label = label or f"s{len(self.snapshots)}"
        data = snapshot_data(label=label)
        frame = snapshot_frame(data, snapshot=len(self.snapshots), t_ns=data["t_perf_ns"])
        self.snapshots[label] = frame
        return frame

    @contextlib.contextmanager
    def around(self, label: str) -> Iterator[Tracer]:
        """``with tr.around("work"): ...`` takes ``work:before`` and ``work:after``."""
        self.take(f"{label}:before")
        try:
            yield self
        finally:
            self.take(f"{label}:after")

    def _get(self, label: str) -> pl.DataFrame:
        try:
            return self.snapshots[label]
        except KeyError:
            raise KeyError(f"no snapshot labelled {label!r}; taken: {', '.join(self.snapshots) or 'none'}") from None

    def compare(self, before: str, after: str, by: str = "lineno") -> pl.DataFrame:
        return diff(self._get(before), self._get(after), by)

    def top(self, label: str, n: int = 10, by: str = "lineno") -> pl.DataFrame:
        return top(self._get(label), n, by)

    def write(self, run_dir: str | Path) -> dict[str, str]:
        return write_snapshots(list(self.snapshots.values()), run_dir)

    def close(self) -> None:
        if self.started_here and tracemalloc.is_tracing():
            tracemalloc.stop()


# --- the collector: snapshots of a running service during a load run ---------------------------------------


class TracemallocCollector:
    """Collector: tracemalloc snapshots of a service that mounted :func:`install`, during a run.

    ``url``: the service's base URL (loopback); ``token``: its memory token (or an object with
    ``memory_token`` and ``url``, e.g. a ``DemoProcess(tracemalloc=True)``). One snapshot before the
    first request, one every ``interval_s``, one after the last response (at most
    ``max_snapshots``). Starts tracemalloc in the service if it is not tracing yet (``nframes``).
    """

    name = "tracemalloc"

    def __init__(self, target: Any, token: str | None = None, *, interval_s: float = 5.0,
                 nframes: int = DEFAULT_NFRAMES, max_snapshots: int = 500, timeout: float = 60.0,
                 prefix: str = PREFIX):
        self.target = target
        self.token = token
        self.interval_s = float(interval_s)
        self.nframes = nframes
        self.max_snapshots = max_snapshots
        self.timeout = timeout
        self.prefix = prefix
        self.raw: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._task: asyncio.Task | None = None
        self._session = None
        self._stopping: asyncio.Event | None = None

    def _endpoint(self) -> tuple[str, str]:
        url = getattr(self.target, "url", self.target)
        token = self.token or getattr(self.target, "memory_token", None)
        if not isinstance(url, str) or not url:
            raise RuntimeError(f"tracemalloc: no service URL in {self.target!r}")
        if not token:
            raise RuntimeError("tracemalloc: no memory token; start the service with PERFBENCH_MEMORY_TOKEN set "
                               "and install_from_env(app), or DemoProcess(tracemalloc=True)")
        return url.rstrip("/") + self.prefix, token

    async def _call(self, method: str, path: str, **params) -> dict[str, Any]:
        import aiohttp

        base, token = self._endpoint()
        async with self._session.request(method, f"{base}/{path}", params=params, headers={TOKEN_HEADER: token},
                                         timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
            if resp.status == 404:
                raise RuntimeError(f"tracemalloc: {base} is not mounted on the service (HTTP 404); mount "
                                   f"perfbench.profilers.memory.install(app, token) in it")
            if resp.status in (401, 403):
                raise RuntimeError(f"tracemalloc: the service refused the memory endpoint (HTTP {resp.status}: "
                                   f"{(await resp.text())[:200]})")
            if resp.status != 200:
                raise RuntimeError(f"tracemalloc: {path} answered HTTP {resp.status}: {(await resp.text())[:200]}")
            return await resp.json()

    async def _snap(self, label: str) -> None:
        if len(self.raw) >= self.max_snapshots:
            return
        data = await self._call("POST", "snapshot", label=label)
        data["t_local_ns"] = time.perf_counter_ns()
        self.raw.append(data)

    async def start(self, ctx) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession()
        try:
            status = await self._call("GET", "status")
            if not status.get("tracing"):
                await self._call("POST", "start", nframes=self.nframes)
            await self._snap("start")
        except BaseException:
            await self._session.close()
            raise
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        assert self._stopping is not None
        n = 0
        while len(self.raw) < self.max_snapshots - 1:
            n += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)
            if self._stopping.is_set():
                return
            try:
                await self._snap(f"t{n}")
            except Exception as exc:  # keep going: one failed snapshot is not the end of the run
                self.errors.append(f"snapshot {n}: {type(exc).__name__}: {exc}")
                if len(self.errors) > 5:
                    return

    async def stop(self, ctx) -> dict[str, Any]:
        if self._stopping is not None:
            self._stopping.set()
        if self._task is not None:
            await self._task
        try:
            try:
                await self._snap("end")
            except Exception as exc:
                self.errors.append(f"final snapshot: {type(exc).__name__}: {exc}")
        finally:
            await self._session.close()
        conv = ctx.run_ns if ctx.t0_ns is not None else (lambda ns: ns)
        frames = [snapshot_frame(d, snapshot=i, t_ns=conv(d["t_local_ns"])) for i, d in enumerate(self.raw)]
        written = await asyncio.to_thread(write_snapshots, frames, ctx.run_dir)
        out: dict[str, Any] = {"snapshots": len(self.raw), "interval_s": self.interval_s, "files": written,
                               "nframes": self.raw[0]["nframes"] if self.raw else None,
                               "traced_bytes": [d["traced_current"] for d in self.raw]}
        if self.errors:
            out["errors"] = self.errors
        return out


# --- memray ------------------------------------------------------------------------------------------------


def memray_executable() -> list[str]:
    return [sys.executable, "-m", "memray"]


def memray_command(capture: str | Path, cmd: list[str], *, native: bool = False,
                   trace_python_allocators: bool = False) -> list[str]:
    """``cmd`` (starting with the Python interpreter, ``python -m mod ...`` or ``python script.py``) under memray run."""
    out = [*memray_executable(), "run", "-q", "-f", "-o", str(capture)]
    if native:
        out.append("--native")
    if trace_python_allocators:
        out.append("--trace-python-allocators")
    rest = list(cmd)
    if rest and Path(rest[0]).name.startswith("python"):
        rest = rest[1:]
    return out + rest


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
        site = next((fr for fr in stack if not _is_library(fr[1], prefixes)), stack[0])
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

    def __init__(self, path: str | Path):
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
        n = b = 0
        for rec in reader.get_allocation_records():
            if memray.AllocatorType(rec.allocator).name not in _DEALLOCATORS:
                n += rec.n_allocations
                b += rec.size
        self.totals = {"total_num_allocations": n, "total_bytes_allocated": b, "peak_memory": md.peak_memory,
                       "high_water_bytes": int(self.high_water_records["size"].sum()),
                       "leaked_bytes": int(self.leaked_records["size"].sum())}
        self.timeline = pl.DataFrame([{"t_ms": s.time, "rss": s.rss, "heap": s.heap}
                                      for s in reader.get_memory_snapshots()],
                                     schema={"t_ms": pl.Int64, "rss": pl.Int64, "heap": pl.Int64})
        if self.timeline.height:
            self.timeline = self.timeline.with_columns(t_ms=pl.col("t_ms") - pl.col("t_ms").min())
        reader.close()

    def by_location(self, which: str = "high_water", by: str = "lineno") -> pl.DataFrame:
        """Bytes and allocations per location of ``high_water`` or ``leaked``, largest first."""
        import polars as pl

        df = {"high_water": self.high_water_records, "leaked": self.leaked_records}[which]
        keys = ["file", "line", "function"] if by == "lineno" else ["site_file", "site_line"]
        out = df.group_by(keys).agg(pl.col("size").sum(), pl.col("count").sum()).sort("size", descending=True)
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
    """Read ``capture`` and write Parquet, ``memray stats --json`` and flame graphs under ``memory/``."""
    out_dir = Path(run_dir) / MEMORY_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    capture = Path(capture)
    report = read_memray(capture)
    report.by_location("high_water").write_parquet(out_dir / "memray_high_water.parquet")
    report.by_location("leaked").write_parquet(out_dir / "memray_leaked.parquet")
    report.by_location("leaked", by="site").write_parquet(out_dir / "memray_leaked_site.parquet")
    report.timeline.write_parquet(out_dir / "memray_timeline.parquet")
    files = {"capture": capture.name, "high_water": "memray_high_water.parquet", "leaked": "memray_leaked.parquet",
             "leaked_site": "memray_leaked_site.parquet", "timeline": "memray_timeline.parquet"}
    errors = []
    try:
        memray_stats_json(capture, out_dir / "memray_stats.json")
        files["stats"] = "memray_stats.json"
    except (subprocess.SubprocessError, OSError) as exc:
        errors.append(f"memray stats: {exc}")
    if flamegraph:
        for name, leaks in (("memray_flamegraph.html", False), ("memray_flamegraph_leaks.html", True)):
            try:
                memray_flamegraph(capture, out_dir / name, leaks=leaks)
                files[name.removesuffix(".html")] = name
            except (subprocess.SubprocessError, OSError) as exc:
                errors.append(f"memray flamegraph{' --leaks' if leaks else ''}: {exc}")
    out = {"files": {k: f"{MEMORY_DIR}/{v}" for k, v in files.items()}, "totals": report.totals,
           "metadata": report.metadata}
    if errors:
        out["errors"] = errors
    return out


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
            raise RuntimeError("memray: the target was not started under memray (use DemoProcess(memray=True) "
                               "or ServiceProcess(cmd, memray=True); from the CLI: --start CMD --memray)")
        if getattr(self.process, "pid", None) is None:
            raise RuntimeError("memray: the target process is not running")

    async def stop(self, ctx) -> dict[str, Any]:
        return await asyncio.to_thread(self.stop_sync, ctx.run_dir)

    def stop_sync(self, run_dir: str | Path) -> dict[str, Any]:
        self.process.stop()
        src = Path(self.process.memray_path)
        if not src.exists():
            raise RuntimeError(f"memray: no capture file at {src} (did the target start under memray?)")
        dest_dir = Path(run_dir) / MEMORY_DIR
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / "memray.bin"
        shutil.move(str(src), dest)
        return write_memray_reports(dest, run_dir, flamegraph=self.flamegraph)


# --- leak verdict of a run (I/O around the pure perfbench.profilers.leak) -----------------------------------


def verdict_for_run(run_dir: str | Path, **kwargs):
    """Read a run's RSS samples, requests and tracemalloc snapshots; ``leak.assess`` on them."""
    import polars as pl

    from . import leak
    from .resources import RESOURCES

    run_dir = Path(run_dir)
    ends = pl.read_parquet(run_dir / "requests.parquet", columns=["end_ns"])["end_ns"].sort().to_list()
    rss = pl.read_parquet(run_dir / RESOURCES, columns=["t_ns", "rss"]) if (run_dir / RESOURCES).exists() else None
    snaps_path = run_dir / MEMORY_DIR / SNAPSHOTS
    snaps = pl.read_parquet(snaps_path) if snaps_path.exists() else None
    return leak.assess(rss=rss, requests_end_ns=ends, snapshots=snaps, **kwargs)


def growth_points(run_dir: str | Path) -> pl.DataFrame:
    """Memory series of a run for ``charts.leak_growth``: ``series`` (rss, traced), ``t_s``, ``requests``, ``bytes``."""
    import polars as pl

    from .leak import completed_before
    from .resources import RESOURCES

    run_dir = Path(run_dir)
    ends = pl.read_parquet(run_dir / "requests.parquet", columns=["end_ns"])["end_ns"].sort().to_list()
    parts = []
    if (run_dir / RESOURCES).exists():
        parts.append(pl.read_parquet(run_dir / RESOURCES, columns=["t_ns", "rss"]).drop_nulls().rename(
            {"rss": "bytes"}).with_columns(series=pl.lit("rss")))
    if (run_dir / MEMORY_DIR / SNAPSHOTS).exists():
        parts.append(read_snapshots(run_dir).group_by("snapshot").agg(pl.col("t_ns").first(), bytes=pl.col("size").sum())
                     .drop("snapshot").with_columns(series=pl.lit("traced")))
    if not parts:
        return pl.DataFrame(schema={"series": pl.String, "t_s": pl.Float64, "requests": pl.Int64, "bytes": pl.Int64})
    df = pl.concat([p.select("series", "t_ns", pl.col("bytes").cast(pl.Int64)) for p in parts]).sort("series", "t_ns")
    return df.with_columns(requests=pl.Series(completed_before(df["t_ns"].to_list(), ends), dtype=pl.Int64),
                           t_s=pl.col("t_ns") / 1e9).select("series", "t_s", "requests", "bytes")


def write_verdict(verdict, run_dir: str | Path) -> Path:
    """``memory/leak_verdict.json`` and ``memory/leak_sites.parquet``."""
    out_dir = Path(run_dir) / MEMORY_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "leak_verdict.json").write_text(json.dumps(verdict.to_dict(), indent=2, default=str) + "\n")
    if verdict.sites is not None:
        verdict.sites.write_parquet(out_dir / "leak_sites.parquet")
    return out_dir / "leak_verdict.json"


# --- soak: the memory_soak notebook's logic -----------------------------------------------------------------


def soak(target: str | None = None, *, endpoints: str = "POST /api/leak", rate: float = 50.0,
         duration: float = 20.0, sample_interval: float = 0.5, snapshot_interval: float = 5.0,
         tracemalloc_on: bool = True, nframes: int = DEFAULT_NFRAMES, memray_on: bool = False,
         pyspy_on: bool = False, memory_token: str | None = None, pid: int | None = None,
         runs_dir: str | Path = "data/runs", run_id: str | None = None, label: str = "memory_soak",
         demo_db_path: str | Path = "data/demo/demo.sqlite", warmup: float = 0.2,
         progress: Any = False, announce: Any = None) -> dict[str, Any]:
    """A soak with the memory collectors, and its leak verdict. Starts the demo when ``target`` is empty.

    ``endpoints``: comma-separated ``[NAME=][METHOD ]PATH[*WEIGHT]`` (as ``perfbench run``).
    For a user's service: ``target`` URL, its ``pid`` (for resources and py-spy) and
    ``memory_token`` (for tracemalloc snapshots). Returns ``{"run_dir", "verdict", "summary"}``.
    """
    from .. import shapes
    from ..demo.process import DemoProcess
    from ..load import run_load
    from ..scenario import from_paths
    from .cpu import PySpyCollector
    from .resources import ResourceSampler

    scenario = from_paths([s.strip() for s in endpoints.split(",") if s.strip()])
    plan = shapes.constant(rate=rate, duration=duration)
    with contextlib.ExitStack() as stack:
        if not target:
            demo = stack.enter_context(DemoProcess(db_path=demo_db_path, tracemalloc=tracemalloc_on,
                                                   tracemalloc_nframes=nframes, memray=memray_on,
                                                   max_seconds=duration + 600))
            target, proc_ref, token = demo.url, demo, demo.memory_token
        else:
            demo, proc_ref, token = None, pid, memory_token
        collectors: list[Any] = []
        if proc_ref is not None:
            collectors.append(ResourceSampler(proc_ref, interval_s=sample_interval))
        if tracemalloc_on and token:
            collectors.append(TracemallocCollector(target, token, interval_s=snapshot_interval, nframes=nframes))
        if pyspy_on and proc_ref is not None:
            collectors.append(PySpyCollector(proc_ref))
        if memray_on and demo is not None:
            # first in the list, so stopped last: it stops the target to finish the capture
            collectors.insert(0, MemrayCollector(demo))
        result = run_load(target, plan, scenario, runs_dir=runs_dir, run_id=run_id or None, label=label,
                          collectors=collectors, progress=progress, announce=announce,
                          parameters={"soak": {"endpoints": endpoints, "sample_interval": sample_interval,
                                               "snapshot_interval": snapshot_interval, "memray": memray_on,
                                               "tracemalloc": tracemalloc_on}})
    verdict = verdict_for_run(result.path, warmup=warmup)
    write_verdict(verdict, result.path)
    return {"run_dir": result.path, "verdict": verdict, "summary": result.summary}


# --- launcher: the demo with the memory endpoint mounted, without changing the demo's code ----------------


def _launch_demo(argv: list[str]) -> int:
    """``python -m perfbench.profilers.memory demo <serve-demo args>``: serve the demo with the endpoint.

    Needs ``PERFBENCH_MEMORY_TOKEN`` in the environment. tracemalloc starts when a collector asks
    (``POST start``), so only allocations made from then on are traced and snapshots stay small
    and quick; ``PERFBENCH_MEMORY_TRACE_AT_START=1`` traces from the process's start instead
    (imports included: snapshots of 10^5-10^6 traces take seconds). Wraps the demo's ``create_app`` so the
    app it builds gets :func:`install_from_env` (a no-op if the demo mounts it itself).
    """
    if not os.environ.get(TOKEN_ENV):
        print(f"perfbench.profilers.memory: set {TOKEN_ENV} to serve the memory endpoint", file=sys.stderr)
        return 2
    if os.environ.get(TRACE_AT_START_ENV) == "1" and not tracemalloc.is_tracing():
        tracemalloc.start(int(os.environ.get(NFRAMES_ENV, DEFAULT_NFRAMES)))
    from ..demo import server

    original = server.create_app

    def create_app(*args, **kwargs):
        app = original(*args, **kwargs)
        install_from_env(app)
        return app

    server.create_app = create_app
    from ..cli import main

    return main(["serve-demo", *argv])


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "demo":
        raise SystemExit(_launch_demo(sys.argv[2:]))
    print("usage: python -m perfbench.profilers.memory demo [serve-demo options]", file=sys.stderr)
    raise SystemExit(2)
